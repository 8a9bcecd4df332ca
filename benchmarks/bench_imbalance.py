"""Do the balanced options help on an imbalanced folder? Real digits, three classes cut to a tenth.

scikit-learn's 1,797 real digits are written as PNG image folders (tests/synthetic_data.py, digits_folder) with
the training images of digits 3, 8 and 9 cut to 10% (about 14 each, against about 145 for the others);
the test split stays balanced. Each configuration trains the same recipe with only the imbalance keys
changed: train.class_weights (none | balanced), data.sampler (random | balanced), over several seeds, and
reports test top-1, balanced accuracy, macro-F1 and the mean recall of the three cut classes.

    python benchmarks/bench_imbalance.py                    # -> benchmarks/results/imbalance_digits_cpu.csv
    python benchmarks/bench_imbalance.py --models timm:test_resnet pypi:efficientnet_lite0 --out /tmp/x.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # synthetic_data: the test fixtures

from synthetic_data import digits_folder  # noqa: E402

import zoo  # noqa: E402
from zoo.env import device_name  # noqa: E402
from zoo.train.run import train  # noqa: E402

CUT = {3: 0.1, 8: 0.1, 9: 0.1}
CONFIGS = [("none", "random"), ("balanced", "random"), ("none", "balanced"), ("balanced", "balanced")]
# one recipe per model: a tiny CNN from scratch (seconds a run) and a real pretrained backbone's linear probe
MODELS = {
    "timm:test_resnet": {
        "model": {"pretrained": False},
        "strategy": {"name": "scratch"},
        "data": {"image_size": 32},
        "optim": {"lr": 3e-3},
        "train": {"epochs": 6},
        "seeds": [0, 1, 2],
    },
    "pypi:efficientnet_lite0": {
        "model": {"pretrained": True},
        "strategy": {"name": "linear_probe"},
        "data": {"image_size": 64},
        "optim": {"lr": 1e-2},
        "train": {"epochs": 5},
        "seeds": [0],
    },
}
COLUMNS = [
    "model",
    "strategy",
    "class_weights",
    "sampler",
    "seed",
    "test_top1",
    "test_balanced_acc",
    "test_macro_f1",
    "cut_classes_recall",
    "epochs",
    "train_seconds",
    "torch",
    "zoo",
    "cpu",
]


def recipe(model: str, data_dir: Path, out: Path, class_weights: str, sampler: str, seed: int) -> dict:
    spec = MODELS[model]
    return {
        "name": f"{model.split(':')[1]}-{class_weights}-{sampler}-{seed}",
        "model": {"name": model, **spec["model"]},
        "data": {
            "spec": str(data_dir),
            "val_size": 0.2,
            "seed": seed,
            "augment": "none",
            "batch_size": 64,
            "num_workers": 0,
            "sampler": sampler,
            **spec["data"],
        },
        "strategy": spec["strategy"],
        "optim": {"weight_decay": 0.0, **spec["optim"]},
        "train": {"seed": seed, "class_weights": class_weights, **spec["train"]},
        "output": {"dir": str(out)},
        "resume": "never",
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--models",
        nargs="+",
        default=["timm:test_resnet"],
        choices=list(MODELS),
        help="default: the tiny CNN only (add pypi:efficientnet_lite0 for the pretrained probe)",
    )
    p.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        help="seeds for every model (default: 0 1 2 for the tiny CNN, 0 for the slower pretrained probe)",
    )
    p.add_argument("--out", default="benchmarks/results/imbalance_digits_cpu.csv")
    p.add_argument(
        "--summary-only", action="store_true", help="only (re)write the means file from the runs already in --out"
    )
    args = p.parse_args()
    if args.summary_only:
        with open(args.out, newline="") as f:
            write_summary([dict(r) for r in csv.DictReader(f)], Path(args.out))
        return
    logging.basicConfig(level=logging.ERROR)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = digits_folder(Path(tmp) / "digits", cut=CUT)
        for model in args.models:
            for seed in args.seeds or MODELS[model]["seeds"]:
                for class_weights, sampler in CONFIGS:
                    r = recipe(model, data_dir, Path(tmp) / "runs", class_weights, sampler, seed)
                    [summary] = train(r)
                    final = json.loads((Path(summary.run_dir) / "metrics.jsonl").read_text().splitlines()[-1])
                    recall = statistics.mean(final["per_class_acc"][c] for c in CUT)
                    rows.append(
                        {
                            "model": model,
                            "strategy": r["strategy"]["name"],
                            "class_weights": class_weights,
                            "sampler": sampler,
                            "seed": seed,
                            "test_top1": round(final["top1"], 4),
                            "test_balanced_acc": round(final["balanced_acc"], 4),
                            "test_macro_f1": round(final["macro_f1"], 4),
                            "cut_classes_recall": round(recall, 4),
                            "epochs": summary.epochs_run,
                            "train_seconds": summary.train_seconds,
                            "torch": torch.__version__,
                            "zoo": zoo.__version__,
                            "cpu": device_name("cpu"),
                        }
                    )
                    print({k: rows[-1][k] for k in COLUMNS[:9]}, flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    write_summary(rows, out)


MEANS = ("test_top1", "test_balanced_acc", "test_macro_f1", "cut_classes_recall")


def write_summary(rows: list[dict], out: Path) -> Path:
    """The mean over seeds of each (model, class_weights, sampler): what benchmarks/README.md's table shows."""
    path = out.with_name(out.stem + "_means.csv")
    keys = list(dict.fromkeys((r["model"], r["class_weights"], r["sampler"]) for r in rows))
    means = []
    for model, class_weights, sampler in keys:
        sel = [r for r in rows if (r["model"], r["class_weights"], r["sampler"]) == (model, class_weights, sampler)]
        means.append(
            {
                "model": model,
                "class_weights": class_weights,
                "sampler": sampler,
                "seeds": len(sel),
                **{k: round(statistics.mean(float(r[k]) for r in sel), 3) for k in MEANS},
            }
        )
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(means[0]))
        writer.writeheader()
        writer.writerows(means)
    print(f"\nmean over seeds ({path}):")
    for m in means:
        print("  " + "  ".join(f"{k}={v}" for k, v in m.items()))
    return path


if __name__ == "__main__":
    main()
