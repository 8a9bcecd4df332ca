"""Calibrated probabilities (temperature scaling, Guo et al. 2017): fitted at the end of a run on the validation
split, stored in zoo.json / the model card / ONNX metadata, and used by predict, eval, serve and ONNX alike."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

import zoo
from zoo.inference import preprocess, temperature_of
from zoo.metrics import calibration_scores, reliability_bins
from zoo.train.calibration import MIN_IMAGES, calibrate, fit_temperature


def _overconfident(n: int = 4000, classes: int = 10, true_t: float = 2.5, seed: int = 0):
    """Labels drawn from softmax(z): z is calibrated, so logits z * true_t need T = true_t to undo."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, classes, generator=g) * 2
    labels = torch.multinomial(z.softmax(1), 1, generator=g).squeeze(1)
    return z * true_t, labels


def test_fitted_temperature_recovers_the_overconfidence_and_lowers_ece_and_nll():
    logits, labels = _overconfident(true_t=2.5)
    t = fit_temperature(logits, labels)
    assert t == pytest.approx(2.5, rel=0.08)
    before, after = calibration_scores(logits, labels), calibration_scores(logits, labels, t)
    assert after["ece"] < before["ece"] / 2 and after["nll"] < before["nll"]
    # under-confident logits get T < 1
    assert fit_temperature(logits / 2.5 / 3, labels) == pytest.approx(1 / 3, rel=0.08)


def test_ece_uses_15_equal_width_bins_by_hand():
    # 4 images: confidences 0.95 (right), 0.95 (wrong), 0.55 (right), 0.30 (wrong)
    probs = torch.tensor([[0.95, 0.05, 0.0], [0.95, 0.05, 0.0], [0.55, 0.45, 0.0], [0.30, 0.35, 0.35]])
    labels = torch.tensor([0, 1, 0, 0])
    bins = reliability_bins(probs, labels)
    assert len(bins) == 15 and bins[0]["lo"] == 0 and bins[-1]["hi"] == 1
    top = bins[14]  # (14/15, 1]
    assert top["n"] == 2 and top["accuracy"] == 0.5 and top["confidence"] == pytest.approx(0.95)
    assert bins[8]["n"] == 1  # 0.55 in (8/15, 9/15]
    assert bins[5]["n"] == 1 and bins[5]["accuracy"] == 0.0  # 0.35 in (5/15, 6/15]
    expected = (2 / 4) * abs(0.5 - 0.95) + (1 / 4) * abs(1 - 0.55) + (1 / 4) * abs(0 - 0.35)
    scores = calibration_scores(probs.log(), labels)
    assert scores["ece"] == pytest.approx(expected, abs=1e-6)
    onehot = torch.nn.functional.one_hot(labels, 3).float()
    assert scores["brier"] == pytest.approx(float(((probs - onehot) ** 2).sum(1).mean()), abs=1e-6)


def test_too_small_a_validation_split_is_said_not_fitted():
    logits, labels = _overconfident(n=MIN_IMAGES - 1)
    out = calibrate(logits, labels)
    assert out["temperature"] is None and f"has {MIN_IMAGES - 1} images" in out["reason"]
    perfect = torch.eye(5).repeat(40, 1) * 5
    out = calibrate(perfect, perfect.argmax(1))
    assert out["temperature"] is None and "no error" in out["reason"]
    assert calibrate(*_overconfident(n=MIN_IMAGES))["temperature"] > 1


@pytest.fixture
def calibrated_dir(tmp_path):
    model = zoo.create_model("timm:test_resnet", num_classes=3, pretrained=False)
    model.reset_classifier(3, ["cat", "dog", "eel"])
    model.data_config["input_size"] = (3, 64, 64)
    model.calibration = {
        "temperature": 3.0,
        "method": "test",
        "images": 200,
        "split": "validation",
        "test": {
            "ece_bins": 15,
            "ece_before": 0.3,
            "ece_after": 0.1,
            "nll_before": 1.0,
            "nll_after": 0.8,
            "brier_before": 0.6,
            "brier_after": 0.5,
        },
    }
    return zoo.save(model.eval(), tmp_path / "model")


def _photos():
    from skimage import data

    return [Image.fromarray(a).convert("RGB") for a in (data.chelsea(), data.coffee(), data.astronaut())]


