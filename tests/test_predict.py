"""Prediction (paths, PIL, arrays -> label names and probabilities), evaluation, and the predict/eval CLI."""

from __future__ import annotations

import json
import re

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

import zoo
from zoo.cli import main as cli
from zoo.errors import DataError
from zoo.inference import eval_transform, evaluate, preprocess

LABELS = ["cat", "dog", "eel"]


@pytest.fixture
def model():
    m = zoo.create_model("timm:test_resnet", num_classes=3, pretrained=False)
    m.reset_classifier(3, LABELS)
    return m.eval()


def _images(n: int, size: int = 48, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]


def test_predict_takes_paths_pil_and_arrays_and_returns_label_probabilities(model, tmp_path):
    arrays = _images(3)
    paths = []
    for i, arr in enumerate(arrays):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(arr).save(paths[-1])
    by_path = zoo.predict(model, paths, top_k=2)
    assert zoo.predict(model, [Image.fromarray(a) for a in arrays], top_k=2) == by_path
    assert zoo.predict(model, arrays, top_k=2) == by_path
    assert zoo.predict(model, str(paths[0]), top_k=2) == by_path[:1]  # one image -> a list of one
    x = preprocess(paths, model.data_config)
    with torch.no_grad():
        probs = model(x).softmax(-1)
    for row, p in zip(by_path, probs):
        assert len(row) == 2 and row[0][1] >= row[1][1]
        assert row[0] == (LABELS[int(p.argmax())], pytest.approx(float(p.max()), abs=1e-6))
    assert len(zoo.predict(model, paths[0], top_k=10)[0]) == 3  # capped at the number of classes


def test_preprocessing_is_timms_eval_transform_of_the_model(model):
    import timm

    img = Image.fromarray(_images(1, size=200)[0])
    expected = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model.model))(img)
    assert torch.equal(eval_transform(model.data_config)(img), expected)


def test_bad_images_are_named(model, tmp_path):
    with pytest.raises(DataError, match=re.escape(f"image file not found: {tmp_path / 'nope.png'}")):
        zoo.predict(model, tmp_path / "nope.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match=re.escape(f"cannot read image {tmp_path / 'bad.png'}: ")):
        zoo.predict(model, tmp_path / "bad.png")
    with pytest.raises(DataError, match=re.escape("image array has shape (4, 4, 5); expected HxW, HxWx3 or HxWx4")):
        zoo.predict(model, np.zeros((4, 4, 5), dtype=np.uint8))


def _dataset(images: list[np.ndarray], labels: list[int], names: list[str]) -> datasets.Dataset:
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)})
    return datasets.Dataset.from_dict(
        {"image": [Image.fromarray(a) for a in images], "label": labels}, features=features
    )


def test_evaluate_scores_against_the_models_own_predictions(model):
    images = _images(12)
    preds = [LABELS.index(p[0][0]) for p in zoo.predict(model, images, top_k=1)]
    right = evaluate(model, _dataset(images, preds, LABELS), progress=False)
    assert right["top1"] == 1.0 and right["n"] == 12
    assert np.trace(np.array(right["confusion"])) == 12
    wrong = evaluate(model, _dataset(images, [(p + 1) % 3 for p in preds], LABELS), progress=False)
    assert wrong["top1"] == 0.0 and wrong["top5"] == 1.0  # 3 classes: the truth is always in the top 3
    # the same classes in another order are mapped by name, not by index
    shuffled = ["eel", "cat", "dog"]
    remapped = evaluate(model, _dataset(images, [shuffled.index(LABELS[p]) for p in preds], shuffled), progress=False)
    assert remapped["top1"] == 1.0


def test_evaluate_refuses_classes_the_model_does_not_know(model):
    ds = _dataset(_images(2), [0, 1], ["cat", "zebra"])
    with pytest.raises(
        DataError,
        match=re.escape(
            "the dataset has labels the model was not trained on: ['zebra']; model labels: ['cat', 'dog', 'eel']"
        ),
    ):
        evaluate(model, ds, progress=False)


def test_cli_predict_json_prints_labels_and_probabilities(model, tmp_path, capsys):
    path = zoo.save(model, tmp_path / "art")
    img = tmp_path / "img.png"
    Image.fromarray(_images(1)[0]).save(img)
    assert cli(["predict", str(path), str(img), "--json", "--top-k", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    expected = zoo.predict(model, img, top_k=2)[0]
    assert out == [{"image": str(img), "predictions": [{"label": n, "probability": round(p, 6)} for n, p in expected]}]


def test_cli_predict_refuses_a_pickle_only_folder(model, tmp_path, capsys):
    folder = tmp_path / "pickled"
    folder.mkdir()
    torch.save(model.model.state_dict(), folder / "model.pth")
    img = tmp_path / "img.png"
    Image.fromarray(_images(1)[0]).save(img)
    assert cli(["predict", str(folder), str(img)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"zoo: error: {folder} holds only pickle checkpoint(s) (model.pth) and no model.safetensors.")
    assert f"`zoo convert {folder / 'model.pth'}` writes {folder / 'model.safetensors'}" in err


def test_cli_eval_writes_metrics_and_confusion_png(model, tmp_path, capsys):
    root = tmp_path / "photos"
    images = _images(18, seed=1)
    for i, arr in enumerate(images):
        split = "test" if (i // 3) % 3 == 0 else "train"  # 2 test and 4 train images per class
        folder = root / split / LABELS[i % 3]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(folder / f"{i}.png")
    art = zoo.save(model, tmp_path / "art")
    out = tmp_path / "eval"
    assert cli(["eval", str(art), "--data", f"imagefolder:{root}", "--out", str(out), "--json"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert json.loads(capsys.readouterr().out) == metrics
    test_files = sorted((root / "test").rglob("*.png"))
    truth = [p.parent.name for p in test_files]
    predicted = [p[0][0] for p in zoo.predict(model, test_files, top_k=1)]
    assert metrics["split"] == "test" and metrics["n"] == len(test_files)
    assert metrics["top1"] == pytest.approx(np.mean([t == p for t, p in zip(truth, predicted)]))
    assert (out / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
