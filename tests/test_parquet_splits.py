"""Parquet sources: every layout the Hub writes keeps its splits apart (issue 18, item 1).

Rows are scikit-learn's real digits; each split has its own row count (train 40, validation 14, test 22), so a
test shard read as training rows shows in the counts. A file whose split no name tells is an error naming it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from zoo.data import load_dataset, parse_spec
from zoo.errors import DataError

SIZES = {"train": 40, "validation": 14, "test": 22}


@pytest.fixture(scope="module")
def digit_splits():
    import datasets
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images * (255.0 / 16.0)).astype(np.uint8)
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=[str(i) for i in range(10)])}
    )
    out, start = {}, 0
    for split, n in SIZES.items():
        idx = range(start, start + n)
        start += n
        out[split] = datasets.Dataset.from_dict(
            {
                "image": [Image.fromarray(images[i]).convert("RGB").resize((16, 16)) for i in idx],
                "label": [int(digits.target[i]) for i in idx],
            },
            features=features,
        )
    return out


def write(root: Path, layout: dict[str, str], splits) -> Path:
    """``layout`` maps a relative file path to the split whose rows it holds; a split written to two files
    is sharded in halves (as push_to_hub does)."""
    by_split: dict[str, list[str]] = {}
    for rel, split in layout.items():
        by_split.setdefault(split, []).append(rel)
    for split, rels in by_split.items():
        ds = splits[split]
        for k, rel in enumerate(sorted(rels)):
            shard = ds.shard(num_shards=len(rels), index=k, contiguous=True)
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shard.to_parquet(str(root / rel))
    return root


HUB_LAYOUTS = {
    "push_to_hub sharded": {"data/train-00000-of-00001.parquet": "train", "data/test-00000-of-00001.parquet": "test"},
    "push_to_hub with hash": {
        "data/train-00000-of-00002-8c7a1f3e.parquet": "train",
        "data/train-00001-of-00002-8c7a1f3e.parquet": "train",
        "data/validation-00000-of-00001-0b9d2e11.parquet": "validation",
        "data/test-00000-of-00001-5e4f6a7b.parquet": "test",
    },
    "split files": {"train.parquet": "train", "test.parquet": "test"},
    "split files in data/": {
        "data/train.parquet": "train",
        "data/validation.parquet": "validation",
        "data/test.parquet": "test",
    },
    "split folders": {
        "data/train/shard_0.parquet": "train",
        "data/train/shard_1.parquet": "train",
        "data/test/shard_0.parquet": "test",
    },
    "converted default/": {"default/train/0000.parquet": "train", "default/test/0000.parquet": "test"},
    "converted plain_text/": {
        "plain_text/train/0000.parquet": "train",
        "plain_text/train/0001.parquet": "train",
        "plain_text/validation/0000.parquet": "validation",
        "plain_text/test/0000.parquet": "test",
    },
    "older converted": {"plain_text/digits-train.parquet": "train", "plain_text/digits-test.parquet": "test"},
}


@pytest.mark.parametrize("prefix", ["parquet:", ""])
@pytest.mark.parametrize("name", list(HUB_LAYOUTS))
def test_every_hub_layout_keeps_its_splits(tmp_path, digit_splits, name, prefix):
    layout = HUB_LAYOUTS[name]
    root = write(tmp_path / "repo", layout, digit_splits)
    expected = set(layout.values())
    ds = load_dataset(prefix + str(root), val_size=5, progress=False, check_images=False)
    assert len(ds["test"]) == SIZES["test"]
    assert len(ds["train"]) + len(ds["validation"]) == SIZES["train"] + (
        SIZES["validation"] if "validation" in expected else 0
    )
    if "validation" in expected:
        assert len(ds["validation"]) == SIZES["validation"]


@pytest.mark.parametrize("name", list(HUB_LAYOUTS))
def test_each_file_goes_to_the_split_its_path_names(tmp_path, digit_splits, name):
    from zoo.data.parquet_splits import parquet_splits

    layout = HUB_LAYOUTS[name]
    root = write(tmp_path / "repo", layout, digit_splits)
    expected: dict[str, list[str]] = {}
    for rel, split in layout.items():
        expected.setdefault(split, []).append(str(root / rel))
    groups = parquet_splits(str(root))
    assert {k: sorted(v) for k, v in groups.items()} == {k: sorted(v) for k, v in expected.items()}
    assert parse_spec(str(root)).kind == parse_spec(f"hf:{root}").kind == "parquet"


def test_a_glob_of_one_split_and_a_lone_file(tmp_path, digit_splits):
    from zoo.data.parquet_splits import parquet_splits

    root = write(tmp_path / "repo", HUB_LAYOUTS["converted default/"], digit_splits)
    assert parquet_splits(str(root / "default" / "*" / "*.parquet")).keys() == {"train", "test"}
    lone = parquet_splits(str(root / "default" / "test" / "0000.parquet"))
    assert lone == {"train": [str(root / "default" / "test" / "0000.parquet")]}  # the file named is the data


@pytest.mark.parametrize(
    "layout,named",
    [
        ({"0000.parquet": "train", "0001.parquet": "test"}, "0000.parquet"),
        ({"train.parquet": "train", "extra.parquet": "test"}, "extra.parquet"),
        (
            {
                "data/train-00000-of-00001.parquet": "train",
                "data/test-00000-of-00001.parquet": "test",
                "data/holdout.parquet": "validation",
            },
            "holdout.parquet",
        ),
    ],
)
def test_a_file_whose_split_cannot_be_told_is_an_error_naming_it(tmp_path, digit_splits, layout, named):
    root = write(tmp_path / "repo", layout, digit_splits)
    for spec in (str(root), f"parquet:{root}"):
        with pytest.raises(DataError, match=rf"cannot tell which split .*{named}.*train-00000-of-00001"):
            load_dataset(spec, progress=False)


def test_two_configs_or_two_split_words_are_refused(tmp_path, digit_splits):
    two = write(
        tmp_path / "two",
        {
            "default/train/0000.parquet": "train",
            "default/test/0000.parquet": "test",
            "other/train/0000.parquet": "validation",
        },
        digit_splits,
    )
    with pytest.raises(DataError, match=r"different configs.*point the spec at one"):
        load_dataset(str(two), progress=False)
    both = write(tmp_path / "both", {"train/test.parquet": "test", "train/0000.parquet": "train"}, digit_splits)
    with pytest.raises(DataError, match=r"test.parquet is named as two splits"):
        load_dataset(f"parquet:{both}", progress=False)
