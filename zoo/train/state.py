"""Resumable training state: written atomically, kept for the last K, found again after a crash.

accelerate's ``save_state`` writes model, optimizer, registered objects (scheduler, EMA), the sampler and
every process's RNG. It writes into the folder it is given, file by file, so a SIGKILL halfway leaves a
partial folder. We write into ``.tmp-<step>``, add the trainer's :class:`Progress`, the recipe that ran and a
``COMPLETE`` marker last, then rename: a folder named ``state-<step>`` is complete by construction, and the
marker guards against file systems where rename is not atomic.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from zoo.fsutil import fsync_write
from zoo.train.progress import Progress

log = logging.getLogger("zoo.train")

STATE_DIR = "states"
COMPLETE = "COMPLETE"
TRAINER_STATE = "trainer_state.json"
RECIPE_FILE = "recipe.json"  # the resolved recipe the state belongs to (the resume guard compares it)


def states_dir(run_dir: Path) -> Path:
    return Path(run_dir) / STATE_DIR


def complete_states(run_dir: Path) -> list[Path]:
    """Complete state folders, newest first."""
    root = states_dir(run_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("state-") and (p / COMPLETE).exists()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]), reverse=True)


def saved_recipe(state: Path) -> dict[str, Any] | None:
    """The recipe saved with a state, or None for states written before zoo saved it."""
    path = Path(state) / RECIPE_FILE
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, json.JSONDecodeError):
        return None


def save_state(accelerator: Any, run_dir: Path, progress: Progress, keep_last: int,
               recipe: Mapping[str, Any]) -> Path:
    """Every process calls this (accelerate saves each rank's RNG); the main process renames and prunes."""
    root = states_dir(run_dir)
    tmp = root / f".tmp-{progress.global_step:08d}"
    final = root / f"state-{progress.global_step:08d}"
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
        for old in complete_states(run_dir)[max(keep_last, 1):]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_latest_state(accelerator: Any, run_dir: Path, explicit: Path | None = None,
                      warn: Callable[[str], None] = log.warning) -> tuple[Progress, Path] | None:
    """Load the newest state that loads cleanly; a corrupt one is reported and the previous one used."""
    candidates = [Path(explicit)] if explicit else complete_states(run_dir)
    for path in candidates:
        try:
            progress = Progress.from_dict(json.loads((path / TRAINER_STATE).read_text()))
            accelerator.load_state(str(path))
            return progress, path
        except Exception as exc:  # corrupt or partial files: any loader error means "not usable"
            warn(f"resume: state {path} is unusable ({type(exc).__name__}: {str(exc)[:200]}); "
                 f"trying an earlier one")
            if explicit:
                raise
    return None


def clear_states(run_dir: Path) -> None:
    shutil.rmtree(states_dir(run_dir), ignore_errors=True)
