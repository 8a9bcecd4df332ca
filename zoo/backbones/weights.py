"""Weights in and out of the adapters: one clear error when pretrained weights cannot be had, whatever the
source's loader raised, and a strict, explained load of a saved safetensors file."""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import nn

from zoo.errors import CheckpointError, WeightsUnavailableError

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


def first_line(exc: BaseException) -> str:
    """'TypeName: first line of the message' (messages of loaders can run to pages)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:300] if lines else ''}"


def preview(items: list[str], n: int = 5) -> str:
    more = f" (+{len(items) - n} more)" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def load_weights(module: nn.Module, path: Path, config_hint: str) -> None:
    """Strictly load a safetensors file, after checking its keys and shapes against the built model, so a
    wrong architecture or head size is an error naming the file, the tensors and the config that disagree."""
    try:
        with safe_open(str(path), framework="pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file ({first_line(exc)}); it is truncated "
                              f"or corrupt. Re-save the model or re-download the file.") from exc
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    missing = [k for k in expected if k not in shapes]
    unexpected = [k for k in shapes if k not in expected]
    wrong = [f"{k} {list(shapes[k])} in file vs {list(expected[k])} in model" for k in expected
             if k in shapes and shapes[k] != expected[k]]
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            parts.append(f"wrong shapes: {preview(wrong)}")
        if missing:
            parts.append(f"{len(missing)} missing tensors: {preview(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensors: {preview(unexpected)}")
        raise CheckpointError(f"{path} does not match the model described by {config_hint}: " + "; ".join(parts))
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path} is truncated or corrupt ({first_line(exc)}); re-save or re-download it") from exc
    module.load_state_dict(state, strict=True)
