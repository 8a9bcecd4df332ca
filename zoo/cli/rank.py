"""`zoo rank DATA --models ...`: score candidate backbones for transfer to DATA before fine-tuning any."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

EPILOG = """\
examples:
  zoo rank sklearn:digits --models 'pypi:*'                       the three offline EfficientNet-Lites
  zoo rank imagefolder:./photos --models 'timm:convnext_*' --pretrained --max-params 30 --budget-minutes 20
  zoo rank cifar10 --models timm:resnet50.a1_in1k tv:resnet18 hf:google/vit-base-patch16-224 --sample 1000

For each candidate the frozen backbone's pooled features of --sample training images are extracted once
(cached in <out>/../.cache beside the linear probe's: a later `zoo train` linear_probe run of the same model,
data, val_size and image size reads them back) and scored three ways, higher is better:
  knn_top1    leave-one-out kNN accuracy, cosine similarity
  probe_top1  3-fold cross-validated linear probe accuracy
  logme       LogME evidence per example (You et al., ICML 2021)
A candidate that fails (no weights offline, out of memory) is a row with the reason; the others go on.
Writes rank.csv, rank.md and rank.png (score against GMACs) to --out.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rank",
        help="which backbone to fine-tune: transferability scores on your data",
        description="Rank candidate backbones for transfer to DATA by kNN, linear-probe and LogME "
        "scores of their frozen features.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "data", metavar="DATA", help="dataset spec: sklearn:digits, cifar10, imagefolder:<dir>, hf:<repo>, ..."
    )
    p.add_argument(
        "--models",
        nargs="+",
        required=True,
        metavar="NAME|PATTERN",
        help="model names or fnmatch patterns over the registry ('pypi:*', 'timm:convnext_*')",
    )
    p.add_argument("--pretrained", action="store_true", help="patterns list only models with pretrained weights")
    p.add_argument(
        "--random-init",
        action="store_true",
        help="also score each candidate from random initialisation (what the weights are worth)",
    )
    p.add_argument("--max-params", type=float, metavar="N", help="skip candidates over N million parameters")
    p.add_argument(
        "--budget-minutes",
        type=float,
        metavar="M",
        help="start no new candidate after M minutes (the rest are listed as skipped)",
    )
    p.add_argument(
        "--sample",
        type=int,
        default=2000,
        metavar="N",
        help="training images to score, seeded like a recipe's data.limit (default: %(default)s)",
    )
    p.add_argument(
        "--val-size",
        type=float,
        default=0.1,
        help="validation carved from train when the data has none, as the recipe's data.val_size "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--image-size",
        type=int,
        metavar="PX",
        help="input size (default: the model's own, but at most 8x the images' own side)",
    )
    p.add_argument(
        "--by",
        choices=["logme", "knn_top1", "probe_top1"],
        default="logme",
        help="the score that ranks (default: %(default)s)",
    )
    p.add_argument("--seed", type=int, default=0, help="sample, split and probe seed (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=128, help="images per forward pass (default: %(default)s)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--no-cache", action="store_true", help="extract features again even when cached")
    p.add_argument("--out", type=Path, default=Path("runs/rank"), help="output folder (default: %(default)s)")
    p.set_defaults(func=run)


def _fmt(value: object, digits: int = 4) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return "-" if value in (None, "") else str(value)


def _short(text: str, width: int = 100) -> str:
    """The table keeps a reason to one readable line; rank.csv and rank.md have it whole."""
    return text if len(text) <= width else text[: width - 1] + "…"


def run(args: argparse.Namespace) -> int:
    from zoo.cli.output import print_table
    from zoo.ranking.rank import rank

    val_size: float | int = int(args.val_size) if args.val_size >= 1 else args.val_size
    result = rank(
        args.data,
        args.models,
        pretrained=args.pretrained,
        random_init=args.random_init,
        max_params=args.max_params,
        budget_minutes=args.budget_minutes,
        sample=args.sample,
        val_size=val_size,
        image_size=args.image_size,
        by=args.by,
        seed=args.seed,
        batch_size=args.batch_size,
        device=args.device,
        out_dir=str(args.out),
        cache=not args.no_cache,
        command="zoo " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
    )
    print_table(
        [
            "candidate",
            "params (M)",
            "GMACs",
            "px",
            "extract img/s",
            "peak MiB",
            "kNN top-1",
            "probe top-1",
            "LogME",
            "rank",
            "status",
        ],
        [
            [
                r["candidate"],
                _fmt(r.get("params_m"), 2),
                _fmt(r.get("gmacs"), 3),
                _fmt(r.get("input_size")),
                _fmt(r.get("extract_images_per_sec"), 0),
                _fmt(r.get("peak_mem_mb"), 0),
                _fmt(r.get("knn_top1")),
                _fmt(r.get("probe_top1")),
                _fmt(r.get("logme")),
                _fmt(r.get("rank")),
                r["status"] + (f": {_short(r['reason'])}" if r.get("reason") else ""),
            ]
            for r in result.rows
        ],
        title=f"zoo rank {args.data}: {result.meta['train_images_scored']} training images, {result.seconds:.0f} s",
    )
    print(f"wrote {result.csv}, {result.markdown}" + (f", {result.plot}" if result.plot else ""))
    if result.recommended is None:
        print("no candidate could be scored: see the status column")
        return 1
    print(f"recommended backbone: {result.recommended} (highest {result.by})")
    return 0
