"""What the commands check about their inputs before the work starts, and where their outputs go."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zoo.data.folders import split_dirs
from zoo.data.specs import parse_spec
from zoo.data.validate import format_bad, read_image
from zoo.errors import DataError

RUNS = Path("runs")  # where every command writes, as training does (output.dir's default); ignored by git


def output_dir(kind: str, *names: str) -> Path:
    """runs/<kind>-<name>[-<name>...]: a readable folder name from model names and paths."""
    parts = [kind] + [_slug(n) for n in names if n]
    return RUNS / "-".join(p for p in parts if p)


def data_name(spec: str) -> str:
    """A dataset's short name: a local folder or file by its own name (imagefolder:~/photos -> photos),
    anything else by its spec (sklearn:digits, cifar10)."""
    parsed = parse_spec(spec)
    if parsed.kind in ("imagefolder", "disk", "parquet") and not any(c in parsed.location for c in "*?["):
        return Path(parsed.location).stem
    return parsed.text


def _slug(text: str) -> str:
    """A local path names itself by its last folder (runs/<run>/model by the run); a Hub id or a
    'source:id' name keeps every part."""
    text = str(text).rstrip("/")
    path = Path(text).expanduser()
    if path.exists():
        path = path.resolve()
        name = path.parent.name if path.name in ("model", "final", "checkpoint") and path.parent.name else path.name
    else:
        name = text
    return re.sub(r"[^A-Za-z0-9._]+", "-", name).strip("-.")[:80]


def read_images(paths: Sequence[str]) -> list[Any]:
    """Every image decoded (RGB) with the data layer's checks, or one DataError listing each bad file."""
    images, bad = [], []
    for p in paths:
        path = Path(p)
        if not path.is_file():
            bad.append((p, "no such file" if not path.exists() else "not a file"))
            continue
        try:
            images.append(read_image(path))
        except DataError as exc:
            bad.append((p, str(exc).split(f"{path}: ", 1)[-1]))
    if bad:
        if len(bad) == 1:
            raise DataError(f"cannot read image {bad[0][0]}: {bad[0][1]}")
        raise DataError(f"{len(bad)} images cannot be used:\n{format_bad(bad)}")
    return images


def problems_in_split(dataset: Any, split: str) -> list[tuple[str, str]]:
    """The bad files and folders of ``dataset`` (loaded with on_bad_image='skip') that belong to ``split``:
    a validation split carved from train owns train's problems."""
    source = "train" if split == "validation" and dataset.validation.get("carved") else split
    spec = parse_spec(dataset.spec)
    folder = split_dirs(Path(spec.location)).get(source) if spec.kind == "imagefolder" else None
    found = []
    for where, reason in dataset.bad_images:
        if where.startswith(f"{source}["):  # datasets splits name rows 'split[i] (path)'
            found.append((where, reason))
        elif folder is not None and _under(Path(where), folder):
            found.append((where, reason))
    return found


def _under(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False
