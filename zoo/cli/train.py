"""`zoo train RECIPE [KEY=VALUE ...]` and `accelerate launch -m zoo.train ...`: one command line for both."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from zoo.cli.errors import ZooArgumentParser, run_handler
from zoo.cli.output import print_table

DESCRIPTION = "Train (linear-probe, fine-tune, ...) a backbone on a dataset as a recipe describes."
EPILOG = """\
examples:
  zoo train recipes/quickstart.yaml
  zoo train recipes/cifar10/resnet50-finetune.yaml train.epochs=3 optim.lr=3e-4
  accelerate launch --config_file recipes/accelerate/multi-gpu.yaml -m zoo.train recipes/cifar10/resnet50-finetune.yaml

Overrides are dotted recipe keys: data.batch_size=64 strategy.name=partial strategy.unfreeze_stages=2
output.trackers=[tensorboard] resume=never. A killed run continues from its last saved state (resume: auto).
"""


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The arguments of both `python -m zoo.train` and `zoo train`."""
    p.add_argument("recipe", help="recipe YAML file, e.g. recipes/quickstart.yaml")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="recipe overrides, e.g. train.epochs=3")
    p.add_argument("--check", action="store_true", help="validate the recipe, print it resolved, and exit")
    return p


def build_parser(prog: str = "zoo train") -> argparse.ArgumentParser:
    return add_arguments(
        ZooArgumentParser(
            prog=prog, description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
        )
    )


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="run a training recipe (linear probe, fine-tune, ...)",
        description=DESCRIPTION + " For several GPUs or nodes use `accelerate launch -m zoo.train`.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p).set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return main([args.recipe, *args.overrides] + (["--check"] if args.check else []), prog="zoo train")


def main(argv: Sequence[str] | None = None, prog: str = "python -m zoo.train") -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser(prog).parse_intermixed_args(argv)  # `RECIPE --check k=v` as well as `RECIPE k=v --check`
    return run_handler(_run, args)


def _run(args: argparse.Namespace) -> int:
    # Deferred so `zoo --help` does not import torch, accelerate and timm (seconds) for every command.
    from accelerate import PartialState

    from zoo.train.preflight import preflight
    from zoo.train.recipe import expand_variants, load_recipe
    from zoo.train.run import comparison_rows, train

    recipe = load_recipe(args.recipe, args.overrides)
    if args.check:
        for _, variant in expand_variants(recipe):
            preflight(variant)
        print(recipe.to_yaml())
        return 0
    summaries = train(recipe)
    if len(summaries) > 1 and PartialState().is_main_process:
        columns, rows = comparison_rows(summaries)
        print_table(columns, rows, title=f"{recipe.name}: {recipe.model.name} on {recipe.data.spec}")
    return 0
