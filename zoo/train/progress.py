"""Where a run stands, as one typed object saved with each resumable state and restored as one piece."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass
class Progress:
    """The trainer's counters: the position in the run, the best epoch so far, the time and images spent,
    and the running sums of the current epoch (summed over processes), so a resumed epoch reports the same
    train loss as an uninterrupted one."""

    epoch: int = 0  # epochs completed
    batch_in_epoch: int = 0  # batches of the current epoch already trained
    global_step: int = 0  # optimizer steps
    best_score: float = -math.inf  # the selection metric's best value (train.select_by; higher is better)
    best_top1: float = -1.0  # validation top-1 of that best epoch
    best_epoch: int = -1
    bad_epochs: int = 0  # epochs since the best, for early stopping
    train_seconds: float = 0.0
    images_seen: int = 0
    ep_loss: float = 0.0
    ep_correct: float = 0.0
    ep_seen: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Progress:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "best_top1" in data and "best_score" not in data:  # states written by zoo before this field
            values["best_score"] = data["best_top1"]
        if "best_score" in data and "best_top1" not in data:  # states written before train.select_by
            values["best_top1"] = data["best_score"]
        return cls(**values)

    def end_epoch(self) -> None:
        self.epoch += 1
        self.batch_in_epoch = 0
        self.ep_loss = self.ep_correct = self.ep_seen = 0.0
