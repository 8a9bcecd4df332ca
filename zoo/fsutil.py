"""Atomic writes, shared by the trainer's state and best-weights files and the artifact folder.

A file is written beside its target and renamed over it (``os.replace`` is atomic on POSIX), so a reader or
a process killed at any moment sees the old content or the new, never half. A folder is swapped the same way
in two renames; ``recover_dir`` finishes or undoes a swap that a kill interrupted between them.
"""
from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

COMPLETE_MARKER = ".complete"  # written last into a staged folder: it holds everything


def fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        fsync_write(tmp, data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_with(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """``write(tmp_path)`` then rename to ``path``: for writers that want a file name (safetensors)."""
    path = Path(path)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}{path.suffix}"
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def staging_dir(target: Path) -> Path:
    """A fresh hidden folder beside ``target`` to build its next version in."""
    tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    return tmp


def _siblings(target: Path, kind: str) -> list[Path]:
    if not target.parent.is_dir():
        return []
    return sorted(p for p in target.parent.glob(f".{target.name}.{kind}-*") if p.is_dir())


def swap_dir(staged: Path, target: Path) -> None:
    """Put the complete folder ``staged`` at ``target``; an existing ``target`` is moved aside first and
    removed after. Killed between the two renames, ``recover_dir`` restores one whole version."""
    (staged / COMPLETE_MARKER).write_text("ok\n")
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(target, old)
    try:
        os.replace(staged, target)
    except BaseException:
        if old is not None:
            os.replace(old, target)
        raise
    (target / COMPLETE_MARKER).unlink(missing_ok=True)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def recover_dir(target: Path) -> None:
    """Finish or undo a folder swap that was killed midway, and drop leftovers of killed writes.

    Missing ``target``: a staged folder that was complete becomes it, else the moved-aside old one goes back.
    Present ``target``: leftovers beside it are removed (only when asked to write, see callers)."""
    if not target.exists():
        complete = [p for p in _siblings(target, "tmp") if (p / COMPLETE_MARKER).is_file()]
        olds = _siblings(target, "old")
        if complete:
            os.replace(complete[-1], target)
            (target / COMPLETE_MARKER).unlink(missing_ok=True)
        elif olds:
            os.replace(olds[-1], target)


def remove_leftovers(target: Path) -> None:
    """Staged or moved-aside folders of earlier, killed writes (call only when ``target`` is whole)."""
    for p in _siblings(target, "tmp") + _siblings(target, "old"):
        shutil.rmtree(p, ignore_errors=True)
