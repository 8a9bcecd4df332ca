"""What a dataset source gives before column normalisation (shared by the spec loaders and the folder reader)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class RawSource:
    """What a source gave before column normalisation. ``problems`` are bad files found while listing a
    folder (path, reason); ``fingerprint`` identifies the source content for caches and records."""

    splits: Any  # datasets.DatasetDict
    fingerprint: str
    problems: list[tuple[str, str]] = field(default_factory=list)
    empty_classes: list[str] = field(default_factory=list)
    label_names: list[str] | None = None
    scan: Any = None  # a validate.ScanResult when the loader already checked every image