def test_predict_eval_serve_and_onnx_agree_on_calibrated_probabilities(calibrated_dir, tmp_path):
    model = zoo.load(calibrated_dir)
    assert temperature_of(model) == 3.0
    meta = json.loads((calibrated_dir / "zoo.json").read_text())
    assert meta["calibration"]["temperature"] == 3.0
    assert "T = 3.0000" in (calibrated_dir / "README.md").read_text()
    photos = _photos()
    with torch.no_grad():
        logits = model(preprocess(photos, model.data_config))
    expected, raw = (logits / 3.0).softmax(-1), logits.softmax(-1)
    assert not torch.allclose(expected, raw, atol=1e-3)  # the temperature matters for this model
    got = zoo.predict(model, photos, top_k=3)
    for row, p in zip(got, expected):
        for label, prob in row:
            assert prob == pytest.approx(float(p[model.label_names.index(label)]), abs=1e-5)
    for row, p in zip(zoo.predict(model, photos, top_k=3, calibrated=False), raw):
        assert row[0][1] == pytest.approx(float(p.max()), abs=1e-5)
    # zoo serve: the JSON API returns the same calibrated probabilities; ?raw=1 the raw softmax
    from starlette.testclient import TestClient

    from zoo.serve.app import create_app

    client = TestClient(create_app(model, spec="m", top_k=3))
    buf = tmp_path / "cat.png"
    photos[0].save(buf)
    body = client.post("/api/predict", content=buf.read_bytes()).json()
    assert body["predictions"][0]["probability"] == pytest.approx(got[0][0][1], abs=1e-5)
    assert body["temperature"] == 3.0 and client.get("/api/info").json()["temperature"] == 3.0
    raw_body = client.post("/api/predict?raw=1", content=buf.read_bytes()).json()
    assert raw_body["predictions"][0]["probability"] == pytest.approx(float(raw[0].max()), abs=1e-5)
    # ONNX: the temperature travels in the metadata and predict-on-ONNX applies it
    from zoo.export import OnnxModel, export_onnx

    path, _ = export_onnx(calibrated_dir, tmp_path / "m.onnx", images=photos)
    onnx_rows = zoo.predict(OnnxModel(path), photos, top_k=3)
    for a, b in zip(onnx_rows, got):
        assert a[0][0] == b[0][0] and a[0][1] == pytest.approx(b[0][1], abs=1e-4)


def test_training_run_fits_a_temperature_by_default_and_not_when_off(tmp_path):
    from synthetic_data import make_cifar_like

    from zoo.train.run import train

    spec = str(make_cifar_like(tmp_path / "cifar", n_per_class=60, size=32, fmt="disk"))
    base = {
        "name": "cal",
        "model": {"name": "timm:test_resnet", "pretrained": False},
        "data": {"spec": spec, "image_size": 32, "batch_size": 64, "augment": "none", "val_size": 0.25},
        "optim": {"lr": 3e-3, "weight_decay": 0.0},
        "train": {"epochs": 1},
        "output": {"dir": str(tmp_path / "runs")},
        "resume": "never",
    }
    train(base)
    meta = json.loads((tmp_path / "runs/cal/model/zoo.json").read_text())
    cal = meta["calibration"]
    assert cal["images"] >= MIN_IMAGES and cal["temperature"] > 0 and cal["nll_after"] <= cal["nll_before"] + 1e-6
    final = [json.loads(x) for x in (tmp_path / "runs/cal/metrics.jsonl").read_text().splitlines()][-1]
    assert final["calibration"]["temperature"] == pytest.approx(cal["temperature"])
    assert final["tta"] == "none" and len(final["calibration"]["after"]["bins"]) == 15
    assert "test" in cal and "ece_after" in cal["test"]
    off = {**base, "name": "off", "train": {"epochs": 1, "calibrate": False}}
    train(off)
    cal_off = json.loads((tmp_path / "runs/off/model/zoo.json").read_text())["calibration"]
    assert cal_off["temperature"] is None and "train.calibrate is false" in cal_off["reason"]
    assert temperature_of(zoo.load(tmp_path / "runs/off/model")) == 1.0


def test_a_run_without_test_split_evaluates_validation_once_and_as_zoo_eval_does(tmp_path, monkeypatch):
    """Without a test split the final figures are the validation split's, the split calibration just scored
    in float32 with zoo eval's preprocessing: one pass, reused, not two; and still what zoo eval reports."""
    import shutil

    from synthetic_data import make_cifar_like

    import zoo.inference
    import zoo.train.calibration
    from zoo.data import load_dataset
    from zoo.train.run import train

    folder = make_cifar_like(tmp_path / "photos", n_per_class=50, size=32, fmt="imagefolder")
    shutil.rmtree(f"{folder}/test")
    passes = []
    for module in (zoo.inference, zoo.train.calibration):
        real = module.dataset_logits

        def counted(*a, _real=real, **k):
            passes.append(len(a[1]))
            return _real(*a, **k)

        monkeypatch.setattr(module, "dataset_logits", counted)
    train(
        {
            "name": "once",
            "model": {"name": "timm:test_resnet", "pretrained": False},
            "data": {"spec": f"imagefolder:{folder}", "image_size": 32, "batch_size": 64, "val_size": 0.25},
            "train": {"epochs": 1},
            "output": {"dir": str(tmp_path / "runs")},
            "resume": "never",
        }
    )
    final = [json.loads(x) for x in (tmp_path / "runs/once/metrics.jsonl").read_text().splitlines()][-1]
    assert final["split"] == "validation" and passes == [final["n"]]  # calibration's pass only
    monkeypatch.undo()
    validation = load_dataset(f"imagefolder:{folder}", val_size=0.25)["validation"]
    again = zoo.inference.evaluate(zoo.load(tmp_path / "runs/once/model"), validation, progress=False)
    assert again["top1"] == final["top1"] and again["loss"] == pytest.approx(final["loss"], abs=1e-6)
    for when in ("before", "after"):
        for k in ("ece", "nll", "brier"):
            assert again["calibration"][when][k] == pytest.approx(final["calibration"][when][k], abs=1e-6)
