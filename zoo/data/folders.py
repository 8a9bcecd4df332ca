"""Image folders: ``root/<class>/*.jpg`` or ``root/{train,val|validation,test}/<class>/*.jpg``.

We list the files ourselves and hand datasets an explicit (path, label) table instead of using its
``imagefolder`` builder, because the builder silently drops empty class folders, files without an image
extension and classes that only exist in one split, and it fails on a corrupt file only when that file is
decoded mid-epoch. Listing first lets every problem be reported up front, by path.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from zoo.data.raw import RawSource
from zoo.data.splits import split_alias
from zoo.data.validate import ScanResult, scan
from zoo.errors import DataError

IGNORED_FILES = {"thumbs.db", "desktop.ini"}


def image_extensions() -> set[str]:
    from PIL import Image

    return {ext.lower() for ext in Image.registered_extensions()}


def _visible(p: Path) -> bool:
    return not p.name.startswith(".") and p.name.lower() not in IGNORED_FILES


def split_dirs(root: Path) -> dict[str, Path]:
    """{'train': root/train, ...} when root holds split folders; {'train': root} for a folder of classes."""
    subdirs = [d for d in sorted(root.iterdir()) if d.is_dir() and _visible(d)]
    splits: dict[str, Path] = {}
    for d in subdirs:
        canon = split_alias(d.name)
        if canon is not None:
            if canon in splits:
                raise DataError(f"{root} has both {splits[canon].name}/ and {d.name}/ for the {canon} split; keep one")
            splits[canon] = d
    if not splits:
        if not subdirs:
            raise DataError(
                f"image folder {str(root)!r} has no class subfolders; expected "
                f"{root}/<class>/*.jpg or {root}/train/<class>/*.jpg"
            )
        return {"train": root}
    if "train" not in splits:
        raise DataError(
            f"image folder {str(root)!r} has no train/ folder (found {sorted(d.name for d in splits.values())}/); "
            "add train/<class>/ folders"
        )
    return splits


def load_image_folder(root: Path, progress: bool = True) -> RawSource:
    """List, check and load an image folder. Bad files, empty class folders and classes missing from train
    are returned as problems (not raised): load_dataset decides between error and skip."""
    import datasets

    exts = image_extensions()
    splits = split_dirs(root)
    problems: list[tuple[str, str]] = []
    empty: list[str] = []
    files: dict[str, list[tuple[Path, str]]] = {}
    classes: dict[str, list[str]] = {}
    for split, sdir in splits.items():
        files[split] = []
        classes[split] = []
        for entry in sorted(sdir.iterdir()):
            if not _visible(entry):
                continue
            if entry.is_file():
                if entry.suffix.lower() in exts:
                    problems.append((str(entry), "image is not inside a class folder"))
                continue
            found = [p for p in sorted(entry.rglob("*")) if p.is_file() and _visible(p)]
            images = [p for p in found if p.suffix.lower() in exts]
            problems += [
                (str(p), f"not an image file ({p.suffix or 'no extension'})")
                for p in found
                if p.suffix.lower() not in exts
            ]
            if not images:
                empty.append(str(entry))
                problems.append((str(entry), "empty class folder (no images)"))
                continue
            classes[split].append(entry.name)
            files[split] += [(p, entry.name) for p in images]
    names = sorted(classes["train"])
    for split in splits:
        for name in sorted(set(classes[split]) - set(names)):
            problems.append(
                (
                    str(splits[split] / name),
                    f"class {name!r} is in {split} but has no training images in {splits['train']}",
                )
            )
        files[split] = [(p, c) for p, c in files[split] if c in names]

    every = [p for split in splits for p, _ in files[split]]
    result: ScanResult = scan(
        [str(p) for p in every], [str(p) for p in every], desc=f"checking {root.name}", progress=progress
    )
    problems += result.bad
    bad = {every[i] for i in result.bad_index}
    fixed = {every[i]: data for i, data in result.replacements.items()}

    h = hashlib.sha256()
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)})
    index = {n: i for i, n in enumerate(names)}
    out = {}
    for split in splits:
        rows = [(p, c) for p, c in files[split] if p not in bad]
        for p, _ in rows:
            st = p.stat()
            h.update(f"{p.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        out[split] = datasets.Dataset.from_dict(
            {"image": [{"path": str(p), "bytes": fixed.get(p)} for p, _ in rows], "label": [index[c] for _, c in rows]},
            features=features,
        )
    return RawSource(datasets.DatasetDict(out), h.hexdigest()[:16], problems, empty, names, result)
