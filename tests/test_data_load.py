"""zoo.data.load_dataset over every kind of source, offline, with the bad-input cases of issue 3."""

from __future__ import annotations

import numpy as np
import pytest
from data_fixtures import bad_folder, good_folder
from synthetic_data import CIFAR10_NAMES, make_cifar_like

from zoo.data import load_dataset, parse_spec
from zoo.errors import DataError


@pytest.fixture(scope="module")
def cifar_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    return {fmt: make_cifar_like(root / fmt, n_per_class=8, fmt=fmt) for fmt in ("disk", "parquet", "imagefolder")}


@pytest.mark.parametrize(
    "fmt,prefix",
    [("disk", ""), ("disk", "disk:"), ("parquet", ""), ("parquet", "hf:"), ("imagefolder", "imagefolder:")],
)
def test_cifar_schema_normalised_with_seeded_validation(cifar_dirs, fmt, prefix):
    spec = prefix + cifar_dirs[fmt]
    a = load_dataset(spec, val_size=0.25, seed=3, progress=False)
    b = load_dataset(spec, val_size=0.25, seed=3, progress=False)
    assert a.label_names == list(CIFAR10_NAMES) and a.num_classes == 10
    assert set(a.splits) == {"train", "validation", "test"}
    for split in a.splits.values():
        assert split.column_names == ["image", "label"]
        assert split.features["label"].names == list(CIFAR10_NAMES)
    assert len(a["validation"]) == 20 and len(a["train"]) == 60 and len(a["test"]) == 20
    # stratified: two of each class in validation
    assert np.bincount(a["validation"]["label"], minlength=10).tolist() == [2] * 10
    # identical across calls: same images, same labels, same recorded digest and fingerprint
    assert a["validation"]["label"] == b["validation"]["label"]
    assert np.array_equal(np.asarray(a["validation"][0]["image"]), np.asarray(b["validation"][0]["image"]))
    assert a.info()["validation"] == b.info()["validation"] and a.fingerprint == b.fingerprint
    assert a["train"][0]["image"].mode == "RGB"
    c = load_dataset(spec, val_size=0.25, seed=4, progress=False)
    assert c.info()["validation"]["indices_sha256"] != a.info()["validation"]["indices_sha256"]
    assert c.fingerprint != a.fingerprint


def test_parquet_glob_and_file(cifar_dirs):
    ds = load_dataset(f"parquet:{cifar_dirs['parquet']}/data/*.parquet", progress=False)
    assert set(ds.splits) == {"train", "validation", "test"} and ds.label_names == list(CIFAR10_NAMES)
    one = load_dataset(f"{cifar_dirs['parquet']}/data/test-00000-of-00001.parquet", val_size=0.2, progress=False)
    assert len(one["train"]) + len(one["validation"]) == 20  # a lone file is the train split


def test_info_is_json_and_complete(cifar_dirs):
    import json

    info = load_dataset(cifar_dirs["disk"], progress=False).info()
    again = json.loads(json.dumps(info))
    assert again["label_names"] == list(CIFAR10_NAMES)
    assert again["splits"] == {"train": 72, "validation": 8, "test": 20}
    assert again["validation"]["carved"] and again["validation"]["seed"] == 0
    assert again["columns"] == {"image_column": "img", "label_column": "label"}


def test_sklearn_digits():
    ds = load_dataset("sklearn:digits", progress=False)
    assert ds.label_names == [str(i) for i in range(10)]
    assert len(ds["test"]) == 360 and len(ds["train"]) + len(ds["validation"]) == 1437
    img = ds["test"][0]["image"]
    assert img.mode == "RGB" and img.size == (8, 8)
    assert np.asarray(img).max() > 200  # 0..16 ink scaled to 0..255


def test_folder_with_split_subfolders_keeps_validation(tmp_path):
    root = good_folder(tmp_path / "f", classes=("b", "a"), n=3, splits=("train", "val", "test"))
    ds = load_dataset(f"imagefolder:{root}", progress=False)
    assert ds.label_names == ["a", "b"]
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 6, "validation": 6, "test": 6}
    assert ds.info()["validation"] == {"carved": False}


