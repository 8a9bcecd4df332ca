"""Resuming a run, all of it: which state to continue from (decided before anything is loaded or written),
the guard that refuses a resume under changed settings, loading the newest state that loads, trimming
metrics.jsonl to it, and saying what a changed run length does to the learning-rate schedule.

A resume never silently becomes something else: a state whose saved recipe cannot be read, or a run folder
whose every state fails to load, is refused with the paths and the two ways out (``resume=never`` to start
over, a new ``name=`` to keep both runs).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zoo.errors import ConfigError
from zoo.metrics import read_metrics
from zoo.train.context import RunContext
from zoo.train.layout import RunLayout
from zoo.train.progress import Progress
from zoo.train.schedule import schedule_factor
from zoo.train.schema import Recipe
from zoo.train.state import COMPLETE, RECIPE_FILE, TRAINER_STATE, complete_states, remove_partial_writes

# Keys that may change between a run and its resumption: how long it runs and where its output goes.
# Anything else (data, model, strategy, optimiser, schedule, precision...) would mix two runs into one.
RESUMABLE_KEYS = (
    "train.epochs",
    "train.early_stopping",
    "train.save_every_steps",
    "train.keep_last",
    "train.log_every",
    "resume",
)
RESUMABLE_SECTIONS = ("output.", "hub.")
WAYS_OUT = "Start it over with resume=never, or keep both runs with a new name (name=NEW_NAME or output.dir=OTHER_DIR)."


def choose_state(recipe: Recipe, layout: RunLayout) -> Path | None:
    """The state this run continues from (None: fresh), checked against the recipe; said first."""
    # the launcher's RANK, not PartialState(): a PartialState made here, before the Accelerator, fixes the
    # process-wide state without ACCELERATE_USE_CPU, and CPU ranks then each run alone
    r, main = recipe, int(os.environ.get("RANK", "0")) == 0
    state: Path | None = None
    if r.resume == "auto":
        found = complete_states(layout)
        state = found[0] if found else None
    elif r.resume != "never":
        state = Path(r.resume)
        if not (state / COMPLETE).is_file():
            raise ConfigError(
                f"resume={r.resume!r} is not a complete state folder (states/state-N with a "
                f"COMPLETE file); use resume=auto to pick the newest, or resume=never"
            )
    if state is not None:
        check_same_settings(r, layout, state)
    if main:
        fresh = f"starting fresh in {layout.root}" + (" (resume: never)" if r.resume == "never" else "")
        print(f"[{r.name}] " + (f"resuming from {state}" if state else fresh), flush=True)
    return state


def saved_recipe(state: Path) -> dict[str, Any] | None:
    """The recipe saved with a state; None for states written before zoo saved it. An unreadable one is
    refused: without it the guard could not compare anything."""
    path = Path(state) / RECIPE_FILE
    if not path.exists():
        return None
    try:
        saved = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"cannot resume from {state}: its recipe {path} is unreadable ({type(exc).__name__}: "
            f"{str(exc)[:120]}), so the settings it ran with cannot be compared. {WAYS_OUT}"
        ) from None
    if not isinstance(saved, dict):
        raise ConfigError(
            f"cannot resume from {state}: its recipe {path} is not a mapping, so the settings it "
            f"ran with cannot be compared. {WAYS_OUT}"
        )
    return saved


def check_same_settings(recipe: Recipe, layout: RunLayout, state: Path) -> None:
    saved = saved_recipe(state)
    changes = changed_keys(saved, recipe.to_dict()) if saved is not None else []
    if changes:
        raise refuse_changed_resume(str(layout.root), str(state), changes)


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
        f"{run_dir} holds a run with other settings ({state_path}); changed: {shown}{more}. "
        f"Resuming would mix two runs into one. {WAYS_OUT}"
    )


def load_latest_state(ctx: RunContext, explicit: Path | None) -> tuple[Progress, Path]:
    """Load the newest state that loads cleanly; a corrupt one is reported and the previous one used. When
    none loads, refuse: starting from epoch 0 beside the old states and metrics would be a silent restart."""
    candidates = [Path(explicit)] if explicit else complete_states(ctx.layout)
    for path in candidates:
        check_same_settings(ctx.recipe, ctx.layout, path)
        try:
            progress = Progress.from_dict(json.loads((path / TRAINER_STATE).read_text()))
            ctx.accelerator.load_state(str(path))
            return progress, path
        except Exception as exc:  # corrupt or partial files: any loader error means "not usable"
            ctx.console.warn(
                f"resume: state {path} is unusable ({type(exc).__name__}: {str(exc)[:200]}); trying an earlier one"
            )
            if explicit:
                raise
    tried = ", ".join(str(p) for p in candidates) or f"none left in {ctx.layout.states}"
    raise ConfigError(f"cannot resume {ctx.layout.root}: no saved state loads (tried {tried}). {WAYS_OUT}")


def restore(ctx: RunContext, state: Path | None) -> None:
    """Load the state ``choose_state`` chose (or an earlier one if it is corrupt) into the context; trim
    metrics.jsonl to it; say what a changed run length does to the schedule."""
    acc = ctx.accelerator
    if state is not None:
        ctx.progress, path = load_latest_state(ctx, None if ctx.recipe.resume == "auto" else state)
        p = ctx.progress
        ctx.console.say(f"resumed from {path} (epoch {p.epoch}, batch {p.batch_in_epoch})")
        note = schedule_length_note(ctx, saved_recipe(path))
        if note:
            ctx.console.warn(note)
    if acc.is_main_process:
        remove_partial_writes(ctx.layout)
    if acc.is_main_process and ctx.layout.metrics.exists():  # drop lines written after the state we continue from
        kept = [
            m for m in read_metrics(ctx.layout.metrics) if m.get("kind") == "epoch" and m["epoch"] < ctx.progress.epoch
        ]
        ctx.layout.metrics.write_text("".join(json.dumps(m) + "\n" for m in kept))
    acc.wait_for_everyone()


def schedule_length_note(ctx: RunContext, saved: Mapping[str, Any] | None) -> str | None:
    """A changed ``train.epochs`` re-lays the lr schedule over the new length (as if the run had been planned
    that long from the start): the lr jumps at the resume step. Said with both lengths and both lrs."""
    old = (saved or {}).get("train", {}).get("epochs")
    new, s = ctx.recipe.train.epochs, ctx.schedule
    if not isinstance(old, int) or old == new or s.name == "constant":
        return None
    old_total = ctx.steps_per_epoch * old
    before = s.base_lr * schedule_factor(s.name, s.step_count, old_total, s.warmup_steps, s.min_ratio)
    after = s.base_lr * schedule_factor(s.name, s.step_count, s.total_steps, s.warmup_steps, s.min_ratio)
    return (
        f"train.epochs changed {old} -> {new} on resume: the {s.name} schedule is rescaled to the new length "
        f"({s.total_steps} optimizer steps instead of {old_total}), as if the run had been planned for {new} "
        f"epochs; at step {s.step_count} the base lr goes from {before:.3g} to {after:.3g}. To keep the "
        f"schedule, resume with train.epochs={old}."
    )
