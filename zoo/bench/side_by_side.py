"""zoo against the loops people write today, same model, data, batch size and device, in one run.

Two comparisons, each a ratio:
- linear probe: zoo (features cached once) vs the tutorials' loop (frozen backbone run every epoch):
  the speed ratio after 1, 3 and 10 epochs and the time to the same held-out accuracy; beside it the
  tutorial loop with each cause of its accuracy gap removed alone (BatchNorm in eval mode; zoo's exact
  preprocessing) and both together;
- fine-tune: zoo (uint8 tensor store + on-device batch transforms) vs the Hugging Face example path
  (``with_transform`` per-sample PIL transforms + a plain Accelerate loop): training images/s and time per epoch.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.bench.baselines import hf_finetune, probe_variant_name, time_to_accuracy, tutorial_linear_probe
from zoo.registry import create_model

# (bn_eval, preprocessing) of the tutorial loop: as written, each fix alone, both fixes
PROBE_VARIANTS = ((False, "tutorial"), (True, "tutorial"), (False, "zoo"), (True, "zoo"))
RATIO_EPOCHS = (1, 3, 10)


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
    probe_variants: bool = True  # also the tutorial loop with each cause of its accuracy gap removed


def _zoo_run(
    cfg: SideBySideConfig, strategy: dict[str, Any], epochs: int, lr: float, augment: str
) -> tuple[Any, float, list[tuple[float, float]]]:
    """A zoo run; returns its summary, wall seconds and per-epoch (elapsed seconds, validation top-1)."""
    from zoo.metrics import read_metrics
    from zoo.train.loop import Trainer
    from zoo.train.recipe import load_recipe

    recipe = load_recipe(
        {
            "name": f"zoo-{strategy['name']}",
            "model": {"name": cfg.model},
            "data": {
                "spec": cfg.spec,
                "image_size": cfg.image_size,
                "batch_size": cfg.batch_size,
                "augment": augment,
                "seed": cfg.seed,
            },
            "strategy": strategy,
            "optim": {"name": "adamw", "lr": lr, "weight_decay": 0.0},
            "schedule": {"name": "constant"},
            "train": {"epochs": epochs, "seed": cfg.seed, "select_best": False},
            "output": {"dir": cfg.out_dir},
            "resume": "never",
        }
    )
    # no run may reuse another's decoded store or cached features: the cache lives under out_dir
    shutil.rmtree(cfg.out_dir, ignore_errors=True)
    start = time.perf_counter()
    summary = Trainer(recipe).fit()
    wall = time.perf_counter() - start
    epochs_ = [m for m in read_metrics(Path(summary.run_dir) / "metrics.jsonl") if m.get("kind") == "epoch"]
    return summary, wall, [(m["elapsed_seconds"], m["val_top1"]) for m in epochs_]


def _warm_up(cfg: SideBySideConfig) -> None:
    """A few forward/backward steps at the benchmark's shapes, so neither contender pays the process's
    one-time costs (oneDNN kernel selection, allocator growth) inside its timing."""
    import torch

    model = create_model(cfg.model, num_classes=10, pretrained=False)
    x = torch.randn(cfg.batch_size, 3, cfg.image_size, cfg.image_size)
    for _ in range(3):
        model(x).logsumexp(1).mean().backward()


def run_side_by_side(cfg: SideBySideConfig) -> dict[str, Any]:
    """Both comparisons; returns rows for the table and the headline ratios.

    Every contender is charged the same dataset loading time (zoo loads inside its run; the baselines are
    handed the loaded dataset, so the measured load time is added to theirs). Accuracies are on the
    validation split, epoch by epoch, for all of them.
    """
    import torch

    from zoo.data import load_dataset

    t0 = time.perf_counter()
    ds = load_dataset(cfg.spec, seed=cfg.seed)
    load_seconds = time.perf_counter() - t0
    common: dict[str, Any] = dict(
        batch_size=cfg.batch_size, image_size=cfg.image_size, num_workers=cfg.num_workers, seed=cfg.seed
    )
    # zoo's trainer flushes denormals on CPU; set it for the baselines too, so the loops, not that, differ
    torch.set_flush_denormal(True)
    _warm_up(cfg)

    zoo_probe, zoo_probe_wall, zoo_probe_curve = _zoo_run(
        cfg, {"name": "linear_probe", "cache_features": True}, cfg.probe_epochs, cfg.probe_lr, augment="none"
    )
    variants = {
        v: tutorial_linear_probe(
            cfg.model, ds, epochs=cfg.probe_epochs, lr=cfg.probe_lr, bn_eval=v[0], preprocessing=v[1], **common
        )
        for v in (PROBE_VARIANTS if cfg.probe_variants else PROBE_VARIANTS[:1])
    }
    tutorial = variants[PROBE_VARIANTS[0]]
    tutorial_wall = tutorial.seconds + load_seconds
    tutorial_curve = [(t + load_seconds, a) for t, a in tutorial.curve]
    # elapsed time (load included on both sides) after k epochs: tutorial / zoo
    ratio_at = {
        k: tutorial_curve[k - 1][0] / zoo_probe_curve[k - 1][0]
        for k in RATIO_EPOCHS
        if k <= min(len(tutorial_curve), len(zoo_probe_curve))
    }
    # time to the same accuracy: the best the tutorial loop reaches (or zoo's best, if lower), first epoch
    # at which each gets there
    target = min(max(a for _, a in tutorial_curve), max(a for _, a in zoo_probe_curve))
    tutorial_to_target = time_to_accuracy(tutorial_curve, target) or tutorial_wall
    zoo_to_target = time_to_accuracy(zoo_probe_curve, target) or zoo_probe_wall

    _warm_up(cfg)
    zoo_ft, zoo_ft_wall, zoo_ft_curve = _zoo_run(
        cfg, {"name": "finetune"}, cfg.finetune_epochs, cfg.finetune_lr, augment="flip-crop"
    )
    hf = hf_finetune(cfg.model, ds, epochs=cfg.finetune_epochs, lr=cfg.finetune_lr, **common)

    def row(
        name: str,
        kind: str,
        top1: float,
        wall: float,
        train_s: float,
        ips: float,
        epochs: int,
        bn: str = "",
        prep: str = "",
    ) -> dict:
        return {
            "run": name,
            "kind": kind,
            "batchnorm": bn,
            "preprocessing": prep,
            "val_top1": top1,
            "wall_seconds": wall,
            "train_seconds": train_s,
            "seconds_per_epoch": train_s / max(epochs, 1),
            "train_images_per_sec": ips,
        }

    rows = [
        row(
            "zoo linear probe (cached features)",
            "linear probe",
            zoo_probe_curve[-1][1],
            zoo_probe_wall,
            zoo_probe.train_seconds,
            zoo_probe.images_per_sec,
            cfg.probe_epochs,
            "eval",
            "zoo",
        ),
        *(
            row(
                probe_variant_name(*v),
                "linear probe",
                r.final_top1,
                r.seconds + load_seconds,
                r.train_seconds,
                r.images_per_sec,
                cfg.probe_epochs,
                "eval" if v[0] else "train",
                v[1],
            )
            for v, r in variants.items()
        ),
        row(
            "zoo fine-tune (fast path)",
            "fine-tune",
            zoo_ft_curve[-1][1],
            zoo_ft_wall,
            zoo_ft.train_seconds,
            zoo_ft.images_per_sec,
            cfg.finetune_epochs,
        ),
        row(
            hf.name,
            "fine-tune",
            hf.final_top1,
            hf.seconds + load_seconds,
            hf.train_seconds,
            hf.images_per_sec,
            cfg.finetune_epochs,
        ),
    ]
    return {
        "rows": rows,
        "dataset_load_seconds": load_seconds,
        "probe_wall_ratio": tutorial_wall / zoo_probe_wall,
        "probe_ratio_after_epochs": ratio_at,
        "probe_speedup_to_same_accuracy": tutorial_to_target / zoo_to_target,
        "probe_target_accuracy": target,
        "probe_accuracy": {"zoo": zoo_probe_curve[-1][1], "tutorial": tutorial.final_top1},
        "finetune_images_per_sec_ratio": zoo_ft.images_per_sec / hf.images_per_sec,
        "finetune_epoch_time_ratio": hf.train_seconds / max(zoo_ft.train_seconds, 1e-9),
        "tutorial": tutorial,
        "hf": hf,
    }
