"""`zoo train RECIPE [KEY=VALUE ...]`: one process; use `accelerate launch -m zoo.train` for several."""
from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    from zoo.train import DESCRIPTION, EPILOG, add_arguments

    p = sub.add_parser("train", help="run a training recipe (linear probe, fine-tune, ...)",
                       description=DESCRIPTION + " For several GPUs or nodes use `accelerate launch -m zoo.train`.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p).set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from zoo.train import main

    return main([args.recipe, *args.overrides] + (["--check"] if args.check else []), prog="zoo train")
