"""Where a run stands, as one typed object saved with each resumable state and restored as one piece; and
the guard that refuses to resume a run under changed settings."""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from zoo.errors import ConfigError

# Keys that may change between a run and its resumption: how long it runs and where its output goes.
# Anything else (data, model, strategy, optimiser, schedule, precision...) would mix two runs into one.
RESUMABLE_KEYS = ("train.epochs", "train.early_stopping", "train.save_every_steps", "train.keep_last",
                  "train.log_every", "resume")
RESUMABLE_SECTIONS = ("output.", "hub.")


@dataclass
class Progress:
    """The trainer's counters: the position in the run, the best epoch so far, the time and images spent,
    and the running sums of the current epoch (summed over processes), so a resumed epoch reports the same
    train loss as an uninterrupted one."""

    epoch: int = 0  # epochs completed
    batch_in_epoch: int = 0  # batches of the current epoch already trained
    global_step: int = 0  # optimizer steps
    best_score: float = -math.inf  # the selection metric's best value (higher is better)
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
        return cls(**values)

    def end_epoch(self) -> None:
        self.epoch += 1
        self.batch_in_epoch = 0
        self.ep_loss = self.ep_correct = self.ep_seen = 0.0


def _flat(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping) and k != "variants":
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def changed_keys(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """(key, saved value, current value) for every setting that differs and may not change on resume."""
    a, b = _flat(saved), _flat(current)
    changed = []
    for key in sorted(set(a) | set(b)):
        if key in RESUMABLE_KEYS or key.startswith(RESUMABLE_SECTIONS) or key == "variants":
            continue
        if a.get(key) != b.get(key):
            changed.append((key, a.get(key), b.get(key)))
    return changed


def refuse_changed_resume(run_dir: str, state_path: str, changes: list[tuple[str, Any, Any]]) -> ConfigError:
    shown = "; ".join(f"{k}: {old!r} -> {new!r}" for k, old, new in changes[:8])
    more = f" (+{len(changes) - 8} more)" if len(changes) > 8 else ""
    return ConfigError(
        f"{run_dir} holds a run with other settings ({state_path}); changed: {shown}{more}. Resuming would mix "
        f"two runs into one. Start it over with resume=never, or keep both runs with a new name "
        f"(name=NEW_NAME or output.dir=OTHER_DIR).")
