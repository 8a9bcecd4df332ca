"""`zoo report RUN_DIR [RUN_DIR ...] [-o report.html]`: a run's curves, mistakes and numbers as one HTML file."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="an HTML report of one run, or several side by side",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Write one self-contained HTML file (figures and images inline, nothing fetched at view "
        "time): the recipe that ran, backbone, data and split sizes, environment; loss, accuracy and "
        "per-layer-group learning-rate curves; confusion matrix, per-class precision/recall/F1, the "
        "most confused classes; the top losses (validation images most confidently wrong, and the "
        "least confident right ones, scored with the saved model). Several runs get a side-by-side "
        "table and overlaid curves. `zoo train` writes report.html into every run folder already.",
        epilog="examples:\n"
        "  zoo report runs/quickstart-finetune                 (-> runs/quickstart-finetune/report.html)\n"
        "  zoo report runs/quickstart-* -o quickstart.html\n"
        "  zoo report runs/big-run --top-losses 0                (skip scoring the validation split)",
    )
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folder(s) written by zoo train")
    p.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="HTML file to write (default: RUN_DIR/report.html for one run, ./report.html for several)",
    )
    p.add_argument(
        "--top-losses",
        type=int,
        default=12,
        metavar="N",
        help="images per top-losses gallery (default: 12; 0 skips loading the model and data)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from zoo.errors import ConfigError
    from zoo.report import write_report

    if args.top_losses < 0:
        raise ConfigError(f"--top-losses {args.top_losses}: use 0 (no gallery) or a positive count")
    print(f"wrote {write_report(args.runs, args.output, top_n=args.top_losses)}")
    return 0
