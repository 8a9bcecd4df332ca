"""`zoo data doctor` and `data.exclude` on real images with faults injected: flipped labels of scikit-learn's
digits, a re-encoded copy of a photo across train/test, a photo filed under the wrong class."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import zoo
from zoo.cli import main
from zoo.doctor import labels as L
from zoo.doctor.duplicates import find_duplicates, thumbnails
from zoo.doctor.outliers import find_outliers
from zoo.errors import DataError


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images, d.target.astype(np.int64)


def _flip(y: np.ndarray, frac: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(y), int(frac * len(y)), replace=False)
    noisy = y.copy()
    noisy[idx] = (noisy[idx] + rng.integers(1, 10, len(idx))) % 10
    return noisy, idx


def test_flipped_digit_labels_are_ranked_first_and_flagged(digits):
    images, y = digits
    x = images.reshape(len(y), -1) / 16.0  # the digits' own pixels: real images, features that separate them
    noisy, flipped = _flip(y, 0.05)
    out = L.label_issues(x, noisy, [str(i) for i in range(10)], folds=5)
    k = len(flipped)
    top_k = np.argsort(out["quality"], kind="stable")[:k]
    assert len(set(top_k) & set(flipped)) / k >= 0.8
    flagged = set(out["flagged"].tolist())
    assert len(flagged & set(flipped)) / k >= 0.7  # recall of the flagged set
    assert len(flagged & set(flipped)) / len(flagged) >= 0.7  # precision of the flagged set
    # the suggested label of a flipped digit is mostly its true one
    assert np.mean(out["suggested"][flipped] == y[flipped]) >= 0.8


def test_confident_joint_counts_the_flips_off_its_diagonal(digits):
    images, y = digits
    noisy, flipped = _flip(y, 0.10, seed=1)
    probs = L.out_of_fold_probs(images.reshape(len(y), -1) / 16.0, noisy, 10)
    cj = L.confident_joint(noisy, probs)
    assert np.allclose(cj.sum(1), np.bincount(noisy, minlength=10))  # calibrated rows
    off = cj.sum() - np.trace(cj)
    assert 0.6 * len(flipped) <= off <= 1.6 * len(flipped)


def test_too_few_images_per_fold_and_one_class_are_clear_errors():
    with pytest.raises(DataError, match="fewer than --folds 5 images: '1' \\(3\\)"):
        L.check_judgeable(np.array([0] * 10 + [1] * 3), ["0", "1"], folds=5)
    with pytest.raises(DataError, match="at least two"):
        L.check_judgeable(np.zeros(10, np.int64), ["0", "1"], folds=5)


def _jpeg(im: Image.Image, quality: int = 75) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def test_reencoded_digit_in_test_is_named_a_leak(digits):
    images, _ = digits
    pics = [Image.fromarray((im * 255 / 16).astype(np.uint8)).convert("RGB") for im in images[:300]]
    copies = {5: _jpeg(pics[5]), 17: pics[17].copy(), 40: _jpeg(pics[40], 60)}
    test = [pics[i] for i in range(250, 300)] + list(copies.values())
    allpics = pics[:250] + test
    # features that see a re-encode as a different image: only the thumbnail can find those copies
    x = np.random.default_rng(0).normal(size=(len(allpics), 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    splits = ["train"] * 250 + ["test"] * len(test)
    found = find_duplicates(x, thumbnails(allpics), splits)
    leaks = {(p["a"], p["b"]) for p in found["pairs"] if p["kind"] == "leak"}
    for n, i in enumerate(copies):
        assert (i, 300 + n) in leaks
    # digits of one class look alike: no pair of distinct images is taken for a copy
    assert len(found["pairs"]) == len(copies)


def test_photo_among_digits_is_an_outlier(digits, photo_corpus):
    images, _ = digits
    x = images[:400].reshape(400, -1) / 16.0
    photo = (
        np.asarray(
            Image.open(next(Path(photo_corpus, "astronaut").glob("*.jpg"))).convert("L").resize((8, 8)), np.float32
        ).reshape(1, -1)
        / 255.0
    )
    feats = np.concatenate([x, photo]) - x.mean(0)
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    out = find_outliers(feats)
    assert out["flagged"][:1].tolist() == [400]


@pytest.fixture(scope="module")
def faulty_folder(photo_corpus, tmp_path_factory) -> dict:
    """train/, validation/ and test/ from the photo corpus; a cat photo filed under rocket; a JPEG re-encode
    of a training coffee photo in test."""
    root = tmp_path_factory.mktemp("doctor") / "photos"
    for c in ("cat", "coffee", "rocket", "galaxies"):
        files = sorted(Path(photo_corpus, c).iterdir())
        for split, chunk in (("train", files[:6]), ("validation", files[6:7]), ("test", files[7:])):
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for f in chunk:  # the corpus's photos (all modes, EXIF turns), made small: a fast test
                im = Image.open(f)
                im.thumbnail((96, 96))
                im.save(root / split / c / f.name, **({"exif": Image.open(f).getexif()} if f.suffix == ".jpg" else {}))
    wrong = root / "train" / "rocket" / "from-cat.jpg"
    shutil.move(str(next((root / "train" / "cat").glob("*.jpg"))), wrong)
    original = next((root / "train" / "coffee").glob("*.jpg"))
    copy = root / "test" / "coffee" / "copy.jpg"
    Image.open(original).convert("RGB").save(copy, quality=70)
    return {"root": root, "wrong": wrong, "original": original, "copy": copy}


def test_doctor_cli_on_photos_finds_the_mislabel_and_the_leak(faulty_folder, tmp_path, capsys):
    out = tmp_path / "doc"
    rc = main(
        [
            "data",
            "doctor",
            str(faulty_folder["root"]),
            "--out",
            str(out),
            "--image-size",
            "64",
            "--folds",
            "3",
            "--json",
        ]
    )
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    issues = report["issues"]
    labels = [r for r in issues if r["kind"] == "label"]
    assert labels[0]["path"] == str(faulty_folder["wrong"])
    assert (labels[0]["given_label"], labels[0]["suggested_label"]) == ("rocket", "cat")
    leaks = [r for r in issues if r["kind"] == "leak"]
    assert any(
        r["path"] == str(faulty_folder["original"]) and r["matches"] == f"test:{faulty_folder['copy']}" for r in leaks
    )
    rows = list(csv.DictReader((out / "issues.csv").open()))
    assert rows[0].keys() >= {"path", "split", "kind", "given_label", "suggested_label", "score"}
    assert len(rows) == len(issues)
    page = (out / "doctor.html").read_text()
    assert "data:image/png;base64," in page and "from-cat.jpg" in page

    # act on it: the doctor's CSV, filtered to the label issue, drops that photo from every split
    keep = out / "drop.csv"
    with keep.open("w", newline="") as f:
        w = csv.DictWriter(f, rows[0].keys())
        w.writeheader()
        w.writerows([r for r in rows if r["path"] == str(faulty_folder["wrong"])])
    ds = zoo.load_dataset(str(faulty_folder["root"]), exclude=keep, run_dir=tmp_path / "run")
    every = [rid for split in ds.keys() for rid in ds.ids[split]]
    assert str(faulty_folder["wrong"]) not in every and len(every) == 40
    assert ds.excluded == [str(faulty_folder["wrong"])]
    assert (tmp_path / "run" / "excluded.txt").read_text().split() == [str(faulty_folder["wrong"])]
    assert ds.info()["excluded"] == 1


def test_doctor_cli_too_few_images_is_an_error_without_traceback(tmp_path, capsys):
    from data_fixtures import good_folder

    good_folder(tmp_path / "f", classes=("a", "b"), n=3)
    rc = main(["data", "doctor", str(tmp_path / "f"), "--out", str(tmp_path / "o"), "--val-size", "1"])
    err = capsys.readouterr().err
    assert rc != 0 and "too few images per fold" in err and "Traceback" not in err


def test_exclude_digits_by_identifier_across_seeds(tmp_path):
    listed = ["sklearn:digits/train/0", "sklearn:digits/train/7", "sklearn:digits/test/3"]
    (tmp_path / "drop.txt").write_text("# from zoo data doctor\n" + "\n".join(listed) + "\n")
    full = zoo.load_dataset("sklearn:digits", check_images=False)
    for seed in (0, 1):  # a carved validation image keeps its train/<row> identifier whatever the seed
        ds = zoo.load_dataset("sklearn:digits", seed=seed, check_images=False, exclude=tmp_path / "drop.txt")
        every = [rid for split in ds.keys() for rid in ds.ids[split]]
        assert not set(listed) & set(every)
        assert len(every) == sum(len(full[k]) for k in full.keys()) - 3 == sum(len(ds[k]) for k in ds.keys())
        assert ds.excluded == listed and ds.fingerprint != full.fingerprint


def test_run_with_exclude_trains_without_the_image_and_says_so(faulty_folder, tmp_path, capsys):
    from zoo.train.run import train

    (tmp_path / "drop.txt").write_text(f"{faulty_folder['wrong']}\n")
    [s] = train(
        {
            "name": "ex",
            "model": {"name": "timm:test_resnet", "pretrained": False},
            "data": {
                "spec": str(faulty_folder["root"]),
                "image_size": 32,
                "batch_size": 8,
                "augment": "none",
                "exclude": str(tmp_path / "drop.txt"),
            },
            "train": {"epochs": 1},
            "output": {"dir": str(tmp_path / "runs")},
            "resume": "never",
        }
    )
    assert "data.exclude: dropped 1 image(s)" in capsys.readouterr().out
    run = Path(s.run_dir)
    assert (run / "excluded.txt").read_text().split() == [str(faulty_folder["wrong"])]
    meta = json.loads((run / "model" / "zoo.json").read_text())
    assert meta["dataset"]["excluded"] == 1 and sum(meta["dataset"]["splits"].values()) == 40
    assert "1 listed in" in (run / "model" / "README.md").read_text()
