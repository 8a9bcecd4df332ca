"""zoo export: ONNX files that onnxruntime runs at parity with PyTorch, with labels and preprocessing inside,
refused when they are not at parity; zoo predict / zoo eval run them through the artifact's own preprocessing."""

from __future__ import annotations

import json

import pytest
import torch

import zoo
from zoo.cli import main

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    """A small saved classifier with label names and a non-default preprocessing (48 px, bicubic, crop 0.9)."""
    torch.manual_seed(0)
    model = zoo.create_model("timm:test_resnet", pretrained=False)
    model.reset_classifier(10, label_names=[str(i) for i in range(10)])  # sklearn:digits names: zoo eval runs on it
    model.data_config.update(input_size=(3, 48, 48), interpolation="bicubic", crop_pct=0.9)
    folder = tmp_path_factory.mktemp("art") / "model"
    zoo.save(model.eval(), folder)
    return folder


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Photo files of mixed sizes and modes, as users pass them."""
    skimage = pytest.importorskip("skimage")
    from PIL import Image

    out = tmp_path_factory.mktemp("photos")
    Image.fromarray(skimage.data.chelsea()).save(out / "cat.jpg")
    Image.fromarray(skimage.data.coffee()).convert("L").save(out / "coffee_gray.png")
    Image.fromarray(skimage.data.astronaut()).resize((150, 300)).convert("RGBA").save(out / "astronaut.png")
    return sorted(str(p) for p in out.iterdir())


def test_export_writes_metadata_and_predict_matches_the_artifact(artifact, photos, capsys):
    assert main(["export", str(artifact), "--format", "onnx"]) == 0
    printed = capsys.readouterr().out
    path = artifact / "model.onnx"
    assert path.is_file() and "same top-1: True" in printed
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(meta["label_names"]) == [str(i) for i in range(10)]
    assert json.loads(meta["input_size"]) == [3, 48, 48] and json.loads(meta["crop_pct"]) == 0.9
    assert json.loads(meta["interpolation"]) == "bicubic" and json.loads(meta["mean"]) and json.loads(meta["std"])
    assert "TorchScript" in meta["exporter"]

    results = {}
    for target in (str(artifact), str(path)):
        assert main(["predict", target, *photos, "--json", "--top-k", "3"]) == 0
        results[target] = json.loads(capsys.readouterr().out)
    torch_out, onnx_out = results[str(artifact)], results[str(path)]
    for a, b in zip(torch_out, onnx_out):
        assert [p["label"] for p in a["predictions"]] == [p["label"] for p in b["predictions"]]
        for pa, pb in zip(a["predictions"], b["predictions"]):
            assert pa["probability"] == pytest.approx(pb["probability"], abs=1e-4)


def test_eval_runs_the_onnx_file_like_the_artifact(artifact, tmp_path, capsys):
    path = tmp_path / "dyn.onnx"
    assert main(["export", str(artifact), "--dynamic-batch", "--opset", "18", "--out", str(path)]) == 0
    capsys.readouterr()
    metrics = {}
    for target in (str(artifact), str(path)):
        assert (
            main(
                [
                    "eval",
                    target,
                    "--data",
                    "sklearn:digits",
                    "--out",
                    str(tmp_path / "ev"),
                    "--json",
                    "--batch-size",
                    "50",
                ]
            )
            == 0
        )
        metrics[target] = json.loads(capsys.readouterr().out)
    assert metrics[str(path)]["n"] == metrics[str(artifact)]["n"] == 360  # the odd last batch of 10 included
    assert metrics[str(path)]["top1"] == pytest.approx(metrics[str(artifact)]["top1"], abs=1e-9)
    assert metrics[str(path)]["confusion"] == metrics[str(artifact)]["confusion"]


def test_a_graph_off_parity_is_refused_and_not_written(artifact, tmp_path, monkeypatch, capsys):
    import zoo.export

    monkeypatch.setattr(zoo.export, "ATOL", -1.0)  # no graph can meet it: the refusal path, end to end
    out = tmp_path / "bad.onnx"
    assert main(["export", str(artifact), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "does not match PyTorch" in err and "Nothing was written" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["tv", "hf"])
def test_export_other_sources(kind, tmp_path, tiny_hf_dir):
    """torchvision and transformers models export at parity too (tiny ones built from config, offline)."""
    from zoo.export import OnnxModel, export_onnx

    if kind == "tv":
        model = zoo.create_model("tv:resnet18", pretrained=False, num_classes=3)
        model.data_config["input_size"] = (3, 64, 64)
    else:
        model = zoo.create_model(f"hf:{tiny_hf_dir('vit')}", pretrained=True)
    path, report = export_onnx(model, out=tmp_path / f"{kind}.onnx", dynamic_batch=True)
    assert report["ok"] and report["max_abs_diff"] <= 1e-4, report
    loaded = OnnxModel(path)
    assert loaded.num_classes == model.num_classes
    assert loaded.data_config["input_size"] == tuple(model.data_config["input_size"])


def test_export_usage_errors(artifact, tmp_path, capsys):
    assert main(["export", "timm:test_resnet", "--opset", "3"]) == 2
    assert "--opset 3" in capsys.readouterr().err
    assert main(["export", str(artifact), "--out", str(tmp_path / "model.bin")]) == 1
    assert "must end in .onnx" in capsys.readouterr().err
    from PIL import Image

    Image.new("RGB", (40, 40), "red").save(tmp_path / "x.png")  # the images are checked before the model
    assert main(["predict", str(tmp_path / "missing.onnx"), str(tmp_path / "x.png")]) == 2
    assert "ONNX file not found" in capsys.readouterr().err


def _batch_dim(path) -> object:
    dim = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[0]
    return dim.dim_param or dim.dim_value


def test_batch_is_dynamic_by_default_checked_at_batch_1_and_larger_and_fixed_on_request(artifact, tmp_path, capsys):
    """Issue 18.9: timm's onnx_export makes the batch dynamic; so does zoo export unless --fixed-batch."""
    import onnxruntime as ort

    path = tmp_path / "dyn.onnx"
    assert main(["export", str(artifact), "--out", str(path)]) == 0
    printed = capsys.readouterr().out
    assert isinstance(_batch_dim(path), str) and "batch dynamic" in printed and "at batch 1 and 6" in printed
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    model = zoo.load(artifact)
    x = torch.randn(5, 3, 48, 48)
    with torch.no_grad():
        expected = model(x).numpy()
    got = session.run(["logits"], {"pixel_values": x.numpy()})[0]
    assert got.shape == (5, 10) and abs(got - expected).max() < 1e-4
    fixed = tmp_path / "fixed.onnx"
    assert main(["export", str(artifact), "--fixed-batch", "--out", str(fixed)]) == 0
    assert _batch_dim(fixed) == 1 and "batch fixed at 1" in capsys.readouterr().out
