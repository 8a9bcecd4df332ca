"""Curated Hugging Face image-classification checkpoints for `zoo models --source hf`.

transformers has no registry of checkpoints (the Hub is the registry), so this list is kept by hand:
one or two well-known checkpoints per family, with the figures their model cards publish. Any other
``hf:<id>`` works at creation time.
"""

from __future__ import annotations

from typing import Any


def _row(family: str, params: float, res: int, data: str, license: str = "apache-2.0") -> dict[str, Any]:
    return {
        "family": family,
        "param_count": params,
        "resolution": res,
        "pretrain_data": data,
        "license": license,
        "pretrained_tag": data,
    }


CATALOG: dict[str, dict[str, Any]] = {
    "google/vit-base-patch16-224": _row("vit", 86.6, 224, "in21k_ft_in1k"),
    "google/vit-large-patch16-224": _row("vit", 304.3, 224, "in21k_ft_in1k"),
    "facebook/deit-small-patch16-224": _row("deit", 22.1, 224, "in1k"),
    "facebook/deit-base-patch16-224": _row("deit", 86.6, 224, "in1k"),
    "microsoft/beit-base-patch16-224": _row("beit", 86.5, 224, "in21k_ft_in1k"),
    "facebook/dinov2-small-imagenet1k-1-layer": _row("dinov2", 22.1, 224, "lvd142m_lp_in1k"),
    "facebook/dinov2-base-imagenet1k-1-layer": _row("dinov2", 86.6, 224, "lvd142m_lp_in1k"),
    "facebook/convnext-tiny-224": _row("convnext", 28.6, 224, "in1k"),
    "facebook/convnext-base-224": _row("convnext", 88.6, 224, "in1k"),
    "microsoft/swin-tiny-patch4-window7-224": _row("swin", 28.3, 224, "in1k"),
    "microsoft/resnet-18": _row("resnet", 11.7, 224, "in1k"),
    "microsoft/resnet-50": _row("resnet", 25.6, 224, "in1k"),
    "google/efficientnet-b0": _row("efficientnet", 5.3, 224, "in1k"),
    "apple/mobilevit-small": _row("mobilevit", 5.6, 256, "in1k", license="other"),
    "facebook/regnet-y-040": _row("regnet", 20.6, 224, "in1k"),
    "google/mobilenet_v2_1.0_224": _row("mobilenet_v2", 3.5, 224, "in1k", license="other"),
}
