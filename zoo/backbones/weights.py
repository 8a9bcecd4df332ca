"""Turning 'could not get the weights' into one clear error, whatever the source's loader raised."""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from zoo.errors import WeightsUnavailableError

# Exceptions that mean "the weights are not reachable", from any of the loaders zoo calls:
# huggingface_hub (LocalEntryNotFoundError, OfflineModeIsEnabled, HfHubHTTPError...), transformers
# (OSError "Can't load ..."), torch.hub/urllib (URLError) and httpx/requests connection errors.
_NETWORK_MODULES = ("huggingface_hub", "urllib", "httpx", "httpcore", "requests", "socket")


def hub_offline() -> bool:
    """True when the user asked for offline mode (huggingface_hub's own switch, or ZOO_OFFLINE)."""
    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("ZOO_OFFLINE", ""))
    return any(f.strip().lower() in {"1", "true", "yes", "on"} for f in flags)


def _is_unavailable(exc: BaseException) -> bool:
    for cls in type(exc).__mro__:
        if cls.__module__.split(".")[0] in _NETWORK_MODULES:
            return True
    return isinstance(exc, (OSError, ConnectionError, TimeoutError))


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    return f"{type(exc).__name__}: {first[:300]}"


@contextlib.contextmanager
def wrap_weight_errors(model_name: str, pretrained: bool) -> Iterator[None]:
    """Re-raise a loader's network/cache failure as WeightsUnavailableError naming model and reason."""
    try:
        yield
    except WeightsUnavailableError:
        raise
    except Exception as exc:
        if not pretrained or not _is_unavailable(exc):
            raise
        where = (
            "HF_HUB_OFFLINE=1 is set and they are not in the local cache"
            if hub_offline()
            else "they could not be downloaded (no network, or the repository is private or gone)"
        )
        raise WeightsUnavailableError(
            f"cannot load pretrained weights for {model_name!r}: {where}. Cause: {_reason(exc)}. "
            f"Fix: run once with network access to fill the cache (or set HF_HOME to a cache that has "
            f"them), or pass pretrained=False (`--no-pretrained`) for random weights."
        ) from exc
