"""Checkpoints, written: resumable states (atomically, the last K kept), the best epoch's weights, and the
per-epoch artifact pushed to the Hub. Reading them back is zoo.train.resume's job.

accelerate's ``save_state`` writes model, optimizer, registered objects (scheduler, EMA), the sampler and
every process's RNG. It writes into the folder it is given, file by file, so a SIGKILL halfway leaves a
partial folder. We write into ``.tmp-<step>``, add the trainer's :class:`Progress`, the recipe that ran and a
``COMPLETE`` marker last, then rename: a folder named ``state-<step>`` is complete by construction, and the
marker guards against file systems where rename is not atomic.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

from accelerate import Accelerator
from safetensors.torch import save_file
from torch import nn

from zoo.artifact.hub import push_to_hub
from zoo.artifact.save import save
from zoo.backbones.base import Backbone
from zoo.data.dataset import ImageDataset
from zoo.errors import ZooError
from zoo.fsutil import atomic_write_with, fsync_write
from zoo.train.layout import RunLayout
from zoo.train.progress import Progress
from zoo.train.schema import Recipe

COMPLETE = "COMPLETE"
TRAINER_STATE = "trainer_state.json"
RECIPE_FILE = "recipe.json"  # the resolved recipe the state belongs to (the resume guard compares it)


def complete_states(layout: RunLayout) -> list[Path]:
    """Complete state folders, newest first."""
    root = layout.states
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("state-") and (p / COMPLETE).exists()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]), reverse=True)


def save_state(
    accelerator: Accelerator, layout: RunLayout, progress: Progress, keep_last: int, recipe: Mapping[str, Any]
) -> Path:
    """Every process calls this (accelerate saves each rank's RNG); the main process renames and prunes."""
    tmp = layout.states / f".tmp-{progress.global_step:08d}"
    final = layout.states / f"state-{progress.global_step:08d}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / TRAINER_STATE).write_text(json.dumps(progress.to_dict()))
        (tmp / RECIPE_FILE).write_text(json.dumps(dict(recipe), default=str))
        fsync_write(tmp / COMPLETE, b"ok\n")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for old in complete_states(layout)[max(keep_last, 1) :]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def clear_states(layout: RunLayout) -> None:
    shutil.rmtree(layout.states, ignore_errors=True)


def remove_partial_writes(layout: RunLayout) -> None:
    """What killed writes left behind: partial states (``.tmp-<step>``) and the temporary files of atomic
    writes (``.best.safetensors.tmp-*``). Folder swaps (model/, checkpoint/) clean up after themselves."""
    for partial in layout.states.glob(".tmp-*") if layout.states.is_dir() else []:
        shutil.rmtree(partial, ignore_errors=True)
    for tmp in layout.root.glob(".*.tmp-*") if layout.root.is_dir() else []:
        if tmp.is_file():
            tmp.unlink(missing_ok=True)


def save_best(shipped: nn.Module, layout: RunLayout) -> None:
    """The best epoch's weights so far (the shipped module's: the EMA copy when EMA is on), atomically."""
    state = {k: v.detach().cpu().contiguous() for k, v in shipped.state_dict().items()}
    atomic_write_with(layout.best_weights, lambda tmp: save_file(state, str(tmp)))


def push_checkpoint(
    shipped: nn.Module,
    layout: RunLayout,
    recipe: Recipe,
    data: ImageDataset,
    epoch: int,
    record: Mapping[str, Any],
    warn: Callable[[str], None],
) -> None:
    """This epoch's weights as a full artifact on the repo's `checkpoints` branch (main process only).
    A failed push is reported and training goes on: the run must not die for the network."""
    snapshot = cast(Backbone, copy.deepcopy(shipped).cpu().eval())  # the Backbone, or its EMA copy
    save(
        snapshot,
        layout.checkpoint,
        recipe=recipe.to_dict(),
        dataset=data.info(),
        metrics={"epoch": epoch + 1, "val_top1": record["val_top1"], "val_top5": record["val_top5"]},
    )
    try:
        push_to_hub(
            layout.checkpoint,
            cast(str, recipe.hub.repo_id),  # the schema requires it with hub.push_checkpoints
            private=recipe.hub.private,
            revision="checkpoints",
            commit_message=f"epoch {epoch + 1}: val top-1 {record['val_top1']:.4f}",
        )
    except ZooError as exc:
        warn(f"checkpoint push failed, training continues: {exc}")
