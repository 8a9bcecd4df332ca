"""Weights in and out of the adapters: one clear error when pretrained weights cannot be had, whatever the
source's loader raised; failing fast when the Hub cannot be reached; a strict, explained load of a saved
safetensors file.

huggingface_hub retries a failed download with backoff (about 23 s before it gives up when there is no
network) and has no setting to skip that. Its own switch for "no network" is offline mode, which it reads
at import (``HF_HUB_OFFLINE``) but checks at every request (``constants.is_offline_mode()``). So before a
Hub download we probe the endpoint once per process (a TCP connect with a short timeout); when it cannot be
reached, the download runs in offline mode: a cached file still loads, a missing one fails at once.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import nn

from zoo.errors import CheckpointError, WeightsUnavailableError

# Exceptions that mean "the weights are not reachable", from any of the loaders zoo calls:
# huggingface_hub (LocalEntryNotFoundError, OfflineModeIsEnabled, HfHubHTTPError...), transformers
# (OSError "Can't load ..."), torch.hub/urllib (URLError) and httpx/requests connection errors.
_NETWORK_MODULES = ("huggingface_hub", "urllib", "httpx", "httpx2", "httpcore", "requests", "socket")
PROBE_TIMEOUT = 1.5  # seconds; a reachable Hub answers a TCP connect in milliseconds
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
PRETRAINED_FIX = "pass pretrained=False (recipe key model.pretrained=false) for random weights"


def hub_offline() -> bool:
    """True when the user asked for offline mode (huggingface_hub's own switch, or ZOO_OFFLINE)."""
    from huggingface_hub import constants

    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("ZOO_OFFLINE", ""))
    return constants.is_offline_mode() or any(f.strip().lower() in {"1", "true", "yes", "on"} for f in flags)


def hub_endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


@functools.cache
def _probe(endpoint: str, timeout: float) -> str | None:
    """None when a TCP connection to the endpoint's host opens, else why not."""
    url = urlparse(endpoint)
    if not url.hostname:
        return f"HF_ENDPOINT={endpoint!r} is not a URL"
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return None
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except OSError as exc:  # refused, unreachable, DNS failure
        return exc.strerror or str(exc) or type(exc).__name__


def hub_unreachable() -> str | None:
    """Why the Hub endpoint cannot be reached, or None when it can (or a proxy decides: not probed).
    Cached per process and endpoint."""
    if any(os.environ.get(v) for v in _PROXY_VARS):
        return None
    return _probe(hub_endpoint(), PROBE_TIMEOUT)


@contextlib.contextmanager
def hub_access() -> Iterator[str | None]:
    """Run a Hub download; when the endpoint cannot be reached, in huggingface_hub's offline mode for the
    duration (cached files load, missing ones fail at once). Yields why the Hub is unreachable, or None."""
    from huggingface_hub import constants

    if hub_offline():
        yield None
        return
    why = hub_unreachable()
    if why is None:
        yield None
        return
    saved = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield f"the Hub at {hub_endpoint()} cannot be reached ({why})"
    finally:
        constants.HF_HUB_OFFLINE = saved


def _is_unavailable(exc: BaseException) -> bool:
    for cls in type(exc).__mro__:
        if cls.__module__.split(".")[0] in _NETWORK_MODULES:
            return True
    return isinstance(exc, (OSError, ConnectionError, TimeoutError))


def unavailable_reason(unreachable: str | None) -> str:
    """Why a download failed, in words: offline by request, Hub unreachable, or the download failed."""
    if unreachable:
        return f"{unreachable} and they are not in the local cache"
    if os.environ.get("HF_HUB_OFFLINE") or os.environ.get("ZOO_OFFLINE"):
        return "offline mode is set (HF_HUB_OFFLINE/ZOO_OFFLINE) and they are not in the local cache"
    return "they could not be downloaded (no network, or the repository is private or gone)"


@contextlib.contextmanager
def wrap_weight_errors(
    model_name: str, pretrained: bool, hub: bool = True, needed: str = "pretrained weights"
) -> Iterator[None]:
    """Re-raise a loader's network/cache failure as WeightsUnavailableError naming model and reason.
    ``hub``: the loader may download from the Hugging Face Hub (probed first, see :func:`hub_access`).
    ``needed``: what is downloaded; random weights are offered as a fix only when it is the weights."""
    with hub_access() if (pretrained and hub) else contextlib.nullcontext() as unreachable:
        try:
            yield
        except WeightsUnavailableError:
            raise
        except Exception as exc:
            if not pretrained or not _is_unavailable(exc):
                raise
            fix = "run once with network access to fill the cache (or set HF_HOME to a cache that has them)"
            if needed == "pretrained weights":
                fix += f", or {PRETRAINED_FIX}"
            raise WeightsUnavailableError(
                f"cannot load {needed} for {model_name!r}: {unavailable_reason(unreachable)}. "
                f"Cause: {first_line(exc)}. Fix: {fix}."
            ) from exc


def first_line(exc: BaseException) -> str:
    """'TypeName: first line of the message' (messages of loaders can run to pages)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:300] if lines else type(exc).__name__}"


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
        raise CheckpointError(
            f"{path} is not a readable safetensors file ({first_line(exc)}); it is truncated "
            f"or corrupt. Re-save the model or re-download the file."
        ) from exc
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    missing = [k for k in expected if k not in shapes]
    unexpected = [k for k in shapes if k not in expected]
    wrong = [
        f"{k} {list(shapes[k])} in file vs {list(expected[k])} in model"
        for k in expected
        if k in shapes and shapes[k] != expected[k]
    ]
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
