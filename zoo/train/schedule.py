"""Learning-rate schedules with per-group scales that change between epochs.

Written by hand rather than with torch's LambdaLR or timm's schedulers because the strategies need three
things at once: a per-layer-group multiplier (layer-wise decay), multipliers that change mid-run (a group
unfreezes at epoch E: its lr goes from 0 to its share), and an exact, small state for resume.
"""

from __future__ import annotations

import math
from typing import Any, get_args

import torch

from zoo.train.schema import ScheduleName

SCHEDULES: tuple[str, ...] = get_args(ScheduleName)


def schedule_factor(name: str, step: int, total: int, warmup: int, min_ratio: float) -> float:
    """Multiplier of the base lr at optimizer step ``step`` (0-based) of ``total``."""
    total = max(total, 1)
    if name == "onecycle":
        # torch.optim.lr_scheduler.OneCycleLR's default shape: cosine up from lr/25 over 30% of the run,
        # then cosine down to lr/(25*1e4).
        peak = max(int(0.3 * total), 1)
        start, end = 1 / 25, 1 / 25 / 1e4
        if step < peak:
            return start + (1 - start) * (1 - math.cos(math.pi * step / peak)) / 2
        t = min((step - peak) / max(total - peak, 1), 1.0)
        return end + (1 - end) * (1 + math.cos(math.pi * t)) / 2
    if warmup and step < warmup:
        return (step + 1) / (warmup + 1)
    if name == "constant":
        return 1.0
    t = min((step - warmup) / max(total - warmup, 1), 1.0)
    return min_ratio + (1 - min_ratio) * (1 + math.cos(math.pi * t)) / 2


class GroupLRScheduler:
    """Sets ``lr = base_lr * scale[group] * schedule(step)`` on every optimizer param group.

    Param groups carry a ``group_name`` (the layer group). ``set_scales`` is called when the strategy's
    phase changes; ``step`` after each optimizer step. ``state_dict`` makes resume exact.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        name: str,
        base_lr: float,
        total_steps: int,
        warmup_steps: int = 0,
        min_lr: float = 0.0,
    ) -> None:
        self.optimizer = optimizer
        self.name = name
        self.base_lr = base_lr
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps
        self.min_ratio = (min_lr / base_lr) if base_lr else 0.0
        self.step_count = 0
        self.scales: dict[str, float] = {}
        self._apply()

    def factor(self) -> float:
        return schedule_factor(self.name, self.step_count, self.total_steps, self.warmup_steps, self.min_ratio)

    def set_scales(self, scales: dict[str, float]) -> None:
        self.scales = dict(scales)
        self._apply()

    def step(self) -> None:
        self.step_count += 1
        self._apply()

    def _apply(self) -> None:
        f = self.factor()
        for group in self.optimizer.param_groups:
            group["lr"] = self.base_lr * self.scales.get(group.get("group_name", ""), 1.0) * f

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {"step_count": self.step_count, "scales": dict(self.scales)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step_count = int(state["step_count"])
        self.scales = dict(state["scales"])
        self._apply()
