"""The Accelerator a run trains with: a fresh one per run, refusing launches that would silently run alone."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState, PartialState
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, parse_flag_from_env

from zoo.cpu_memory import keep_freed_memory
from zoo.errors import ConfigError
from zoo.train.precision import PrecisionChoice, choose_precision
from zoo.train.schema import Recipe

log = logging.getLogger("zoo.train")


def new_accelerator(recipe: Recipe, run_dir: Path) -> Accelerator:
    """A fresh Accelerator per run: several variants may run in one process."""
    # accelerate keeps its state in process-wide singletons; reset the per-run parts (keeping the
    # distributed process group) so a second variant may choose its own precision or accumulation.
    AcceleratorState._reset_state()
    GradientState._reset_state()
    # the device first (the same one the Accelerator will take), so that `auto` can pick its precision
    device = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU")).device
    choice = choose_precision(recipe.train.mixed_precision, device)
    accelerator = Accelerator(
        mixed_precision=choice.precision,
        gradient_accumulation_steps=recipe.train.grad_accum,
        log_with=list(recipe.output.trackers) or None,
        project_config=ProjectConfiguration(project_dir=str(run_dir), logging_dir=str(run_dir / "logs")),
        # a seedable sampler gives each epoch the same order after a resume, so skipping the batches
        # already seen continues the epoch exactly where it stopped
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
        step_scheduler_with_optimizer=False,
    )
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched > 1 and accelerator.num_processes == 1:
        # accelerate's torchrun path on a machine without GPUs runs each worker alone unless told to use
        # the CPU: N copies of the same run writing to one folder. Refuse rather than do that.
        raise ConfigError(
            f"{launched} processes were launched but each sees only itself (no GPU, and accelerate was not told "
            f"to use the CPU). For CPU ranks set ACCELERATE_USE_CPU=1, e.g. `ACCELERATE_USE_CPU=1 accelerate "
            f"launch --config_file recipes/accelerate/cpu-2proc.yaml -m zoo.train RECIPE`."
        )
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true" and accelerator.distributed_type != "FSDP":
        # accelerate turns an FSDP config into FSDP only on accelerators; CPU ranks silently get plain DDP
        log.warning(
            f"FSDP was asked for (an FSDP accelerate config) but these {accelerator.num_processes} process(es) "
            f"run as {accelerator.distributed_type.value}: accelerate shards with FSDP on GPUs only, so every "
            "process holds the whole model (DDP). Use recipes/accelerate/cpu-2proc.yaml on CPUs."
        )
    announce_precision(accelerator, choice, recipe.name)
    if accelerator.device.type == "cpu":  # steps reuse the memory the last one freed (zoo.cpu_memory)
        accelerator.zoo_cpu_malloc = keep_freed_memory()
    return accelerator


def announce_precision(accelerator: Accelerator, choice: PrecisionChoice, name: str | None) -> None:
    """Say once (main process) which precision the run trains in and why; keep it on the accelerator so
    the run's metrics record it."""
    accelerator.zoo_precision = choice
    if not accelerator.is_main_process:
        return
    print(f"[{name}] {choice.describe()}", flush=True)
    if choice.warning:  # once: `zoo train` shows zoo.train's warnings on stderr
        log.warning(f"[{name}] {choice.warning}")


def flat_scalars(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat_scalars(v, f"{prefix}{k}."))
        elif isinstance(v, (int, float, str, bool)) or v is None:
            out[f"{prefix}{k}"] = v
    return out
