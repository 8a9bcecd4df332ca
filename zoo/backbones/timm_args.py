"""Which ``model_args`` of a saved timm ``config.json`` zoo passes on to ``timm.create_model`` when loading.

``create_model`` takes keyword arguments that do more than shape the network: ``checkpoint_path`` loads
another file, ``pretrained_cfg_overlay`` / ``pretrained_cfg`` / ``cache_dir`` change where weights come from,
``features_only`` changes what the model returns, and a huge ``img_size`` or ``depth`` allocates memory before
any weight is checked. A file from the Hub is untrusted input, so only architecture settings on this list
pass, each with a bound; anything else is refused with its name.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zoo.errors import CheckpointError

_RATE = 1.0
# key -> the largest number it (or each number in its list) may hold; None: a bool or a short name only
ALLOWED: dict[str, float | None] = {
    # every timm family
    "in_chans": 16,
    "img_size": 4096,
    "global_pool": None,
    "drop_rate": _RATE,
    "drop_path_rate": _RATE,
    "proj_drop_rate": _RATE,
    "attn_drop_rate": _RATE,
    "pos_drop_rate": _RATE,
    "patch_drop_rate": _RATE,
    "drop_block_rate": _RATE,
    "act_layer": None,
    "norm_layer": None,
    # transformers (ViT, DeiT, Swin, EVA, ...)
    "patch_size": 64,
    "embed_dim": 8192,
    "depth": 256,
    "num_heads": 256,
    "mlp_ratio": 16,
    "qkv_bias": None,
    "qk_norm": None,
    "init_values": 10,
    "class_token": None,
    "no_embed_class": None,
    "reg_tokens": 64,
    "pre_norm": None,
    "final_norm": None,
    "fc_norm": None,
    "dynamic_img_size": None,
    "dynamic_img_pad": None,
    "pos_embed": None,
    "window_size": 64,
    "embed_dims": 8192,
    "depths": 256,
    # convnets (ResNet, ConvNeXt, EfficientNet, RegNet, ...)
    "output_stride": 64,
    "layers": 256,
    "channels": 8192,
    "dims": 8192,
    "widths": 8192,
    "stem_width": 8192,
    "stem_type": None,
    "width_multiplier": 16,
    "channel_multiplier": 16,
    "depth_multiplier": 16,
    "ls_init_value": 10,
    "head_hidden_size": 8192,
    "num_features": 8192,
}
REASONS = {
    "checkpoint_path": "it makes timm load another file",
    "pretrained_cfg_overlay": "it replaces where the weights come from",
    "pretrained_cfg": "config.json's own pretrained_cfg is used",
    "pretrained": "zoo loads the weights from model.safetensors itself",
    "cache_dir": "it makes timm download",
    "features_only": "it changes what the model returns",
    "out_indices": "it changes what the model returns",
    "num_classes": "config.json's top-level num_classes is used",
}
MAX_ITEMS = 8
MAX_NAME = 64


def _numbers_ok(value: Any, bound: float | None) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, str):
        return bound is None and 0 < len(value) <= MAX_NAME and value.replace("_", "").replace(".", "").isalnum()
    if isinstance(value, (int, float)):
        return bound is not None and 0 <= value <= bound
    if isinstance(value, (list, tuple)) and bound is not None:
        return 0 < len(value) <= MAX_ITEMS and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= bound for v in value
        )
    return value is None


def checked_model_args(config: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """``model_args`` of a timm config.json, each key allowed and each value within bounds, else a
    CheckpointError naming the key and the file."""
    raw = config.get("model_args") or {}
    if not isinstance(raw, Mapping):
        raise CheckpointError(f"{path}: field 'model_args' must be an object, found {type(raw).__name__}")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "num_classes":
            continue  # timm 1.0 writes it there too; the top-level field is the one used
        if key not in ALLOWED:
            why = REASONS.get(key, "it is not an architecture setting zoo knows")
            raise CheckpointError(
                f"{path}: model_args key {key!r} is refused ({why}); zoo passes only architecture settings "
                f"({', '.join(sorted(ALLOWED)[:6])}, ...) to timm.create_model when loading. Remove the key "
                f"from config.json if the folder is yours, or do not load this model."
            )
        if not _numbers_ok(value, ALLOWED[key]):
            limit = "a bool or a short name" if ALLOWED[key] is None else f"numbers from 0 to {ALLOWED[key]:g}"
            raise CheckpointError(
                f"{path}: model_args {key!r} = {value!r} is out of range ({limit}, at most "
                f"{MAX_ITEMS} of them); the file is corrupt or was not written by timm."
            )
        out[key] = value
    return out
