"""Dataset specs: parse the string a user types and load the raw splits from each kind of source.

A spec names WHERE the data is; the columns are normalised afterwards (columns.py) so every source ends
up with the same ``image``/``label`` schema. Sources: Hub shortcuts (``cifar10``, ``cifar100``), ``hf:<repo>[:config]``,
image folders, ``save_to_disk`` folders, parquet files and ``sklearn:digits``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.data.folders import load_image_folder
from zoo.data.parquet_splits import parquet_splits
from zoo.data.raw import RawSource
from zoo.errors import DataError

# Hub shortcuts: spec -> (repo, config, default label column)
HUB_SHORTCUTS: dict[str, tuple[str, str | None, str | None]] = {
    "cifar10": ("uoft-cs/cifar10", None, "label"),
    "cifar100": ("uoft-cs/cifar100", None, "fine_label"),
    "cifar100:fine": ("uoft-cs/cifar100", None, "fine_label"),
    "cifar100:coarse": ("uoft-cs/cifar100", None, "coarse_label"),
}
KINDS = ("hf", "imagefolder", "disk", "parquet", "sklearn")
SPEC_HELP = (
    "use cifar10, cifar100[:coarse], hf:<repo>[:config], imagefolder:<dir>, disk:<save_to_disk dir>, "
    "parquet:<file or glob>, sklearn:digits, or a local path"
)


@dataclass(frozen=True)
class Spec:
    """A parsed spec: the kind of source, where it is, and a default label column if the kind implies one."""

    text: str
    kind: str
    location: str
    config: str | None = None
    label_column: str | None = None


def _hash(*parts: Any) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(repr(p).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def _path_kind(path: Path) -> str:
    """Which loader a local path needs: a save_to_disk folder, parquet, or an image folder."""
    if path.is_file():
        if path.suffix == ".parquet":
            return "parquet"
        raise DataError(f"dataset path {str(path)!r} is a file but not a .parquet file; {SPEC_HELP}")
    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        return "disk"
    if any(path.rglob("*.parquet")) and not any(path.rglob("*.arrow")) and not _declares_configs(path):
        return "parquet"  # the Hub's repo layouts, with every file's split checked (zoo.data.parquet_splits)
    if any(path.rglob("*.parquet")) or any(path.rglob("*.arrow")):
        return "hf"  # a Hub repo whose README declares its data files: datasets.load_dataset(path) reads it
    return "imagefolder"


def _declares_configs(path: Path) -> bool:
    """A dataset card whose YAML lists ``configs:`` says itself which files make each split."""
    card = path / "README.md"
    return card.is_file() and "\nconfigs:" in card.read_text(encoding="utf-8", errors="replace")


def parse_spec(spec: str) -> Spec:
    """Parse a spec string; a bad one is a DataError that lists the forms accepted."""
    text = str(spec).strip()
    if not text:
        raise DataError(f"empty dataset spec; {SPEC_HELP}")
    low = text.lower()
    if low in HUB_SHORTCUTS:
        repo, config, label = HUB_SHORTCUTS[low]
        return Spec(text, "hf", repo, config, label)
    kind, sep, rest = text.partition(":")
    if sep and kind.lower() in KINDS and not (len(kind) == 1 and os.name == "nt"):
        kind = kind.lower()
        if not rest:
            raise DataError(f"dataset spec {text!r} has nothing after '{kind}:'; {SPEC_HELP}")
        if kind == "sklearn":
            if rest != "digits":
                raise DataError(f"unknown scikit-learn dataset {rest!r} in {text!r}; only sklearn:digits is bundled")
            return Spec(text, "sklearn", rest)
        if kind == "hf":
            if Path(rest).expanduser().exists():  # a local copy of a Hub repo: parquet files get their splits checked
                local = Path(rest).expanduser()
                return Spec(text, "parquet" if _path_kind(local) == "parquet" else "hf", str(local))
            repo, _, config = rest.partition(":")
            return Spec(text, "hf", repo, config or None)
        if kind == "parquet":
            return Spec(text, "parquet", os.path.expanduser(rest))
        path = Path(rest).expanduser()
        if not path.exists():
            raise DataError(f"dataset spec {text!r}: no such folder {str(path)!r}")
        return Spec(text, kind, str(path))
    path = Path(text).expanduser()
    if path.exists():
        return Spec(text, _path_kind(path), str(path))
    if any(ch in text for ch in "*?[") and text.endswith(".parquet"):
        return Spec(text, "parquet", text)
    if "/" in text and not text.startswith((".", "/", "~")) and text.count("/") == 1:
        return Spec(text, "hf", text)  # 'user/dataset' reads as a Hub repo, as in datasets.load_dataset
    raise DataError(f"dataset spec {text!r} is not a known dataset, a Hub repo or an existing path; {SPEC_HELP}")


def hub_dataset_id(spec: str) -> str | None:
    """The Hub dataset repo a spec reads (model card ``datasets:``), or None for local data."""
    try:
        parsed = parse_spec(spec)
    except DataError:
        return None
    if parsed.kind == "hf" and not Path(parsed.location).exists():
        return parsed.location
    return None


# ---- loaders, one per kind ------------------------------------------------------------------------
def load_source(spec: Spec, seed: int = 0) -> RawSource:
    """Load the raw splits of a parsed spec (columns not yet normalised)."""
    loaders = {"hf": _load_hf, "disk": _load_disk, "parquet": _load_parquet, "sklearn": _load_digits}
    if spec.kind == "imagefolder":
        return load_image_folder(Path(spec.location))
    return loaders[spec.kind](spec)


def _as_dict(ds: Any, what: str) -> Any:
    import datasets

    if isinstance(ds, datasets.Dataset):
        return datasets.DatasetDict({"train": ds})
    if isinstance(ds, datasets.DatasetDict):
        return ds
    raise DataError(f"{what} is not a map-style dataset (got {type(ds).__name__}); streaming is not supported")


def _fingerprint_of(dd: Any) -> str:
    return _hash(*sorted((name, ds._fingerprint) for name, ds in dd.items()))


def _load_hf(spec: Spec) -> RawSource:
    import datasets

    local = Path(spec.location).exists()
    try:
        dd = datasets.load_dataset(spec.location, spec.config)
    except Exception as exc:  # datasets raises many types offline (ConnectionError, DatasetNotFoundError, ...)
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False")
        hint = (
            "the Hub is unreachable (HF_HUB_OFFLINE is set or there is no network): download it once online, "
            "or point the spec at a local copy (save_to_disk folder, parquet files, or the repo cloned with git)"
            if (offline or "connect" in str(exc).lower() or "offline" in str(exc).lower()) and not local
            else "check the repo id and config name"
        )
        raise DataError(
            f"could not load dataset {spec.text!r} ({spec.location}"
            f"{':' + spec.config if spec.config else ''}): {type(exc).__name__}: {exc}. Fix: {hint}"
        ) from exc
    dd = _as_dict(dd, spec.text)
    return RawSource(dd, _fingerprint_of(dd))


def _load_disk(spec: Spec) -> RawSource:
    import datasets

    try:
        dd = datasets.load_from_disk(spec.location)
    except Exception as exc:
        raise DataError(f"could not read save_to_disk folder {spec.location!r} ({spec.text!r}): {exc}") from exc
    dd = _as_dict(dd, spec.text)
    return RawSource(dd, _fingerprint_of(dd))


def _load_parquet(spec: Spec) -> RawSource:
    import datasets

    files = parquet_splits(spec.location)
    try:
        dd = datasets.load_dataset("parquet", data_files=files)
    except Exception as exc:
        raise DataError(f"could not read parquet files for {spec.text!r}: {exc}") from exc
    dd = _as_dict(dd, spec.text)
    return RawSource(dd, _fingerprint_of(dd))


def _load_digits(spec: Spec) -> RawSource:
    """scikit-learn's bundled 8x8 digits as RGB images; test is a fixed stratified 20% (seed 0) so that
    test accuracy stays comparable across runs whatever seed carves the validation split."""
    import datasets
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images * (255.0 / 16.0)).round().clip(0, 255).astype(np.uint8)
    labels = digits.target.astype(np.int64)
    idx_train, idx_test = train_test_split(np.arange(len(labels)), test_size=0.2, stratify=labels, random_state=0)
    names = [str(i) for i in range(10)]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)})

    def build(idx: Any) -> Any:
        idx = np.sort(idx)
        pics = [Image.fromarray(images[i]).convert("RGB") for i in idx]
        return datasets.Dataset.from_dict({"image": pics, "label": labels[idx].tolist()}, features=features)

    dd = datasets.DatasetDict({"train": build(idx_train), "test": build(idx_test)})
    return RawSource(dd, _hash("sklearn:digits", "v1", len(labels)))
