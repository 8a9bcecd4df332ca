"""``zoo convert``: a trusted pickle state dict rewritten as safetensors, so zoo (which never unpickles) can
load it."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from zoo.artifact.files import WEIGHTS_NAME
from zoo.backbones.weights import first_line
from zoo.errors import CheckpointError


def convert_pickle(src: str | os.PathLike[str], dst: str | os.PathLike[str] | None = None) -> Path:
    """Rewrite a trusted pickle state dict as safetensors, reading it with ``torch.load(weights_only=True)``
    (tensors and plain containers only; objects that need code to unpickle are refused by torch)."""
    src = Path(src)
    if not src.is_file():
        raise CheckpointError(f"no such file: {src}")
    dst = Path(dst) if dst else src.parent / WEIGHTS_NAME
    try:
        state = torch.load(str(src), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError/RuntimeError for anything beyond plain tensors
        raise CheckpointError(
            f"{src} cannot be read with torch.load(weights_only=True) ({first_line(exc)}); "
            f"it is not a plain state dict, so zoo will not unpickle it"
        ) from exc
    for key in ("state_dict", "model", "model_state_dict"):  # common training-checkpoint wrappers
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    tensors = dict(_flat_tensors(state))
    if not tensors:
        raise CheckpointError(f"{src} holds no tensors ({type(state).__name__}); nothing to convert")
    save_file({k: v.contiguous().clone() for k, v in tensors.items()}, str(dst), metadata={"format": "pt"})
    return dst


def _flat_tensors(state: Any, prefix: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    if isinstance(state, torch.Tensor):
        yield prefix, state
    elif isinstance(state, Mapping):
        for k, v in state.items():
            yield from _flat_tensors(v, f"{prefix}.{k}" if prefix else str(k))
