"""The training loss: cross-entropy with label smoothing, soft targets when Mixup/CutMix mix the batch
(zoo.data.mixing), and per-class weights (``train.class_weights``). Kept apart from the data layer: a loss is
the trainer's, whatever produced the batch."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class WeightedCrossEntropy(nn.Module):
    """Cross-entropy with per-class weights (``train.class_weights``), for class indices or, when mixing,
    probability targets (torch weighs those per class as well). Computed in float32 whatever the autocast
    dtype of the logits, since the weights are float32."""

    weight: torch.Tensor  # a buffer: moves with the module

    def __init__(self, weight: torch.Tensor, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("weight", weight.float())
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(
            logits.float(), target, weight=self.weight, label_smoothing=self.label_smoothing
        )


def build_loss(mix: Any, label_smoothing: float = 0.0, class_weights: torch.Tensor | None = None) -> nn.Module:
    """The training loss that goes with ``build_mixup``'s result: soft-target cross-entropy when mixing
    (targets are then probability vectors), else cross-entropy with label smoothing. ``class_weights``
    (zoo.data.balance.loss_weights) weighs each class's terms; timm's Mixup already smooths its targets."""
    if class_weights is not None:
        return WeightedCrossEntropy(class_weights, 0.0 if mix is not None else label_smoothing)
    if mix is not None:
        from timm.loss import SoftTargetCrossEntropy

        return SoftTargetCrossEntropy()
    return nn.CrossEntropyLoss(label_smoothing=label_smoothing)
