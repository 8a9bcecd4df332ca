"""``load_dataset``: one entry point from a spec string to train/validation/test splits with ``image`` and
``label`` columns, the label names, and a record of how the splits were made."""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.data.columns import check_labels, normalise
from zoo.data.exclude import apply_exclude, read_exclude, source_ids, write_excluded
from zoo.data.progress import datasets_progress
from zoo.data.specs import hub_dataset_id, load_source, parse_spec
from zoo.data.splits import canonical_splits, carve_indices, check_classes
from zoo.data.validate import ScanResult, apply_replacements, format_bad, scan_split
from zoo.errors import DataError

BAD_MODES = ("error", "skip")
BAD_LIST_NAME = "bad_images.txt"


@dataclass
class ImageDataset:
    """Normalised splits plus what a checkpoint needs to remember about them.

    ``splits`` is a ``datasets.DatasetDict`` with "train", "validation" and maybe "test", each with exactly
    the columns ``image`` (decoded to RGB PIL) and ``label`` (ClassLabel carrying ``label_names``).
    """

    spec: str
    splits: Any
    label_names: list[str]
    fingerprint: str
    source_fingerprint: str
    columns: dict[str, str] = field(default_factory=dict)
    validation: dict[str, Any] = field(default_factory=dict)
    bad_images: list[tuple[str, str]] = field(default_factory=list)
    bad_list_path: str | None = None
    notes: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    # per split, a stable identifier of each row (zoo.data.exclude): what data.exclude and the doctor name
    ids: dict[str, list[str]] = field(default_factory=dict)
    excluded: list[str] = field(default_factory=list)  # identifiers dropped by data.exclude
    exclude_file: str | None = None

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def __getitem__(self, split: str) -> Any:
        if split not in self.splits:
            raise DataError(f"no split {split!r} in {self.spec!r}; splits: {list(self.splits)}")
        return self.splits[split]

    def __contains__(self, split: str) -> bool:
        return split in self.splits

    def keys(self) -> list[str]:
        return list(self.splits)

    def info(self) -> dict[str, Any]:
        """A JSON-able record: enough to check that a later run sees the same data and split."""
        return {
            "name": self.spec,
            "spec": self.spec,
            "hub_id": hub_dataset_id(self.spec),
            "fingerprint": self.fingerprint,
            "source_fingerprint": self.source_fingerprint,
            "label_names": list(self.label_names),
            "num_classes": self.num_classes,
            "splits": {name: len(ds) for name, ds in self.splits.items()},
            "columns": dict(self.columns),
            "validation": dict(self.validation),
            "bad_images_skipped": len(self.bad_images),
            "bad_images_list": self.bad_list_path,
            "notes": list(self.notes),
            **({"exclude_file": self.exclude_file, "excluded": len(self.excluded)} if self.exclude_file else {}),
        }

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={len(v)}" for k, v in self.splits.items())
        return f"ImageDataset({self.spec!r}, {self.num_classes} classes, {sizes})"


def _write_bad_list(run_dir: str | os.PathLike, bad: list[tuple[str, str]]) -> str:
    path = Path(run_dir) / BAD_LIST_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{where}\t{reason}\n" for where, reason in bad))
    return str(path)


def load_dataset(
    spec: str,
    *,
    val_size: float = 0.1,
    seed: int = 0,
    image_column: str | None = None,
    label_column: str | None = None,
    on_bad_image: str = "error",
    run_dir: str | os.PathLike | None = None,
    check_images: bool = True,
    progress: bool = True,
    exclude: str | os.PathLike | None = None,
) -> ImageDataset:
    """Load ``spec`` into normalised splits.

    - A validation split is carved from train (stratified, seeded, ``val_size`` a fraction or a count)
      when the source has none; the carving is recorded in ``info()['validation']``.
    - Every image is decoded once up front (``check_images``): unreadable ones are a DataError listing all
      of them (``on_bad_image='error'``), or are dropped, counted and listed in ``run_dir/bad_images.txt``
      (``'skip'``). Grayscale, RGBA, CMYK, palette and 16-bit images are converted to RGB.
    - ``exclude``: a file listing rows to drop from every split (zoo.data.exclude), before the validation
      split is carved; the dropped identifiers are listed in ``run_dir/excluded.txt``.
    """
    if on_bad_image not in BAD_MODES:
        raise DataError(f"on_bad_image={on_bad_image!r}: use 'error' or 'skip'")
    parsed = parse_spec(spec)
    # datasets' own bars only where the work may be long (reading a Hub/disk/parquet source); zoo's image
    # check has its own bar for large folders
    with datasets_progress(None if progress and parsed.kind in ("hf", "disk", "parquet") else 0):
        return _load(
            parsed, val_size, seed, image_column, label_column, on_bad_image, run_dir, check_images, progress, exclude
        )


