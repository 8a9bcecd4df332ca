"""Row identifiers and ``data.exclude``: drop named images from every split before anything else sees them.

Every row of a loaded data set has an identifier that stays the same across seeds and validation carvings:
  - image folders: the file's path, as listed (absolute when the spec was);
  - every other source (Hub, parquet, save_to_disk, ``sklearn:digits``): ``<spec>/<source split>/<row>``,
    the row's index in the split as the source ships it (e.g. ``sklearn:digits/train/123``). A validation
    image carved from train keeps its ``train/<row>`` identifier, so a list written by ``zoo data doctor``
    with one seed still names the same images with another.
An exclude file is a list of identifiers, one a line (``#`` starts a comment), or a CSV with a ``path``
column (the doctor's ``issues.csv``, filtered by the user).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

from zoo.errors import DataError

EXCLUDED_LIST_NAME = "excluded.txt"


def source_ids(kind: str, spec: str, split: str, ds: Any) -> list[str]:
    """The identifiers of ``ds``'s rows (a split as the source ships it, image column already ``image``)."""
    if kind == "imagefolder":
        paths = ds.with_format("arrow")[:]["image"].combine_chunks().field("path").to_pylist()
        if all(paths):
            return [str(p) for p in paths]
    return [f"{spec}/{split}/{i}" for i in range(len(ds))]


def read_exclude(path: str | os.PathLike) -> list[str]:
    """The identifiers an exclude file lists; relative paths are taken relative to the file's folder."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataError(
            f"data.exclude={str(path)!r}: no such file. Give a text file of paths (one a line) or the "
            "issues.csv `zoo data doctor` writes, filtered to the rows to drop"
        )
    text = file.read_text(encoding="utf-8-sig")
    first = text.split("\n", 1)[0]
    if "," in first and "path" in [c.strip() for c in next(csv.reader([first]))]:
        entries = [row["path"] for row in csv.DictReader(io.StringIO(text)) if row.get("path")]
    else:
        entries = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    out = []
    for e in entries:
        e = e.strip()
        p = Path(e).expanduser()
        if not p.is_absolute() and (file.parent / p).exists():
            e = str(file.parent / p)
        out.append(e)
    return out


def _norm(entry: str) -> str:
    """Paths compare by their real location (``./a/../b.jpg`` is ``b.jpg``); other identifiers as written."""
    return os.path.realpath(entry) if os.path.exists(entry) else entry


def apply_exclude(
    dd: Any, ids: dict[str, list[str]], entries: list[str], what: str
) -> tuple[Any, dict[str, list[str]], list[str], list[str]]:
    """Drop the listed rows from every split. Returns (splits, ids, dropped ids, entries that matched nothing)."""
    wanted = {_norm(e): e for e in entries}
    dropped: list[str] = []
    matched: set[str] = set()
    for split in list(dd):
        keep, keep_ids = [], []
        for i, rid in enumerate(ids[split]):
            key = _norm(rid)
            if key in wanted:
                dropped.append(rid)
                matched.add(key)
            else:
                keep.append(i)
                keep_ids.append(rid)
        if len(keep) < len(ids[split]):
            dd[split] = dd[split].select(keep)
            ids[split] = keep_ids
    if entries and not dropped:
        raise DataError(
            f"data.exclude lists {len(entries)} image(s) but none of them is in {what} (first: "
            f"{entries[0]!r}); identifiers are file paths for image folders and "
            f"'<spec>/<split>/<row>' otherwise (see the path column of `zoo data doctor`'s issues.csv)"
        )
    return dd, ids, dropped, [e for k, e in wanted.items() if k not in matched]


def write_excluded(run_dir: str | os.PathLike, dropped: list[str]) -> str:
    path = Path(run_dir) / EXCLUDED_LIST_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{d}\n" for d in dropped))
    return str(path)
