"""The end of a run, in named steps: choose the weights to ship, evaluate exactly those weights the way
``zoo eval`` does, write the metrics, plots and model, push, and report.

The final figures are computed on the shipped weights (after best-epoch selection and EMA), in float32, with
the same preprocessing and evaluation code as ``zoo eval`` and ``zoo predict`` (``zoo.inference``), so
``zoo eval RUN/model --data SPEC`` reproduces the run's test top-1 exactly.
"""
from __future__ import annotations

import copy
import json
import os
import platform
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from zoo.artifact.hub import push_to_hub
from zoo.artifact.save import save
from zoo.data.transforms import build_transform
from zoo.errors import TrainingError, ZooError
from zoo.inference import EVAL_BATCH_SIZE, evaluate
from zoo.metrics import plot_confusion, plot_curves, read_metrics


@dataclass
class RunSummary:
    """What a run reports back (and the comparison table prints)."""

    name: str
    strategy: str
    model: str
    run_dir: str
    best_epoch: int = -1
    val_top1: float = float("nan")
    test_top1: float | None = None
    eval_split: str = "validation"
    final_top1: float = float("nan")
    epochs_run: int = 0
    train_seconds: float = 0.0
    images_per_sec: float = 0.0
    peak_mem_mb: float = 0.0
    model_dir: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource  # POSIX only; imported where used so the module imports anywhere

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def finish_run(trainer: Any) -> RunSummary:
    """Every process calls this; the main one evaluates, writes and pushes."""
    t, acc = trainer, trainer.accelerator
    acc.wait_for_everyone()
    select_final_weights(t)
    in_sync = ranks_in_sync(t)
    split = "test" if "test" in t.ds.splits else "validation"
    extra_seconds = getattr(t, "extract_seconds", 0.0)
    p = t.progress
    seconds = p.train_seconds + extra_seconds
    summary = RunSummary(
        name=t.recipe.name, strategy=t.recipe.strategy.name, model=t.recipe.model.name, run_dir=str(t.run_dir),
        best_epoch=p.best_epoch, val_top1=p.best_top1, eval_split=split, epochs_run=p.epoch,
        train_seconds=round(seconds, 3),
        # over all training time, feature extraction included: a probe's head epochs alone would
        # report feature vectors per second, not images
        images_per_sec=round(p.images_seen / max(seconds, 1e-9), 2),
        peak_mem_mb=round(peak_memory_mb(acc.device), 1), model_dir=str(t.run_dir / "model"),
    )
    if extra_seconds:
        summary.extra["feature_extract_seconds"] = round(extra_seconds, 3)
    if acc.is_main_process:
        final = final_evaluation(t, split)
        summary.final_top1 = final["top1"]
        summary.test_top1 = final["top1"] if split == "test" else None
        write_outputs(t, summary, final, in_sync)
        if t.recipe.hub.repo_id:
            url = push_to_hub(t.run_dir / "model", t.recipe.hub.repo_id, private=t.recipe.hub.private,
                              revision=t.recipe.hub.revision)
            t._print(f"pushed to {url}")
    acc.wait_for_everyone()
    acc.end_training()
    return summary


def select_final_weights(t: Any) -> None:
    """Put the weights the run ships into ``t.model``: the best epoch's (saved from the EMA copy when EMA is
    on), else the EMA copy, else the last step's."""
    best = t.run_dir / "best.safetensors"
    if t.recipe.train.select_best and best.exists():
        t.model.load_state_dict(load_file(str(best), device="cpu"))
    elif t.ema is not None:
        t.model.load_state_dict(t.ema.module.state_dict())


def final_evaluation(t: Any, split: str) -> dict[str, Any]:
    """``zoo eval``'s evaluation of the shipped weights: float32, PIL preprocessing, one process."""
    # accelerate wrapped the model's forward in the run's autocast (bf16/fp16) and channels_last may be on:
    # zoo eval loads the saved weights into a plain float32 module, so evaluate exactly that
    model = t.accelerator.unwrap_model(t.model, keep_fp32_wrapper=False)
    model = model.float().to(memory_format=torch.contiguous_format).eval()
    transform = build_transform(model.data_config, train=False)  # data.upsample travels in the data config
    return evaluate(model, t.ds[split], transform=transform, batch_size=EVAL_BATCH_SIZE,
                    label_names=t.ds.label_names, progress=False)