def _hub_cifar100(path, labels_fine, labels_coarse):
    import datasets
    from PIL import Image

    feats = datasets.Features(
        {
            "img": datasets.Image(),
            "fine_label": datasets.ClassLabel(names=["apple", "bee", "cup", "dog"]),
            "coarse_label": datasets.ClassLabel(names=["food", "animal"]),
        }
    )
    n = len(labels_fine)
    ds = datasets.Dataset.from_dict(
        {
            "img": [Image.new("RGB", (32, 32), (i * 9, 0, 0)) for i in range(n)],
            "fine_label": labels_fine,
            "coarse_label": labels_coarse,
        },
        features=feats,
    )
    (path / "data").mkdir(parents=True)
    ds.to_parquet(str(path / "data" / "train-00000-of-00001.parquet"))
    return str(path)


def test_hub_layout_folder_fine_and_coarse_labels(tmp_path):
    fine = [0, 1, 2, 3] * 5
    path = _hub_cifar100(tmp_path / "c100", fine, [0, 1, 0, 1] * 5)
    ds = load_dataset(f"hf:{path}", val_size=4, progress=False)
    assert ds.label_names == ["apple", "bee", "cup", "dog"]  # fine_label is preferred, as for cifar100
    coarse = load_dataset(f"hf:{path}", val_size=4, label_column="coarse_label", progress=False)
    assert coarse.label_names == ["food", "animal"]
    with pytest.raises(
        DataError,
        match=r"label_column='nope' is not a column of .*columns: \['img', "
        r"'fine_label', 'coarse_label'\]",
    ):
        load_dataset(f"hf:{path}", label_column="nope", progress=False)


def test_hub_spec_offline_is_a_clear_error():
    assert parse_spec("cifar10").location == "uoft-cs/cifar10"
    assert parse_spec("cifar100").label_column == "fine_label"
    assert parse_spec("cifar100:coarse").label_column == "coarse_label"
    assert (parse_spec("hf:user/data:cfg").location, parse_spec("hf:user/data:cfg").config) == ("user/data", "cfg")
    with pytest.raises(
        DataError,
        match=r"could not load dataset 'cifar10' \(uoft-cs/cifar10\).*Fix: the Hub "
        r"is unreachable",
    ):
        load_dataset("cifar10", progress=False)


def test_bad_spec_messages(tmp_path):
    with pytest.raises(DataError, match=r"dataset spec 'no/such/place/x' is not a known dataset"):
        load_dataset("no/such/place/x")
    with pytest.raises(DataError, match=r"unknown scikit-learn dataset 'iris' in 'sklearn:iris'"):
        load_dataset("sklearn:iris")
    with pytest.raises(DataError, match=r"on_bad_image='ignore': use 'error' or 'skip'"):
        load_dataset("sklearn:digits", on_bad_image="ignore")


# ---- bad input ------------------------------------------------------------------------------------
def test_bad_folder_error_lists_every_bad_path(tmp_path):
    paths = bad_folder(tmp_path / "bad")
    with pytest.raises(DataError) as err:
        load_dataset(str(tmp_path / "bad"), progress=False)
    msg = str(err.value)
    assert msg.startswith("4 unusable file(s) or folder(s) in")
    for kind in ("truncated", "text", "notes", "empty"):
        assert str(paths[kind]) in msg, kind
    for kind in ("cmyk", "gray", "rgba", "palette", "16bit", "tiny"):  # readable: converted, not reported
        assert str(paths[kind]) not in msg, kind
    assert "on_bad_image='skip'" in msg


