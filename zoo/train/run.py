"""Run a recipe: every variant in turn, then a comparison of the runs beside them.

Any accelerate configuration works (one CPU process, one GPU, DDP over many GPUs or nodes, FSDP): the loop
in ``zoo.train.loop`` only talks to ``Accelerator``. A recipe with ``variants:`` runs once per variant and
writes ``<output.dir>/<name>-comparison.{json,md,html}``; each run also gets its ``report.html`` (the
quickstart compares linear probe, fine-tune and training from scratch). The command line lives in ``zoo.cli.train``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from accelerate import PartialState

from zoo.markdown import markdown_table
from zoo.report import read_run, run_context, write_report
from zoo.train.loop import RunSummary, Trainer
from zoo.train.preflight import preflight
from zoo.train.recipe import Recipe, expand_variants, load_recipe


def train(recipe: str | Path | Mapping[str, Any] | Recipe, overrides: Sequence[str] = ()) -> list[RunSummary]:
    """Run a recipe (every variant) and return one RunSummary per run."""
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe, overrides)
    variants = [variant for _, variant in expand_variants(recipe)]
    for variant in variants:  # every variant's cheap checks before any of them loads data or makes a folder
        preflight(variant)
    summaries, sections = [], []
    for variant in variants:
        started = time.perf_counter()
        trainer = Trainer(variant)
        summaries.append(trainer.fit())
        sections.append(run_report(trainer))
        if PartialState().is_main_process:
            print_summary(summaries[-1], time.perf_counter() - started)
    if len(summaries) > 1 and PartialState().is_main_process:
        out = write_comparison(recipe, summaries)
        shown = [s for s in sections if s]
        if len(shown) > 1:
            print(f"comparison report: {write_report([], out.with_suffix('.html'), contexts=shown)}")
    return summaries


def print_summary(s: RunSummary, seconds: float) -> None:
    """The lines a finished run ends with: its scores, its time and where its model is."""
    print(
        f"[{s.name}] done in {seconds:.1f} s: best val top-1 {s.val_top1:.4f} (epoch {s.best_epoch + 1}), "
        f"{s.eval_split} top-1 {s.final_top1:.4f}\n[{s.name}] model: {s.model_dir}",
        flush=True,
    )


def run_report(trainer: Trainer) -> dict[str, Any] | None:
    """report.html in the run folder (main process). A failed report is a warning: the run itself is done."""
    if not PartialState().is_main_process:
        return None
    try:
        dataset = trainer.context.data if trainer.context is not None else None
        section = run_context(read_run(trainer.layout.root), dataset=dataset)
        print(f"[{trainer.recipe.name}] report: {write_report(trainer.layout.root, contexts=[section])}")
        return section
    except Exception as exc:  # noqa: BLE001  any failure of the report leaves the finished run intact
        print(f"[{trainer.recipe.name}] warning: report.html not written: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None


def comparison_rows(summaries: Sequence[RunSummary]) -> tuple[list[str], list[list[str]]]:
    """The columns and rows of the comparison table (terminal and comparison.md share them)."""
    split = summaries[0].eval_split
    columns = ["run", "strategy", "best val top-1", f"{split} top-1", "train time (s)", "images/s"]
    rows = [
        [
            s.name,
            s.strategy,
            f"{s.val_top1:.4f}",
            f"{s.final_top1:.4f}",
            f"{s.train_seconds:.1f}",
            f"{s.images_per_sec:.0f}",
        ]
        for s in summaries
    ]
    return columns, rows


def write_comparison(recipe: Recipe, summaries: Sequence[RunSummary]) -> Path:
    """comparison.json (every field of every summary) and comparison.md (the table) beside the runs."""
    columns, rows = comparison_rows(summaries)
    out = Path(recipe.output.dir) / f"{recipe.name}-comparison"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps([asdict(s) for s in summaries], indent=2))
    out.with_suffix(".md").write_text(markdown_table(rows, columns) + "\n")
    return out
