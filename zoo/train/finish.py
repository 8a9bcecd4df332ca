"""The end of a run, in named steps: choose the weights to ship, evaluate exactly those weights the way
``zoo eval`` does, write the metrics, plots and model, push, and report.

The final figures are computed on the shipped weights (after best-epoch selection and EMA), in float32, with
the same preprocessing and evaluation code as ``zoo eval`` and ``zoo predict`` (``zoo.inference``), so
``zoo eval RUN/model --data SPEC`` reproduces the run's test top-1 exactly.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import torch
from accelerate import Accelerator
from safetensors.torch import load_file

from zoo.artifact.hub import push_to_hub
from zoo.artifact.save import save
from zoo.data.transforms import build_transform
from zoo.errors import TrainingError
from zoo.inference import evaluate, logits_metrics
from zoo.metrics import plot_confusion, plot_curves, read_metrics
from zoo.train.calibration import calibrate_run, with_test_calibration
from zoo.train.context import RunContext


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


def finish_run(ctx: RunContext) -> RunSummary:
    """Every process calls this; the main one evaluates, writes and pushes."""
    r, acc, p = ctx.recipe, ctx.accelerator, ctx.progress
    acc.wait_for_everyone()
    select_final_weights(ctx)
    check_ranks_in_sync(acc, ctx.model)
    split = "test" if "test" in ctx.data.splits else "validation"
    seconds = p.train_seconds + ctx.extract_seconds
    summary = RunSummary(
        name=str(r.name),  # load_recipe fills the name in
        strategy=r.strategy.name,
        model=r.model.name,
        run_dir=str(ctx.layout.root),
        best_epoch=p.best_epoch,
        val_top1=p.best_top1,
        eval_split=split,
        epochs_run=p.epoch,
        train_seconds=round(seconds, 3),
        # over all training time, feature extraction included: a probe's head epochs alone would
        # report feature vectors per second, not images
        images_per_sec=round(p.images_seen / max(seconds, 1e-9), 2),
        peak_mem_mb=round(peak_memory_mb(acc.device), 1),
        model_dir=str(ctx.layout.model),
    )
    if ctx.extract_seconds:
        summary.extra["feature_extract_seconds"] = round(ctx.extract_seconds, 3)
    if acc.is_main_process:
        # the shipped weights' temperature (zoo.train.calibration), before the final figures
        validation = calibrate_run(ctx)
        final = final_evaluation(ctx, split, validation if split == "validation" else None)
        summary.final_top1 = final["top1"]
        summary.test_top1 = final["top1"] if split == "test" else None
        write_outputs(ctx, summary, final)
        if r.hub.repo_id:
            url = push_to_hub(ctx.layout.model, r.hub.repo_id, private=r.hub.private, revision=r.hub.revision)
            ctx.console.say(f"pushed to {url}")
    acc.wait_for_everyone()
    acc.end_training()
    return summary


def select_final_weights(ctx: RunContext) -> None:
    """Put the weights the run ships into ``ctx.model``: the best epoch's (saved from the shipped module, the
    EMA copy when EMA is on), else the shipped module's (the EMA copy, or the model itself)."""
    best = ctx.layout.best_weights
    if ctx.recipe.train.select_best and best.exists():
        ctx.model.load_state_dict(load_file(str(best), device="cpu"))
    elif ctx.shipped is not ctx.model:
        ctx.model.load_state_dict(ctx.shipped.state_dict())


def final_evaluation(
    ctx: RunContext, split: str, logits: tuple[torch.Tensor, torch.Tensor] | None = None
) -> dict[str, Any]:
    """``zoo eval``'s evaluation of the shipped weights: float32, PIL preprocessing, one process. ``logits``:
    that split's logits and labels when calibration already computed them the same way (no TTA asked)."""
    # accelerate wrapped the model's forward in the run's autocast (bf16/fp16) and channels_last may be on:
    # zoo eval loads the saved weights into a plain float32 module, so evaluate exactly that
    model = ctx.accelerator.unwrap_model(ctx.model, keep_fp32_wrapper=False)
    model = model.float().to(memory_format=torch.contiguous_format).eval()
    if logits is not None and ctx.recipe.eval.tta == "none":  # the same pass as calibration's: not twice
        return with_test_calibration(model, split, logits_metrics(model, *logits))
    transform = build_transform(model.data_config, train=False)  # data.upsample travels in the data config
    final = evaluate(
        model,
        ctx.data[split],
        transform=transform,
        label_names=ctx.data.label_names,
        progress=False,
        tta=ctx.recipe.eval.tta,
    )
    return with_test_calibration(model, split, final)  # zoo.train.calibration


def write_outputs(ctx: RunContext, summary: RunSummary, final: dict[str, Any]) -> None:
    """metrics.jsonl's final line, curve.png, confusion.png and the model folder."""
    r, layout, data, p = ctx.recipe, ctx.layout, ctx.data, ctx.progress
    split = summary.eval_split
    record = {
        "kind": "final",
        "split": split,
        **final,
        "best_epoch": p.best_epoch,
        "best_val_top1": p.best_top1,
        "select_by": r.train.select_by,
        "train_seconds": summary.train_seconds,
        "images_per_sec": summary.images_per_sec,
        "peak_mem_mb": summary.peak_mem_mb,
        "num_processes": ctx.accelerator.num_processes,
        "environment": environment(ctx.accelerator),
    }
    with open(layout.metrics, "a") as f:
        f.write(json.dumps(record) + "\n")
    curve = plot_curves(read_metrics(layout.metrics), layout.curve, title=f"{r.name} ({r.strategy.name})")
    plot_confusion(final["confusion"], data.label_names, layout.confusion, title=f"{r.name}: {split} confusion matrix")
    metrics = {
        f"{split}_top1": final["top1"],
        f"{split}_top5": final["top5"],
        "best_val_top1": p.best_top1,
        f"{split}_balanced_acc": final["balanced_acc"],
        f"{split}_macro_f1": final["macro_f1"],
        "best_epoch": p.best_epoch,
        "per_class_acc": dict(zip(data.label_names, final["per_class_acc"])),
        "train_seconds": summary.train_seconds,
    }
    dataset = {**data.info(), "eval_split": split}
    save(
        ctx.model.cpu(),
        layout.model,
        recipe=r.to_dict(),
        metrics=metrics,
        dataset=dataset,
        files={"curve.png": curve, "confusion.png": layout.confusion},
    )


def environment(acc: Accelerator) -> dict[str, Any]:
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
    return {
        "versions": versions,
        "device": device,
        "mixed_precision": str(acc.mixed_precision),
        **(acc.zoo_precision.record() if hasattr(acc, "zoo_precision") else {}),
        **({"cpu_malloc": acc.zoo_cpu_malloc} if hasattr(acc, "zoo_cpu_malloc") else {}),
        "num_processes": acc.num_processes,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
    }


def check_ranks_in_sync(acc: Accelerator, model: torch.nn.Module) -> None:
    """Every process must end with the same parameters (DDP averages gradients, so any difference means a
    parameter escaped synchronisation). Checked on a checksum; a mismatch stops the run with the figures."""
    if acc.num_processes == 1:
        return
    with torch.no_grad():
        total = torch.stack([(q.detach().double() * (i % 7 + 1)).sum() for i, q in enumerate(model.parameters())]).sum()
    sums = acc.gather(total.reshape(1).to(acc.device))
    if not torch.all(sums == sums[0]):
        raise TrainingError(
            f"parameters differ between processes after training (checksums {sums.tolist()}): a "
            "parameter escaped DDP synchronisation. Report this with the recipe; the model was not "
            "saved."
        )
