"""Which split each parquet file belongs to, told the way ``datasets`` tells it for a Hub repo.

The split comes from ``datasets.data_files.get_data_patterns``: the Hub's sharded names
(``data/train-00000-of-00002-<hash>.parquet``), then split folders (``data/train/…``, the converted layout
``default/test/0000.parquet``, ``plain_text/validation/…``), then split words in file names (``test.parquet``,
``imdb-train.parquet``). Where ``datasets`` would quietly make everything train (no split in any name) or skip
a file that no pattern claims, zoo stops and names the file: a test shard read as training rows would inflate
every test score without a word. One file named on its own is the data to train on (validation and test are
carved from it later).
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path

from zoo.data.splits import split_alias
from zoo.errors import DataError

NAMING_HELP = (
    "name each file as the Hub does (train-00000-of-00001.parquet, test.parquet) or put it in a "
    "split folder (train/, validation/, test/, e.g. default/test/0000.parquet)"
)


def _is_glob(location: str) -> bool:
    return any(c in location for c in "*?[")


def _glob_base(location: str) -> Path:
    """The folder above the first wildcard of a glob: split folders are looked for below it."""
    parts = Path(location).parts
    for i, part in enumerate(parts):
        if _is_glob(part):
            return Path(*parts[:i]) if i else Path(".")
    return Path(location).parent


def _candidates(location: str) -> tuple[Path, list[str]]:
    """(folder the split patterns are relative to, the parquet files the spec names)."""
    from datasets.data_files import resolve_pattern

    path = Path(location)
    if path.is_dir():
        base, pattern = path, str(path / "**" / "*.parquet")
    elif _is_glob(location):
        base, pattern = _glob_base(location), location
    else:
        return path.parent, [str(path)] if path.is_file() else []
    try:  # datasets' own resolver: it skips hidden files and folders the same way the split patterns do
        files = resolve_pattern(os.path.abspath(pattern), base_path=str(base))
    except FileNotFoundError:
        files = sorted(glob.glob(pattern, recursive=True))
    return base, sorted(os.path.abspath(f) for f in files if f.endswith(".parquet") and os.path.isfile(f))


def _split_patterns(base: Path) -> dict[str, list[str]]:
    from datasets.data_files import DEFAULT_PATTERNS_ALL, get_data_patterns

    try:
        patterns = get_data_patterns(str(base.absolute()))
    except (FileNotFoundError, ValueError):
        return {}
    if patterns == {str(k): v for k, v in DEFAULT_PATTERNS_ALL.items()}:
        return {}  # datasets' last resort ('everything is train'): no file says its split
    return {str(k): v for k, v in patterns.items()}


def _name_splits(path: str) -> list[str]:
    """The splits that words of the file name stand for (datasets' split keywords, e.g. ``eval`` = test)."""
    from datasets.data_files import SPLIT_KEYWORDS

    words = re.split(r"[-._ 0-9]+", Path(path).name.lower())
    return [str(split) for split, keys in SPLIT_KEYWORDS.items() if any(k in words for k in keys)]


def _assign(base: Path, files: list[str]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """split -> files, and file -> every split that claimed it."""
    from datasets.data_files import resolve_pattern

    wanted = set(files)
    claims: dict[str, list[str]] = {f: [] for f in files}
    for split, patterns in _split_patterns(base).items():
        hits: set[str] = set()
        for pattern in patterns:
            try:
                hits.update(os.path.abspath(f) for f in resolve_pattern(pattern, base_path=str(base.absolute())))
            except FileNotFoundError:
                continue
        name = split_alias(split) or split
        for f in sorted(hits & wanted):
            if name not in claims[f]:
                claims[f].append(name)
    for f, splits in claims.items():  # a split word in the file name that its folder contradicts
        if splits:
            splits.extend(w for w in _name_splits(f) if w not in splits)
    groups: dict[str, list[str]] = {}
    for f, splits in claims.items():
        if len(splits) == 1:
            groups.setdefault(splits[0], []).append(f)
    return groups, claims


def _check_one_config(base: Path, groups: dict[str, list[str]]) -> None:
    """The converted layout keeps one folder per config ({config}/{split}/NNNN.parquet): reading two configs
    at once would mix their rows, so the folders above the split folders must be one."""
    prefixes: dict[str, str] = {}
    for split, files in groups.items():
        for f in files:
            parts = Path(f).relative_to(base.absolute()).parts[:-1]
            idx = next((i for i, p in enumerate(parts) if (split_alias(p) or p) == split), None)
            if idx is not None:
                prefixes.setdefault("/".join(parts[:idx]) or ".", f)
    if len(prefixes) > 1:
        listed = ", ".join(f"{p}/ ({Path(f).name})" for p, f in sorted(prefixes.items()))
        raise DataError(
            f"parquet files under {base} come from {len(prefixes)} different folders holding split "
            f"folders: {listed}. These are different configs of a dataset; point the spec at one "
            f"of them, e.g. parquet:{base / min(prefixes)}"
        )


def parquet_splits(location: str) -> dict[str, list[str]]:
    """Parquet files grouped by split (``train``/``validation``/``test`` or the Hub's own split name).

    A file no pattern claims, or claimed by two splits, is a DataError naming it. Files of one split only are
    what we train on (their split becomes ``train``)."""
    base, files = _candidates(location)
    if not files:
        raise DataError(f"no parquet files match {location!r}")
    if len(files) == 1 and (Path(location).is_file() or _is_glob(location)):
        return {"train": files}  # the one file the user named is the data
    groups, claims = _assign(base, files)
    unknown = [f for f, s in claims.items() if not s]
    if unknown:
        shown = ", ".join(unknown[:3]) + (f" and {len(unknown) - 3} more" if len(unknown) > 3 else "")
        told = f" (the others are {', '.join(sorted(groups))})" if groups else ""
        raise DataError(
            f"cannot tell which split {len(unknown)} parquet file(s) belong to: {shown}{told}. "
            f"Fix: {NAMING_HELP}, or pass a glob that leaves them out."
        )
    both = {f: s for f, s in claims.items() if len(s) > 1}
    if both:
        f, s = next(iter(both.items()))
        raise DataError(
            f"parquet file {f} is named as two splits ({' and '.join(s)}) by its folder and file "
            f"names; rename it so that only one split word appears in its path."
        )
    _check_one_config(base, groups)
    if "train" not in groups and len(groups) == 1:  # files of one split only: they are what we train on
        groups = {"train": next(iter(groups.values()))}
    return groups