def _load(
    parsed: Any,
    val_size: float,
    seed: int,
    image_column: str | None,
    label_column: str | None,
    on_bad_image: str,
    run_dir: str | os.PathLike | None,
    check_images: bool,
    progress: bool,
    exclude: str | os.PathLike | None = None,
) -> ImageDataset:
    raw = load_source(parsed, seed=seed)
    what = repr(parsed.text)
    dd = canonical_splits(raw.splits, what)
    dd, names, columns = normalise(dd, image_column, label_column or parsed.label_column, what)
    if raw.label_names is not None:
        names = raw.label_names
    dd, notes = check_labels(dd, names, what)
    ids = {split: source_ids(parsed.kind, parsed.text, split, ds) for split, ds in dd.items()}

    problems = list(raw.problems)
    scans: dict[str, ScanResult] = {}
    if check_images and raw.scan is None:  # folders were checked while listing; datasets are checked here
        for split, ds in dd.items():
            scans[split] = scan_split(ds, split, progress=progress)
            problems += scans[split].bad
    if problems and on_bad_image == "error":
        raise DataError(
            f"{len(problems)} unusable file(s) or folder(s) in {what}:\n{format_bad(problems)}\n"
            "Fix or remove them, or skip them (recipe key data.on_bad_image=skip; on_bad_image='skip' in "
            "Python) to load the rest and list them in the run directory."
        )
    for split, result in scans.items():
        ds = dd[split]
        ds = apply_replacements(ds, result.replacements)
        if result.bad_index:
            bad = set(result.bad_index)
            ds = ds.select([i for i in range(len(ds)) if i not in bad])
            ids[split] = [rid for i, rid in enumerate(ids[split]) if i not in bad]
        dd[split] = ds
    dropped: list[str] = []
    if exclude is not None:
        dd, ids, dropped, unmatched = apply_exclude(dd, ids, read_exclude(exclude), what)
        notes.append(
            f"data.exclude: dropped {len(dropped)} image(s) listed in {exclude}"
            + (f"; {len(unmatched)} listed image(s) are not in the data" if unmatched else "")
        )
    if not len(dd["train"]):
        raise DataError(f"no usable training images in {what}")
    check_classes(dd["train"], list(names), what)

    validation: dict[str, Any] = {"carved": False}
    if "validation" not in dd:
        train_idx, val_idx, validation = carve_indices(dd["train"], val_size, seed, list(names))
        train, val = dd["train"].select(train_idx), dd["train"].select(val_idx)
        ids["validation"] = [ids["train"][i] for i in val_idx]
        ids["train"] = [ids["train"][i] for i in train_idx]
        if validation.get("unstratified_classes"):
            notes.append(f"too few images to stratify, no validation image: {validation['unstratified_classes']}")
        dd["train"], dd["validation"] = train, val
    import datasets

    dd = datasets.DatasetDict({k: dd[k] for k in ("train", "validation", "test") if k in dd})
    bad_list = _write_bad_list(run_dir, problems) if problems and run_dir is not None else None
    if exclude is not None and run_dir is not None:
        write_excluded(run_dir, dropped)
    key = json.dumps(
        {
            "source": raw.fingerprint,
            "validation": validation,
            "columns": columns,
            "skipped": sorted(w for w, _ in problems),
            **({"excluded": sorted(dropped)} if exclude is not None else {}),
        },
        sort_keys=True,
    )
    stats: dict[str, Any] = {}
    for result in [raw.scan] if raw.scan is not None else list(scans.values()):
        stats.setdefault("sizes", Counter()).update(result.sizes)
        stats.setdefault("modes", Counter()).update(result.modes)
    return ImageDataset(
        spec=parsed.text,
        splits=dd,
        label_names=list(names),
        fingerprint=hashlib.sha256(key.encode()).hexdigest()[:16],
        source_fingerprint=raw.fingerprint,
        columns=columns,
        validation=validation,
        bad_images=problems,
        bad_list_path=bad_list,
        notes=notes,
        stats=stats,
        ids={k: ids[k] for k in dd},
        excluded=dropped,
        exclude_file=str(exclude) if exclude is not None else None,
    )
