"""Errors users see. Each names the bad value and says how to fix it.

They derive from the built-in exception a caller would expect (``KeyError`` for an unknown name,
``ValueError`` for a bad value, ``RuntimeError`` for a failed load), so generic handlers keep working.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ZooError(Exception):
    """Base of every error zoo raises on purpose. ``exit_code``: what the `zoo` command exits with,
    2 for bad usage (a name, a path, a value), 1 for work that was tried and failed (no network...)."""

    exit_code = 2

    def __str__(self) -> str:  # KeyError quotes its message; keep ours readable
        return str(self.args[0]) if self.args else ""


class UnknownSourceError(ZooError, KeyError):
    """A model name used a source prefix nobody registered."""


class UnknownModelError(ZooError, KeyError):
    """The source exists but does not know the model."""


class WeightsUnavailableError(ZooError, RuntimeError):
    """Pretrained weights could not be obtained (offline, not cached, no network)."""

    exit_code = 1


class ConfigError(ZooError, ValueError):
    """A recipe, option or argument has a bad key or value."""


class DataError(ZooError, ValueError):
    """A dataset spec, split, column or image is unusable."""


class UnknownGroupError(ZooError, KeyError):
    """A layer group name the backbone does not have (freeze, layer-wise learning rates)."""


class TrainingError(ZooError, RuntimeError):
    """Training ran and went wrong in a way the user should hear about (ranks out of sync)."""

    exit_code = 1


class CheckpointError(ZooError, RuntimeError):
    """A checkpoint is missing, truncated, unsafe or does not match the model."""


class ArtifactUnavailableError(CheckpointError):
    """A Hub artifact could not be fetched (Hub unreachable or offline, not in the cache): failed work."""

    exit_code = 1


def closest(name: str, candidates: Iterable[str], n: int = 5) -> list[str]:
    """The candidates that look most like ``name`` (for 'did you mean' hints)."""
    pool = list(dict.fromkeys(candidates))
    found = difflib.get_close_matches(name, pool, n=n, cutoff=0.6)
    if len(found) < n:  # substring matches catch 'resnet' -> 'resnet18', which difflib ranks low
        low = name.lower()
        found += [c for c in pool if low in c.lower() and c not in found][: n - len(found)]
    return found


def did_you_mean(name: str, candidates: Iterable[str], n: int = 5) -> str:
    """' Did you mean: a, b?' or '' when nothing is close."""
    found = closest(name, candidates, n)
    return f" Did you mean: {', '.join(found)}?" if found else ""
