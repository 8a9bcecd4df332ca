"""The reference per-sample path: PIL image -> normalised tensor, built from the MODEL's data config with
timm's ``create_transform`` (never hard-coded means or sizes). The fast path (fast.py) is tested against it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from zoo.errors import ConfigError

PRESETS = ("none", "flip-crop", "randaugment", "trivialaugment")
TRAIN_SCALE = (0.08, 1.0)  # timm's RandomResizedCrop defaults, kept so both paths agree
TRAIN_RATIO = (3 / 4, 4 / 3)


def resolve_config(data_config: dict[str, Any]) -> dict[str, Any]:
    """A complete data config: (3, H, W) input size, interpolation, mean, std, crop_pct, crop_mode."""
    from timm.data import DEFAULT_CROP_PCT, IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    if "input_size" not in data_config:
        raise ConfigError(
            f"data_config has no 'input_size' (keys: {sorted(data_config)}); "
            "pass the model's data_config (backbone.data_config)"
        )
    size = data_config["input_size"]
    size = (3, size, size) if isinstance(size, int) else tuple(int(s) for s in size)
    if len(size) == 2:
        size = (3, *size)
    return {
        "input_size": size,
        "interpolation": data_config.get("interpolation") or "bilinear",
        "mean": tuple(data_config.get("mean") or IMAGENET_DEFAULT_MEAN),
        "std": tuple(data_config.get("std") or IMAGENET_DEFAULT_STD),
        "crop_pct": float(data_config.get("crop_pct") or DEFAULT_CROP_PCT),
        "crop_mode": data_config.get("crop_mode") or "center",
    }


def check_preset(preset: str) -> str:
    if preset not in PRESETS:
        raise ConfigError(f"unknown augmentation preset {preset!r}; use one of {', '.join(PRESETS)}")
    return preset


def augment_op(preset: str, mean: tuple[float, ...]) -> Any:
    """The photometric/geometric augmentation of a preset, ONE definition for both paths: torchvision's
    RandAugment(num_ops=2, magnitude=9) or TrivialAugmentWide on a uint8 tensor [3, H, W], applied after the
    crop at the model's input size, as timm and the RandAugment paper place it (magnitudes such as the
    translation then refer to the model's input, and the cost does not grow with the photo).

    Why torchvision's and not timm's ``rand-m9-mstd0.5-inc1``: timm's works on PIL images only, so the fast
    path (uint8 batches on the training device) could not run it without a per-image round trip through
    PIL on the CPU; torchvision's runs on tensors on any device, and the PIL path converts its crop to a
    uint8 tensor before it, so both paths run the same code on the same 8-bit crop. Areas the geometric
    ops uncover are filled with the model's mean colour (timm's choice), which normalises to zero.
    ``None`` for presets without one."""
    from torchvision.transforms import v2

    fill = [round(255 * m) for m in mean]
    if preset == "randaugment":
        return v2.RandAugment(num_ops=2, magnitude=9, fill=fill)
    if preset == "trivialaugment":
        return v2.TrivialAugmentWide(fill=fill)
    return None


def _tensor_tail(augment: Any, cfg: dict[str, Any]) -> list[Any]:
    """PIL crop -> uint8 tensor -> augment -> float in 0..1 -> normalise (= timm's ToTensor + Normalize)."""
    import torch
    import torchvision.transforms as T
    from torchvision.transforms import v2

    ops: list[Any] = [T.PILToTensor()]
    if augment is not None:
        ops.append(augment)
    return ops + [v2.ToDtype(torch.float32, scale=True), T.Normalize(cfg["mean"], cfg["std"])]


def eval_scale_size(cfg: dict[str, Any]) -> tuple[int, int]:
    """The size timm resizes to before the center crop: floor(input / crop_pct)."""
    _, h, w = cfg["input_size"]
    return math.floor(h / cfg["crop_pct"]), math.floor(w / cfg["crop_pct"])


def _full_size(cfg: dict[str, Any], train: bool, preset: str) -> Callable:
    import torchvision.transforms as T
    from timm.data import create_transform

    common = dict(
        input_size=cfg["input_size"][1:], interpolation=cfg["interpolation"], mean=cfg["mean"], std=cfg["std"]
    )
    if not train or preset == "none":
        return create_transform(is_training=False, crop_pct=cfg["crop_pct"], crop_mode=cfg["crop_mode"], **common)
    kwargs = dict(is_training=True, scale=TRAIN_SCALE, ratio=TRAIN_RATIO, hflip=0.5, color_jitter=None, **common)
    primary, _, final = create_transform(separate=True, **kwargs)  # crop + flip | (none) | to tensor + normalise
    if preset == "flip-crop":
        return T.Compose([primary, final])
    return T.Compose([primary, *_tensor_tail(augment_op(preset, cfg["mean"]), cfg)])


def _own_size(cfg: dict[str, Any], side: int, train: bool, preset: str) -> Callable:
    """For ``upsample=False``: keep a small source at its own (square) size; CIFAR-style pad-and-crop."""
    import torchvision.transforms as T

    ops: list[Any] = [T.CenterCrop(side)]
    if train and preset != "none":
        ops = [
            T.CenterCrop(side),
            T.RandomCrop(side, padding=max(1, side // 8), padding_mode="reflect"),
            T.RandomHorizontalFlip(),
        ]
    return T.Compose(ops + _tensor_tail(augment_op(preset, cfg["mean"]) if train else None, cfg))


class PerSampleTransform:
    """PIL image -> float tensor [3, H, W]. With ``upsample=False`` images smaller than the model's input
    keep their own size (square-cropped); larger ones get the model's full pipeline."""

    def __init__(self, data_config: dict[str, Any], train: bool, preset: str, upsample: bool) -> None:
        self.cfg = resolve_config(data_config)
        self.train, self.preset, self.upsample = train, check_preset(preset), upsample
        self.full = _full_size(self.cfg, train, preset)
        self._small: dict[int, Callable] = {}

    def __call__(self, img: Any) -> Any:
        if img.mode != "RGB":
            from zoo.data.validate import to_rgb

            img = to_rgb(img)
        if not self.upsample:
            side = min(img.size)
            if side < min(self.cfg["input_size"][1:]):
                if side not in self._small:
                    self._small[side] = _own_size(self.cfg, side, self.train, self.preset)
                return self._small[side](img)
        return self.full(img)

    def __repr__(self) -> str:
        return f"PerSampleTransform(train={self.train}, preset={self.preset!r}, upsample={self.upsample},\n{self.full})"


def build_transform(
    data_config: dict[str, Any], train: bool, preset: str = "flip-crop", upsample: bool | None = None
) -> PerSampleTransform:
    """callable(PIL.Image) -> normalised float tensor [3, H, W] for the model whose data config is given.

    Eval: resize to input/crop_pct and center crop (timm's eval transform). Train presets: ``none`` (eval
    transform), ``flip-crop`` (RandomResizedCrop + horizontal flip), ``randaugment`` / ``trivialaugment``
    (flip-crop, then torchvision's RandAugment(2, 9) / TrivialAugmentWide on the crop: see ``augment_op``).
    """
    if upsample is None:  # a model trained with data.upsample=false carries it in its data config
        upsample = bool(data_config.get("upsample", True))
    return PerSampleTransform(data_config, train, preset, upsample)


def batch_fn(transform: Callable) -> Callable[[dict], dict]:
    """For ``Dataset.with_transform``: a batch of PIL images -> {"pixel_values": [tensor, ...], "label": [...]}."""

    def apply(batch: dict) -> dict:
        out = {"pixel_values": [transform(img) for img in batch["image"]]}
        if "label" in batch:
            out["label"] = batch["label"]
        return out

    return apply


def collate(examples: list[dict]) -> tuple[Any, Any]:
    """DataLoader collate for ``batch_fn`` rows: (images [B, 3, H, W], labels [B])."""
    import torch

    return (
        torch.stack([e["pixel_values"] for e in examples]),
        torch.tensor([e["label"] for e in examples], dtype=torch.long),
    )
