"""Atomic writes, shared by the trainer's state and best-weights files and the artifact folder.

A file is written beside its target and renamed over it (``os.replace`` is atomic on POSIX), so a reader or
a process killed at any moment sees the old content or the new, never half. A folder is swapped the same way
in two renames, after every file and the folder are fsynced and a marker dates the complete version;
``recover_dir`` (at the next save) finishes a swap that a kill interrupted between the renames, and
``newest_complete`` lets a reader find that version without writing anything.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path

COMPLETE_MARKER = ".complete"  # written last into a staged folder (its time_ns): the folder holds everything


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
        fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_with(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """``write(tmp_path)`` then rename to ``path``: for writers that want a file name (safetensors)."""
    path = Path(path)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}{path.suffix}"
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def staging_dir(target: Path) -> Path:
    """A fresh hidden folder beside ``target`` to build its next version in."""
    tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    return tmp


def fsync_dir(path: Path) -> None:
    """Make the names in a folder durable (a rename is only on disk once its folder is synced)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder: Path) -> None:
    """fsync every file under ``folder``, then every folder, deepest first, so contents precede names."""
    paths = sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True)
    for path in paths:
        if path.is_file() and not path.is_symlink():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    for path in [p for p in paths if p.is_dir()] + [folder]:
        fsync_dir(path)


def _siblings(target: Path, kind: str) -> list[Path]:
    if not target.parent.is_dir():
        return []
    return sorted(p for p in target.parent.glob(f".{target.name}.{kind}-*") if p.is_dir())


def _stamp(folder: Path) -> int | None:
    """When the folder was completed (its marker's nanosecond stamp), or None if it is not complete."""
    try:
        text = (folder / COMPLETE_MARKER).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else 0  # a marker of an older zoo ("ok"): complete, age unknown


_last_stamp = 0


def _next_stamp() -> int:
    global _last_stamp
    _last_stamp = max(time.time_ns(), _last_stamp + 1)
    return _last_stamp


def swap_dir(staged: Path, target: Path) -> None:
    """Put the complete folder ``staged`` at ``target``; an existing ``target`` is moved aside first and
    removed after. Every file is fsynced before the marker is written, and the parent folder after each
    rename, so a power cut leaves whole versions; killed between the two renames, ``recover_dir`` (run by
    the next save) restores the newest complete one. The marker stays in ``target``: it dates the version."""
    fsync_tree(staged)
    fsync_write(staged / COMPLETE_MARKER, f"{_next_stamp()}\n".encode())
    (staged / COMPLETE_MARKER).chmod(0o644)  # as every other file of an artifact, whatever the umask
    fsync_dir(staged)
    fsync_dir(target.parent)
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
    fsync_dir(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def newest_complete(target: Path) -> Path | None:
    """``target`` if it exists, else the newest complete version a killed swap left beside it (a staged
    folder with its marker, or the moved-aside old one), by the marker's stamp. Reads only: loading uses it."""
    if target.exists():
        return target
    candidates = [
        (stamp, p) for p in _siblings(target, "tmp") + _siblings(target, "old") if (stamp := _stamp(p)) is not None
    ]
    olds = [p for p in _siblings(target, "old") if _stamp(p) is None]  # moved aside by an older zoo
    if candidates:
        return max(candidates, key=lambda c: c[0])[1]
    return olds[0] if len(olds) == 1 else None


def recover_dir(target: Path) -> None:
    """Finish a folder swap that was killed midway: the newest complete version becomes ``target``.
    Only writers call it (zoo.save, before it writes); a load reads the newest version where it is."""
    if target.exists():
        return
    best = newest_complete(target)
    if best is not None:
        os.replace(best, target)
        fsync_dir(target.parent)


def remove_leftovers(target: Path) -> None:
    """Staged or moved-aside folders of earlier, killed writes (call only when ``target`` is whole)."""
    for p in _siblings(target, "tmp") + _siblings(target, "old"):
        shutil.rmtree(p, ignore_errors=True)
