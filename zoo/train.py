"""Run a recipe: ``accelerate launch -m zoo.train RECIPE [key=value ...]`` or ``zoo train RECIPE ...``.

Any accelerate configuration works (one CPU process, one GPU, DDP over many GPUs or nodes, FSDP): the loop
in ``zoo.trainer`` only talks to ``Accelerator``. A recipe with ``variants:`` runs once per variant and
prints a comparison table (the quickstart compares linear probe, fine-tune and training from scratch).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


EPILOG = """\
examples:
  zoo train recipes/quickstart.yaml
  zoo train recipes/cifar10/resnet50-finetune.yaml train.epochs=3 optim.lr=3e-4
  accelerate launch --config_file recipes/accelerate/multi-gpu.yaml -m zoo.train recipes/cifar10/resnet50-finetune.yaml

Overrides are dotted recipe keys: data.batch_size=64 strategy.name=partial strategy.unfreeze_stages=2
output.trackers=[tensorboard] resume=never. A killed run continues from its last saved state (resume: auto).
"""


DESCRIPTION = "Train (linear-probe, fine-tune, ...) a backbone on a dataset as a recipe describes."


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The arguments of both `python -m zoo.train` and `zoo train`."""
    p.add_argument("recipe", help="recipe YAML file, e.g. recipes/quickstart.yaml")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="recipe overrides, e.g. train.epochs=3")
    p.add_argument("--check", action="store_true", help="validate the recipe, print it resolved, and exit")
    return p


def build_parser(prog: str = "zoo train") -> argparse.ArgumentParser:
    return add_arguments(argparse.ArgumentParser(
        prog=prog, description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter))


def train(recipe: str | Path | Mapping[str, Any] | Any, overrides: Sequence[str] = ()) -> list[Any]:
    """Run a recipe (every variant) and return one RunSummary per run. Every variant is checked first
    (zoo.preflight: model name, data path, output folder), before any data is loaded or folder made."""
    import time

    from zoo.preflight import preflight
    from zoo.recipe import Recipe, expand_variants, load_recipe
    from zoo.run_state import start_line
    from zoo.trainer import Trainer

    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe, overrides)
    variants = [variant for _, variant in expand_variants(recipe)]
    for variant in variants:
        preflight(variant)
    # From the launcher's environment (torchrun/accelerate set RANK and WORLD_SIZE), not from accelerate's
    # state: creating that here would fix its settings before the trainer's Accelerator chooses them.
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    main_process = rank == 0
    if world > 1:
        print(f"[{recipe.name}] rank {rank} of {world}\n", end="", flush=True)  # one write: ranks share stdout
    summaries = []
    for variant in variants:
        if main_process:
            print(f"[{variant.name}] {start_line(Path(variant.output.dir) / variant.name, variant.resume)}",
                  flush=True)
        started = time.perf_counter()
        summaries.append(Trainer(variant).fit())
        if main_process and len(variants) == 1:
            _summary(summaries[-1], time.perf_counter() - started)
    if len(summaries) > 1:
        _report(recipe, summaries)
    return summaries


def _summary(s: Any, seconds: float) -> None:
    """The few lines a finished run ends with: its scores, its time and where its model is."""
    final = f"{s.eval_split} top-1 {s.final_top1:.4f}"
    print(f"[{s.name}] done in {seconds:.1f} s: best val top-1 {s.val_top1:.4f} (epoch {s.best_epoch + 1}), "
          f"{final}\n[{s.name}] model: {Path(s.run_dir) / 'model'}", flush=True)


def _report(recipe: Any, summaries: list[Any]) -> None:
    """Comparison table on the terminal and as comparison.md/json beside the runs."""
    from accelerate import PartialState

    if not PartialState().is_main_process:
        return
    from dataclasses import asdict

    from zoo.cli.output import print_table

    split = summaries[0].eval_split
    columns = ["run", "strategy", "best val top-1", f"{split} top-1", "train time (s)", "images/s"]
    rows = [[s.name, s.strategy, f"{s.val_top1:.4f}", f"{s.final_top1:.4f}", f"{s.train_seconds:.1f}",
             f"{s.images_per_sec:.0f}"] for s in summaries]
    print_table(columns, rows, title=f"{recipe.name}: {recipe.model.name} on {recipe.data.spec}")
    out = Path(recipe.output.dir) / f"{recipe.name}-comparison"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps([asdict(s) for s in summaries], indent=2))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main(argv: Sequence[str] | None = None, prog: str = "python -m zoo.train") -> int:
    import logging

    from zoo.cli.errors import run_handler  # this argparse code moves to zoo/cli/train.py (issue 10)

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser(prog).parse_intermixed_args(argv)  # `RECIPE --check k=v` as well as `RECIPE k=v --check`
    return run_handler(_run, args)


def _run(args: argparse.Namespace) -> int:
    from zoo.preflight import preflight
    from zoo.recipe import expand_variants, load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    if args.check:
        for _, variant in expand_variants(recipe):
            preflight(variant)
        print(recipe.to_yaml())
        return 0
    train(recipe)
    return 0


if __name__ == "__main__":
    sys.exit(main())
