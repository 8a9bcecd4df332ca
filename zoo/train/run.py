"""Run a recipe: every variant in turn, then a comparison of the runs beside them.

Any accelerate configuration works (one CPU process, one GPU, DDP over many GPUs or nodes, FSDP): the loop
in ``zoo.train.loop`` only talks to ``Accelerator``. A recipe with ``variants:`` runs once per variant and
writes ``<output.dir>/<name>-comparison.{json,md}`` (the quickstart compares linear probe, fine-tune and
training from scratch). The command line lives in ``zoo.cli.train``.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from accelerate import PartialState

from zoo.train.loop import RunSummary, Trainer
from zoo.train.recipe import Recipe, expand_variants, load_recipe


def train(recipe: str | Path | Mapping[str, Any] | Recipe, overrides: Sequence[str] = ()) -> list[RunSummary]:
    """Run a recipe (every variant) and return one RunSummary per run."""
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe, overrides)
    summaries = [Trainer(variant).fit() for _, variant in expand_variants(recipe)]
    if len(summaries) > 1 and PartialState().is_main_process:
        write_comparison(recipe, summaries)
    return summaries


def comparison_rows(summaries: Sequence[RunSummary]) -> tuple[list[str], list[list[str]]]:
    """The columns and rows of the comparison table (terminal and comparison.md share them)."""
    split = summaries[0].eval_split
    columns = ["run", "strategy", "best val top-1", f"{split} top-1", "train time (s)", "images/s"]
    rows = [[s.name, s.strategy, f"{s.val_top1:.4f}", f"{s.final_top1:.4f}", f"{s.train_seconds:.1f}",
             f"{s.images_per_sec:.0f}"] for s in summaries]
    return columns, rows


def write_comparison(recipe: Recipe, summaries: Sequence[RunSummary]) -> Path:
    """comparison.json (every field of every summary) and comparison.md (the table) beside the runs."""
    columns, rows = comparison_rows(summaries)
    out = Path(recipe.output.dir) / f"{recipe.name}-comparison"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps([asdict(s) for s in summaries], indent=2))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return out
