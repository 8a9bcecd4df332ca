"""What loading may execute or fetch (issue 18, item 3): timm model_args are allow-listed, transformers weights
are safetensors only, a broken image-processor config is an error naming it (a missing one a warning that
says which values were used), and a Hub download fetches only the files the layout reads."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import pytest
import torch

import zoo
from zoo.errors import CheckpointError, ZooError

sys.path.insert(0, str(Path(__file__).parent))
from hub_server import HubServer, _sha


def _rewrite_config(folder: Path, **model_args) -> None:
    """Set model_args in config.json and re-record the manifest, as a crafted upload would."""
    config = json.loads((folder / "config.json").read_text())
    config.setdefault("model_args", {}).update(model_args)
    (folder / "config.json").write_text(json.dumps(config))
    if (folder / "checksums.sha256").exists():  # (older zoo had no manifest: the test runs there too)
        from zoo.artifact.manifest import write_manifest

        write_manifest(folder)


@pytest.fixture
def timm_art(tmp_path):
    model = zoo.create_model("timm:test_vit", num_classes=3, pretrained=False)
    return zoo.save(model, tmp_path / "vit")


@pytest.mark.parametrize(
    "key,value,phrase",
    [
        ("checkpoint_path", "/no/such/other.pth", "load another file"),
        ("pretrained_cfg_overlay", {"file": "/no/such/weights.pth"}, "where the weights come from"),
        ("features_only", True, "changes what the model returns"),
        ("cache_dir", "/tmp/elsewhere", "download"),
    ],
)
def test_model_args_that_are_not_architecture_settings_are_refused(timm_art, key, value, phrase):
    _rewrite_config(timm_art, **{key: value})
    with pytest.raises(CheckpointError, match=rf"config.json: model_args key '{key}' is refused \(.*{phrase}"):
        zoo.load(timm_art)


def test_absurd_sizes_are_refused_before_building(timm_art):
    _rewrite_config(timm_art, img_size=[5000, 5000])
    with pytest.raises(CheckpointError, match=r"model_args 'img_size' = \[5000, 5000\] is out of range"):
        zoo.load(timm_art)


def test_architecture_model_args_still_load(timm_art):
    saved = json.loads((timm_art / "config.json").read_text())["model_args"]
    assert saved["img_size"] == [160, 160] and saved["global_pool"] == "token"
    assert zoo.load(timm_art).data_config["input_size"] == (3, 160, 160)


def test_hf_weights_are_safetensors_only(tiny_hf_dir):
    folder = Path(tiny_hf_dir("vit", num_labels=3))
    from safetensors.torch import load_file

    torch.save(load_file(str(folder / "model.safetensors")), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    with pytest.raises(ZooError, match=r"only pytorch_model.bin \(a pickle.*zoo convert"):
        zoo.create_model(f"hf:{folder}", pretrained=True)


def test_a_broken_image_processor_config_is_an_error_naming_it(tiny_hf_dir):
    folder = Path(tiny_hf_dir("vit", num_labels=3))
    assert zoo.load(folder).data_config["mean"] == (0.5, 0.5, 0.5)  # the processor's own values
    (folder / "preprocessor_config.json").write_text('{"image_mean": [0.5, 0.5')  # truncated
    for load in (lambda: zoo.load(folder), lambda: zoo.create_model(f"hf:{folder}", pretrained=True)):
        with pytest.raises(ZooError, match=r"preprocessor_config.json: the image processor config cannot be read"):
            load()


def test_a_missing_image_processor_config_warns_with_the_values_used(tiny_hf_dir):
    folder = Path(tiny_hf_dir("vit", num_labels=3))
    (folder / "preprocessor_config.json").unlink()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = zoo.create_model(f"hf:{folder}", pretrained=True)
    text = " ".join(str(w.message) for w in caught)
    assert "no preprocessor_config.json" in text and "mean [0.485, 0.456, 0.406]" in text, text
    assert "input size [32, 32]" in text and model.data_config["mean"] == (0.485, 0.456, 0.406)


FETCH = """
import json, zoo
from zoo.artifact.load import resolve
folder = resolve("user/repo")
print(json.dumps({"files": sorted(p.name for p in folder.iterdir()), "labels": zoo.load("user/repo").label_names}))
"""


def test_hub_download_fetches_only_the_files_loading_reads(tmp_path, monkeypatch):
    import os
    import subprocess

    from huggingface_hub import constants

    model = zoo.create_model("timm:test_resnet", num_classes=3, pretrained=False)
    model.reset_classifier(3, ["cat", "dog", "eel"])
    curve = tmp_path / "curve.png"
    curve.write_bytes(b"\x89PNG not really")
    art = zoo.save(model, tmp_path / "art", files={"curve.png": curve})
    with HubServer(lifetime=120) as hub:
        monkeypatch.setattr(constants, "ENDPOINT", hub.url)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        zoo.push_to_hub(art, "user/repo")
        repo = hub.state.repos["user/repo"]
        files = dict(repo.commits[repo.refs["main"]])
        files.update({"pytorch_model.bin": b"pickle", "model.onnx": b"onnx", "setup.py": b"print(1)"})
        sha = _sha(b"extra files")
        repo.commits[sha] = files
        repo.refs["main"] = sha
        env = dict(
            os.environ,
            HF_ENDPOINT=hub.url,
            HF_HUB_OFFLINE="0",
            HF_HOME=str(tmp_path / "hf-home"),
            PYTHONPATH=str(Path(__file__).resolve().parents[1]),
        )
        out = subprocess.run(
            [sys.executable, "-c", FETCH], env=env, capture_output=True, text=True, timeout=300, check=False
        )
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["files"] == ["checksums.sha256", "config.json", "model.safetensors", "zoo.json"], got
    assert got["labels"] == ["cat", "dog", "eel"]