def test_bad_folder_skip_loads_rest_as_rgb_and_writes_list(tmp_path):
    paths = bad_folder(tmp_path / "bad")
    ds = load_dataset(str(tmp_path / "bad"), on_bad_image="skip", run_dir=tmp_path / "run", val_size=3, progress=False)
    assert ds.label_names == ["bird", "cat", "dog"]  # the empty class folder is not a class
    assert ds.info()["bad_images_skipped"] == 4
    listed = (tmp_path / "run" / "bad_images.txt").read_text().splitlines()
    assert sorted(line.split("\t")[0] for line in listed) == sorted(
        str(paths[k]) for k in ("truncated", "text", "notes", "empty")
    )
    rows = [ex for split in ("train", "validation") for ex in ds[split]]
    assert len(rows) == 3 * 4 + 6  # 12 good PNGs + cmyk, gray, rgba, palette, 16-bit, tiny
    assert all(ex["image"].mode == "RGB" for ex in rows)
    # 16-bit ramp is rescaled, not clipped to white by PIL's convert
    deep = [
        np.asarray(ex["image"])
        for ex in rows
        if ex["image"].size == (40, 40)
        and np.asarray(ex["image"])[..., 0].std() < 80
        and (np.asarray(ex["image"])[..., 0] == np.asarray(ex["image"])[..., 2]).all()
    ]
    assert any(0 < d.mean() < 200 and d.max() > 240 for d in deep)


def test_class_only_in_val_is_reported(tmp_path):
    root = good_folder(tmp_path / "f", classes=("a", "b"), n=2, splits=("train",))
    good_folder(tmp_path / "f", classes=("a", "c"), n=2, splits=("val",))
    with pytest.raises(DataError, match=r"class 'c' is in validation but has no training images in"):
        load_dataset(str(root), progress=False)
    ds = load_dataset(str(root), on_bad_image="skip", progress=False)
    assert ds.label_names == ["a", "b"] and len(ds["validation"]) == 2


def test_missing_train_split(tmp_path):
    good_folder(tmp_path / "f", n=2, splits=("val", "test"))
    with pytest.raises(DataError, match=r"has no train/ folder \(found \['test', 'val'\]/\); add train/<class>/"):
        load_dataset(str(tmp_path / "f"), progress=False)


def test_out_of_range_labels(tmp_path):
    import datasets
    from PIL import Image

    ds = datasets.Dataset.from_dict(
        {"image": [Image.new("RGB", (8, 8))] * 6, "label": [0, 1, 0, 1, 5, -3]},
        features=datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")}),
    )
    ds.save_to_disk(str(tmp_path / "d"))
    # plain integers: names '0'..'5' would hide the -3; it is reported with its row
    expected = r"split 'train' .*: 1 label\(s\) out of range 0..5: values \[-3\] at rows \[5\]"
    with pytest.raises(DataError, match=expected):
        load_dataset(str(tmp_path / "d"), progress=False)


def test_unlabelled_test_split_is_dropped_with_note(tmp_path):
    import datasets
    from PIL import Image

    feats = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["x", "y"])})
    img = Image.new("RGB", (8, 8))
    dd = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"image": [img] * 8, "label": [0, 1] * 4}, features=feats),
            "test": datasets.Dataset.from_dict({"image": [img] * 2, "label": [-1, -1]}, features=feats),
        }
    )
    dd.save_to_disk(str(tmp_path / "d"))
    ds = load_dataset(str(tmp_path / "d"), val_size=2, progress=False)
    assert "test" not in ds and "unlabelled" in ds.info()["notes"][0]


def test_corrupt_bytes_inside_a_saved_dataset(tmp_path):
    import io

    import datasets
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (16, 16), "red").save(buf, format="PNG")
    good = buf.getvalue()
    feats = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=["x", "y"])})
    ds = datasets.Dataset.from_dict(
        {
            "img": [{"bytes": good, "path": None}] * 5 + [{"bytes": good[:-30], "path": None}],
            "label": [0, 1, 0, 1, 0, 1],
        },
        features=feats,
    )
    ds.save_to_disk(str(tmp_path / "d"))
    with pytest.raises(DataError, match=r"1 unusable file\(s\) or folder\(s\) .*\n  train\[5\]: corrupt or truncated"):
        load_dataset(str(tmp_path / "d"), progress=False)
    ok = load_dataset(str(tmp_path / "d"), on_bad_image="skip", val_size=2, progress=False)
    assert len(ok["train"]) + len(ok["validation"]) == 5 and ok.info()["bad_images_skipped"] == 1