def write_outputs(t: Any, summary: RunSummary, final: dict[str, Any], in_sync: bool) -> None:
    """metrics.jsonl's final line, curve.png, confusion.png and the model folder."""
    split, p = summary.eval_split, t.progress
    record = {"kind": "final", "split": split, **final, "best_epoch": p.best_epoch, "best_val_top1": p.best_top1,
              "select_by": t.recipe.train.select_by, "train_seconds": summary.train_seconds,
              "images_per_sec": summary.images_per_sec,
              "peak_mem_mb": summary.peak_mem_mb, "num_processes": t.accelerator.num_processes,
              "ranks_in_sync": in_sync, "environment": environment(t.accelerator)}
    with open(t.run_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
    curve = plot_curves(read_metrics(t.run_dir / "metrics.jsonl"), t.run_dir / "curve.png",
                        title=f"{t.recipe.name} ({t.recipe.strategy.name})")
    plot_confusion(final["confusion"], t.ds.label_names, t.run_dir / "confusion.png",
                   title=f"{t.recipe.name}: {split} confusion matrix")
    metrics = {f"{split}_top1": final["top1"], f"{split}_top5": final["top5"], "best_val_top1": p.best_top1,
               f"{split}_balanced_acc": final["balanced_acc"], f"{split}_macro_f1": final["macro_f1"],
               "best_epoch": p.best_epoch, "per_class_acc": dict(zip(t.ds.label_names, final["per_class_acc"])),
               "train_seconds": summary.train_seconds}
    dataset = {**t.ds.info(), "eval_split": split}
    save(t.model.cpu(), t.run_dir / "model", recipe=t.recipe.to_dict(), metrics=metrics, dataset=dataset,
         files={"curve.png": curve, "confusion.png": t.run_dir / "confusion.png"})


def environment(acc: Any) -> dict[str, Any]:
    """Where the run ran: package versions, device and precision (the run report shows them)."""
    versions = {"python": platform.python_version()}
    for name in ("zoo-transfer", "torch", "torchvision", "timm", "transformers", "accelerate", "datasets"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            pass
    device = str(acc.device)
    if acc.device.type == "cuda":
        device += f" ({torch.cuda.get_device_name(acc.device)})"
    return {"versions": versions, "device": device, "mixed_precision": str(acc.mixed_precision),
            **(acc.zoo_precision.record() if hasattr(acc, "zoo_precision") else {}),
            "num_processes": acc.num_processes, "platform": platform.platform(), "cpu_count": os.cpu_count()}


def push_checkpoint(t: Any, epoch: int, record: dict[str, Any]) -> None:
    """This epoch's weights as a full artifact on the repo's `checkpoints` branch (main process only).
    A failed push is reported and training goes on: the run must not die for the network."""
    snapshot = copy.deepcopy(t.final_weights_source()).cpu().eval()
    folder: Path = t.run_dir / "checkpoint"
    save(snapshot, folder, recipe=t.recipe.to_dict(), dataset=t.ds.info(),
         metrics={"epoch": epoch + 1, "val_top1": record["val_top1"], "val_top5": record["val_top5"]})
    try:
        push_to_hub(folder, t.recipe.hub.repo_id, private=t.recipe.hub.private, revision="checkpoints",
                    commit_message=f"epoch {epoch + 1}: val top-1 {record['val_top1']:.4f}")
    except ZooError as exc:
        t._warn(f"checkpoint push failed, training continues: {exc}")


def ranks_in_sync(t: Any) -> bool:
    """Every process must end with the same parameters (DDP averages gradients, so any difference means a
    parameter escaped synchronisation). Checked on a checksum; a mismatch stops the run with the figures."""
    acc = t.accelerator
    if acc.num_processes == 1:
        return True
    with torch.no_grad():
        total = sum((q.detach().double() * (i % 7 + 1)).sum() for i, q in enumerate(t.model.parameters()))
    sums = acc.gather(total.reshape(1).to(acc.device))
    if not torch.all(sums == sums[0]):
        raise TrainingError(f"parameters differ between processes after training (checksums {sums.tolist()}): a "
                       f"parameter escaped DDP synchronisation. Report this with the recipe; the model was not saved.")
    return True
