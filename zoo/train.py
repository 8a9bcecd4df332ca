"""Run a recipe: ``accelerate launch -m zoo.train RECIPE [key=value ...]`` or ``zoo train RECIPE ...``.

Any accelerate configuration works (one CPU process, one GPU, DDP over many GPUs or nodes, FSDP): the loop
in ``zoo.trainer`` only talks to ``Accelerator``. A recipe with ``variants:`` runs once per variant and
prints a comparison table (the quickstart compares linear probe, fine-tune and training from scratch).
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from zoo.errors import ZooError

EPILOG = """\
examples:
  zoo train recipes/quickstart.yaml
  zoo train recipes/cifar10/resnet50-finetune.yaml train.epochs=3 optim.lr=3e-4
  accelerate launch --config_file recipes/accelerate/multi_gpu.yaml -m zoo.train recipes/cifar10/resnet50-finetune.yaml

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
    """Run a recipe (every variant) and return one RunSummary per run."""
    from zoo.recipe import Recipe, expand_variants, load_recipe
    from zoo.trainer import Trainer

    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe, overrides)
    summaries, sections = [], []
    for _, variant in expand_variants(recipe):
        trainer = Trainer(variant)
        summaries.append(trainer.fit())
        sections.append(_run_report(trainer))
    if len(summaries) > 1:
        _report(recipe, summaries, [s for s in sections if s])
    return summaries


def _run_report(trainer: Any) -> dict[str, Any] | None:
    """report.html in the run folder (main process). A failed report is a warning: the run itself is done."""
    from accelerate import PartialState

    if not PartialState().is_main_process:
        return None
    from zoo.report import read_run, run_context, write_report

    try:
        section = run_context(read_run(trainer.run_dir), dataset=trainer.ds)
        print(f"[{trainer.recipe.name}] report: {write_report(trainer.run_dir, contexts=[section])}")
        return section
    except Exception as exc:  # noqa: BLE001
        print(f"[{trainer.recipe.name}] warning: report.html not written: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None


def _report(recipe: Any, summaries: list[Any], sections: Sequence[Any] = ()) -> None:
    """Comparison table on the terminal and as comparison.md/json/html beside the runs."""
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
    if len(sections) > 1:
        from zoo.report import write_report

        print(f"comparison report: {write_report([], out.with_suffix('.html'), contexts=sections)}")


def main(argv: Sequence[str] | None = None, prog: str = "python -m zoo.train") -> int:
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser(prog).parse_args(argv)
    try:
        from zoo.recipe import load_recipe

        recipe = load_recipe(args.recipe, args.overrides)
        if args.check:
            print(recipe.to_yaml())
            return 0
        train(recipe)
    except ZooError as exc:
        print(f"zoo: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
