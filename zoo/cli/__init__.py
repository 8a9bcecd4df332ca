"""The `zoo` command. Each subcommand lives in its own module under zoo/cli/ and adds itself to
the parser through ``add_parser(subparsers)``; its handler is stored as the ``func`` default."""

from __future__ import annotations

import argparse
import sys
from importlib import import_module

from zoo import __version__
from zoo.cli.errors import USAGE, ZooArgumentParser, run_handler

# One module per command group, in the order `zoo --help` lists them.
COMMAND_MODULES = [
    "zoo.cli.models",  # zoo models, zoo info
    "zoo.cli.data",  # zoo data inspect
    "zoo.cli.train",  # zoo train
    "zoo.cli.hub",  # zoo predict, zoo eval, zoo push, zoo convert
    "zoo.cli.bench",  # zoo bench backbones, zoo bench transfer
    "zoo.cli.report",  # zoo report
    "zoo.cli.serve",  # zoo serve
    "zoo.cli.rank",  # zoo rank
    "zoo.cli.export",  # zoo export
]

EPILOG = """\
examples:
  zoo train recipes/quickstart.yaml        offline quickstart: linear probe vs fine-tune vs scratch
  zoo models 'resnet5*' --source timm      list timm ResNet-50 variants with their pretrained tags
  zoo models --source hf                   curated Hugging Face image classifiers
  zoo info tv:resnet18 --json              features, preprocessing and layer groups of a model
  zoo data inspect sklearn:digits          splits, classes, image sizes, bad files, a thumbnail grid
  zoo predict runs/quickstart-finetune/model img.png    label names and probabilities
  zoo report runs/quickstart-finetune      curves, confusion matrix, top losses as one HTML file
  zoo serve runs/quickstart-finetune/model  a local prediction page (drop images, see top-k)
  zoo rank sklearn:digits --models 'pypi:*'  which backbone to fine-tune: kNN, linear-probe and LogME scores
  zoo export runs/quickstart-finetune/model --format onnx    an ONNX file checked against PyTorch

Model names are 'source:id' (timm:, hf:, tv:, pypi:); a bare name means timm.
Run 'zoo COMMAND --help' for the options of one command.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = ZooArgumentParser(
        prog="zoo",
        description="Transfer learning for image classification over timm, Hugging Face and torchvision.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"zoo {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in COMMAND_MODULES:
        import_module(name).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; bad usage exits 2, failed work 1, each with one `zoo: error:` line (zoo.cli.errors)."""
    parser = build_parser()
    # usage errors: one line and SystemExit(2), as argparse does. KEY=VALUE overrides may come after an
    # option (`zoo train R --check k=v`): argparse leaves them over, the command takes them back.
    args, extra = parser.parse_known_args(argv)
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not hasattr(args, "func"):
        parser.print_help()
        return USAGE
    return run_handler(args.func, args)


if __name__ == "__main__":  # python -m zoo.cli
    sys.exit(main())
