"""The artifact's integrity manifest: one ``checksums.sha256`` file (``sha256sum`` format, so ``sha256sum -c
checksums.sha256`` checks it too) with the sha256 of every file zoo.save wrote except the model card and itself.

It covers every file loading reads: ``config.json`` (architecture, timm's mean/std, label names), ``zoo.json``
(labels, data config), the weights and ``preprocessor_config.json``. ``zoo.load`` refuses a listed file whose
bytes changed, a listed file that is missing, and a file loading reads (any top-level ``.json`` or
``.safetensors``) that the manifest does not list. It is an integrity check, not provenance: it catches
corruption and partial edits, not someone who rewrites the files and the manifest together.

Artifacts of format_version 2 and later must carry it: deleting it does not turn the check off. Format 1
artifacts (before the manifest) recorded only the weights' sha256 in ``zoo.json``'s ``files``; they still load,
with that check and a warning naming what is not covered (re-save to upgrade them).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zoo.artifact.files import CARD_NAME, META_NAME, sha256_of
from zoo.errors import CheckpointError

MANIFEST_NAME = "checksums.sha256"
MANIFEST_SINCE = 2  # the first zoo.json format_version whose artifacts carry the manifest
NOT_HASHED = (CARD_NAME, MANIFEST_NAME)  # the card is re-rendered with the repo id when pushed
_LINE = re.compile(r"^([0-9a-f]{64}) [ *](\S.*)$")
FIX = "Re-download the model, or re-save it from its source (zoo.save)"


def write_manifest(folder: Path) -> Path:
    """Hash every file of ``folder`` but the card; call it last, when nothing else will be written."""
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name not in NOT_HASHED)
    path = folder / MANIFEST_NAME
    path.write_text("".join(f"{sha256_of(folder / n)}  {n}\n" for n in names), encoding="utf-8")
    return path


def read_manifest(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        match = _LINE.match(line)
        name = match.group(2) if match else ""
        if not match or Path(name).name != name or name in (".", ".."):
            raise CheckpointError(
                f"{path}: line {number} is not '<sha256>  <file name>' ({line[:80]!r}); the manifest is corrupt. {FIX}."
            )
        out[name] = match.group(1)
    return out


def _read_on_load(name: str) -> bool:
    return Path(name).suffix in (".json", ".safetensors") and name not in NOT_HASHED


def files_loading_reads(folder: Path) -> list[str]:
    """Every file a loader may read: the weights and every JSON config (timm's, transformers', the
    image processor's, zoo.json)."""
    return sorted(p.name for p in folder.iterdir() if p.is_file() and _read_on_load(p.name))


def verify(folder: Path, meta: Mapping[str, Any]) -> None:
    """Refuse an artifact whose files differ from what zoo.save wrote (see the module docstring)."""
    path = folder / MANIFEST_NAME
    version = meta.get("format_version", 1) if meta else None
    if not path.is_file():
        if version is None:
            return  # a plain timm / transformers folder: nothing was recorded, nothing to check
        if version >= MANIFEST_SINCE:
            raise CheckpointError(
                f"{path} is missing, but {folder / META_NAME} has format_version {version}, whose artifacts always "
                f"carry it: the folder was changed after zoo.save wrote it. {FIX}."
            )
        _verify_legacy(folder, meta)
        return
    recorded = read_manifest(path)
    for name, digest in recorded.items():
        file = folder / name
        if not file.is_file():
            if not _read_on_load(name):
                continue  # e.g. curve.png, left out of a Hub download: loading never reads it
            raise CheckpointError(f"{file} is listed in {MANIFEST_NAME} but missing. {FIX}.")
        actual = sha256_of(file)
        if actual != digest:
            raise CheckpointError(
                f"{file} is corrupt: its sha256 is {actual[:16]}..., {MANIFEST_NAME} recorded {digest[:16]}... "
                f"(the file was damaged or edited after zoo.save wrote it). {FIX}."
            )
    unlisted = [n for n in files_loading_reads(folder) if n not in recorded]
    if unlisted:
        raise CheckpointError(
            f"{folder / unlisted[0]} is read when loading but {MANIFEST_NAME} does not list it"
            f"{' (nor ' + ', '.join(unlisted[1:]) + ')' if unlisted[1:] else ''}: it was added after zoo.save "
            f"wrote the folder. Remove it, or re-save the model (zoo.save) to record it."
        )


def _verify_legacy(folder: Path, meta: Mapping[str, Any]) -> None:
    """Format 1: zoo.json's ``files`` held the weights' sha256 (zoo.save always wrote it)."""
    meta_path = folder / META_NAME
    recorded = meta.get("files")
    if not isinstance(recorded, Mapping) or not recorded:
        raise CheckpointError(
            f"{meta_path}: field 'files' (the sha256 of the weights, written by every zoo.save "
            f"of format_version 1) is missing or empty: the file was edited. {FIX}."
        )
    for name, digest in recorded.items():
        file = folder / str(name)
        if Path(str(name)).name != str(name) or not file.is_file():
            raise CheckpointError(f"{file} is listed in {META_NAME} but missing. {FIX}.")
        actual = sha256_of(file)
        if actual != digest:
            raise CheckpointError(
                f"{file} is corrupt: its sha256 is {actual[:16]}..., {META_NAME} recorded {str(digest)[:16]}... "
                f"(the file changed after zoo.save wrote it). {FIX}."
            )
    warnings.warn(
        f"{folder} is a format_version 1 artifact: only its weights are checked, not config.json or "
        f"zoo.json (labels, preprocessing). Re-save it (zoo.save(zoo.load(...), ...)) to record "
        f"{MANIFEST_NAME}.",
        UserWarning,
        stacklevel=4,
    )
