"""zoo against the loops people write today, same model, data, batch size and device, in one run.

Two comparisons, each a ratio:
- linear probe: zoo (features cached once) vs the tutorials' loop (frozen backbone run every epoch):
  time to the same held-out accuracy;
- fine-tune: zoo (uint8 tensor store + on-device batch transforms) vs the Hugging Face example path
  (``with_transform`` per-sample PIL transforms + a plain Accelerate loop): training images/s and time per epoch.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from zoo.bench.baselines import hf_finetune, time_to_accuracy, tutorial_linear_probe


@dataclass
class SideBySideConfig:
    model: str = "pypi:efficientnet_lite0"
    spec: str = "sklearn:digits"
    image_size: int = 64
    batch_size: int = 64
    probe_epochs: int = 10
    probe_lr: float = 1e-2
    finetune_epochs: int = 2
    finetune_lr: float = 1e-3
    num_workers: int = 0
    seed: int = 0
    out_dir: str = "runs/bench-side-by-side"


def _zoo_run(cfg: SideBySideConfig, strategy: dict[str, Any], epochs: int, lr: float, augment: str
             ) -> tuple[Any, float]:
    from zoo.recipe import load_recipe
    from zoo.trainer import Trainer

    recipe = load_recipe({
        "name": f"zoo-{strategy['name']}",
        "model": {"name": cfg.model},
        "data": {"spec": cfg.spec, "image_size": cfg.image_size, "batch_size": cfg.batch_size,
                 "augment": augment, "seed": cfg.seed},
        "strategy": strategy,
        "optim": {"name": "adamw", "lr": lr, "weight_decay": 0.0},
        "schedule": {"name": "constant"},
        "train": {"epochs": epochs, "seed": cfg.seed, "select_best": False},
        "output": {"dir": cfg.out_dir},
        "resume": "never",
    })
    start = time.perf_counter()
    summary = Trainer(recipe).fit()
    return summary, time.perf_counter() - start


def run_side_by_side(cfg: SideBySideConfig) -> dict[str, Any]:
    """Both comparisons; returns rows for the table and the two headline ratios."""
    from zoo.data import load_dataset

    ds = load_dataset(cfg.spec, seed=cfg.seed)
    common = dict(batch_size=cfg.batch_size, image_size=cfg.image_size, num_workers=cfg.num_workers, seed=cfg.seed)

    zoo_probe, zoo_probe_wall = _zoo_run(cfg, {"name": "linear_probe", "cache_features": True},
                                         cfg.probe_epochs, cfg.probe_lr, augment="none")
    tutorial = tutorial_linear_probe(cfg.model, ds, epochs=cfg.probe_epochs, lr=cfg.probe_lr, **common)
    # time to the same accuracy: the lower of the two final accuracies is the bar both have reached
    target = min(zoo_probe.final_top1, tutorial.final_top1)
    tutorial_to_target = time_to_accuracy(tutorial.curve, target) or tutorial.seconds
    probe_speedup = tutorial_to_target / zoo_probe_wall

    zoo_ft, zoo_ft_wall = _zoo_run(cfg, {"name": "finetune"}, cfg.finetune_epochs, cfg.finetune_lr,
                                   augment="flip-crop")
    hf = hf_finetune(cfg.model, ds, epochs=cfg.finetune_epochs, lr=cfg.finetune_lr, **common)
    ft_speedup = zoo_ft.images_per_sec / hf.images_per_sec

    def row(name: str, kind: str, top1: float, wall: float, train_s: float, ips: float, epochs: int) -> dict:
        return {"run": name, "kind": kind, "top1": top1, "wall_seconds": wall, "train_seconds": train_s,
                "seconds_per_epoch": train_s / max(epochs, 1), "train_images_per_sec": ips}

    rows = [
        row("zoo linear probe (cached features)", "linear probe", zoo_probe.final_top1, zoo_probe_wall,
            zoo_probe.train_seconds, zoo_probe.images_per_sec, cfg.probe_epochs),
        row(tutorial.name, "linear probe", tutorial.final_top1, tutorial.seconds, tutorial.train_seconds,
            tutorial.images_per_sec, cfg.probe_epochs),
        row("zoo fine-tune (fast path)", "fine-tune", zoo_ft.final_top1, zoo_ft_wall, zoo_ft.train_seconds,
            zoo_ft.images_per_sec, cfg.finetune_epochs),
        row(hf.name, "fine-tune", hf.final_top1, hf.seconds, hf.train_seconds, hf.images_per_sec,
            cfg.finetune_epochs),
    ]
    return {
        "rows": rows,
        "probe_speedup_to_same_accuracy": probe_speedup,
        "probe_target_accuracy": target,
        "probe_accuracy": {"zoo": zoo_probe.final_top1, "tutorial": tutorial.final_top1},
        "finetune_images_per_sec_ratio": ft_speedup,
        "finetune_epoch_time_ratio": (hf.train_seconds / cfg.finetune_epochs) / (zoo_ft.train_seconds / cfg.finetune_epochs),
        "tutorial": tutorial, "hf": hf,
    }


