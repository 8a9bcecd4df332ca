"""`zoo data doctor` on real digits with known faults: precision and recall of each finding, side by side with
ranking by out-of-fold loss and with cleanlab's `find_label_issues` on the same out-of-fold probabilities.

The data: scikit-learn's 1,797 handwritten digits (8x8, real scans), written as an image folder with zoo's own
train/test split of them (stratified 80/20, seed 0), plus
  - duplicates across splits: ``--dups`` training digits per kind copied into test/ as an exact PNG copy, a
    JPEG re-encode (quality 75), a slightly resized copy (8 -> 10 px, bicubic) and a cropped copy (one pixel
    row and column cut, scaled back to 8 px);
  - outliers: ``--photos`` 8x8 thumbnails of scikit-image's sample photos filed under random digit classes.
Features are extracted once (zoo.doctor.features, the shared cache). Label noise: for each rate, that fraction
of the training split's labels is flipped to a random other class; the images do not change, so the features
are reused and only the probe and confident learning run again (exactly what the doctor runs on a folder with
those labels). cleanlab (AGPL-3.0) is never imported here: the probabilities go to `--cleanlab-python` (a
separate venv: python -m venv /tmp/cl && /tmp/cl/bin/pip install cleanlab numpy scikit-learn) as .npy files.

    python benchmarks/bench_doctor.py --models pypi:efficientnet_lite0 --image-size 64 \
        --cleanlab-python /tmp/cl/bin/python
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import zoo  # noqa: E402 - after the sys.path insert above (runs as a script)
from zoo.doctor import labels as L  # noqa: E402 - after the sys.path insert above (runs as a script)
from zoo.doctor.core import DoctorConfig, analyse  # noqa: E402 - after the sys.path insert above (runs as a script)
from zoo.doctor.features import split_features  # noqa: E402 - after the sys.path insert above (runs as a script)

CLEANLAB = """
import json, sys, numpy as np
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores
probs, labels = np.load(sys.argv[1]), np.load(sys.argv[2])
mask = find_label_issues(labels, probs)
scores = get_label_quality_scores(labels, probs)
np.save(sys.argv[3], mask); np.save(sys.argv[4], scores)
"""


def build_folder(root: Path, dups: int, photos: int, seed: int) -> dict:
    """The image folder and its ground truth: {'pairs': [(train path, test path, kind)], 'photos': [paths]}."""
    import skimage.data
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    img = (d.images * (255.0 / 16.0)).round().clip(0, 255).astype(np.uint8)
    y = d.target
    tr, te = train_test_split(np.arange(len(y)), test_size=0.2, stratify=y, random_state=0)
    paths = {}
    for split, idx in (("train", tr), ("test", te)):
        for i in idx:
            p = root / split / str(y[i]) / f"d{i:04d}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img[i]).save(p)
            paths[i] = p
    rng = np.random.default_rng(seed)
    chosen = rng.choice(tr, 4 * dups, replace=False)
    truth: dict = {"pairs": [], "photos": []}
    kinds = ("exact", "jpeg", "resized", "cropped")
    for n, i in enumerate(chosen):
        kind = kinds[n // dups]
        im = Image.fromarray(img[i])
        out = root / "test" / str(y[i]) / f"copy-{kind}-{i:04d}.{'jpg' if kind == 'jpeg' else 'png'}"
        if kind == "jpeg":
            im.save(out, quality=75)
        elif kind == "resized":
            im.resize((10, 10), Image.Resampling.BICUBIC).save(out)
        elif kind == "cropped":
            im.crop((1, 1, 8, 8)).resize((8, 8), Image.Resampling.BICUBIC).save(out)
        else:
            im.save(out)
        truth["pairs"].append((str(paths[i]), str(out), kind))
    names = ["astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "camera", "coins", "moon"]
    for n in range(photos):
        a = getattr(skimage.data, names[n % len(names)])()
        a = a if a.ndim == 3 else np.stack([a] * 3, -1)
        h, w = a.shape[:2]
        s = int(min(h, w) * rng.uniform(0.4, 0.9))
        top, left = rng.integers(0, h - s + 1), rng.integers(0, w - s + 1)
        out = root / "train" / str(rng.integers(0, 10)) / f"photo-{n:02d}.png"
        Image.fromarray(a[top : top + s, left : left + s, :3]).resize((8, 8), Image.Resampling.LANCZOS).save(out)
        truth["photos"].append(str(out))
    return truth


def pr(flagged: set, true: set) -> tuple[float, float]:
    hit = len(flagged & true)
    return (hit / len(flagged) if flagged else float("nan")), (hit / len(true) if true else float("nan"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["pypi:efficientnet_lite0"])
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--rates", type=float, nargs="+", default=[0.02, 0.05, 0.10])
    p.add_argument("--dups", type=int, default=25, help="copies per kind")
    p.add_argument("--photos", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "bench_doctor")
    p.add_argument("--cleanlab-python", help="python of a venv with cleanlab (never zoo's)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "doctor_digits_cpu.csv")
    args = p.parse_args()

    folder = args.work / f"digits-faults-{args.dups}-{args.photos}-{args.seed}"
    truth_file = folder.with_suffix(".json")
    if not truth_file.is_file():
        truth = build_folder(folder, args.dups, args.photos, args.seed)
        truth_file.write_text(json.dumps(truth))
    truth = json.loads(truth_file.read_text())
    load_start = time.perf_counter()
    ds = zoo.load_dataset(str(folder), val_size=0.1, seed=args.seed)
    cfg = DoctorConfig(data=str(folder), models=args.models, image_size=args.image_size)
    start = time.perf_counter()
    feats, record = split_features(ds, args.models, image_size=args.image_size, cache_dir=args.work / ".cache")
    extract = time.perf_counter() - start
    _, summary, rows = analyse(ds, feats, cfg)
    n_images = len(rows["id"])
    rows_out: list[dict] = []
    tag = "+".join(m.split(":")[-1] for m in args.models) + f"@{args.image_size}"

    def add(finding: str, method: str, precision: float, recall: float, flagged: int, true: int, **extra) -> None:
        rows_out.append(
            {
                "features": tag,
                "finding": finding,
                "method": method,
                "true": true,
                "flagged": flagged,
                "precision": round(precision, 4),
                "recall": round(recall, 4),
                **extra,
            }
        )

    # duplicates: a copy is found when a pair joins it to its original (any kind); a leak when named one
    pairs = {frozenset((rows["id"][q["a"]], rows["id"][q["b"]])): q for q in rows["pairs"]}
    injected = {frozenset((a, b)) for a, b, _ in truth["pairs"]}
    for kind in ("exact", "jpeg", "resized", "cropped"):
        true = {frozenset((a, b)) for a, b, k in truth["pairs"] if k == kind}
        found = true & set(pairs)
        leaks = {t for t in found if pairs[t]["kind"] == "leak"}
        add(
            f"duplicate across splits: {kind}",
            "doctor",
            float("nan"),
            len(found) / len(true),
            len(found),
            len(true),
            named_leak=len(leaks),
        )
    flagged_pairs = set(pairs)
    precision, recall = pr(flagged_pairs, injected)
    add("duplicate pairs, all kinds", "doctor", precision, recall, len(flagged_pairs), len(injected))
    photo_rows = {i for i, rid in enumerate(rows["id"]) if rid in set(truth["photos"])}
    precision, recall = pr(set(rows["outlier_flagged"].tolist()), photo_rows)
    add("outlier (photo among digits)", "doctor", precision, recall, len(rows["outlier_flagged"]), len(photo_rows))

    y_clean = rows["label"].copy()
    train_rows = np.flatnonzero(np.array(rows["split"]) == "train")
    rng = np.random.default_rng(args.seed)
    for rate in args.rates:
        y = y_clean.copy()
        flip = rng.choice(train_rows, int(round(rate * len(train_rows))), replace=False)
        y[flip] = (y[flip] + rng.integers(1, 10, len(flip))) % 10
        t0 = time.perf_counter()
        lab = L.label_issues(
            rows["features"], y, ds.label_names, folds=cfg.folds, C=cfg.C, seed=args.seed, method=cfg.method
        )
        score_s = time.perf_counter() - t0
        true, k = set(flip.tolist()), len(flip)

        def at_k(order: np.ndarray, true: set = true, k: int = k) -> float:
            return len(set(order[:k].tolist()) & true) / k

        precision, recall = pr(set(lab["flagged"].tolist()), true)
        add(
            f"label, {rate:.0%} flipped",
            f"doctor (confident learning, {cfg.method}: the default)",
            precision,
            recall,
            len(lab["flagged"]),
            k,
            precision_at_k=round(at_k(np.argsort(lab["quality"], kind="stable")), 4),
            score_seconds=round(score_s, 2),
        )
        for method in (m for m in L.METHODS if m != cfg.method):
            mask = L.find_label_issues(y, lab["probs"], method)
            precision, recall = pr(set(np.flatnonzero(mask).tolist()), true)
            add(f"label, {rate:.0%} flipped", f"doctor ({method})", precision, recall, int(mask.sum()), k)
        loss = -np.log(np.clip(lab["probs"][np.arange(len(y)), y], 1e-12, None))
        by_loss = np.argsort(-loss, kind="stable")
        add(
            f"label, {rate:.0%} flipped",
            "out-of-fold loss, top k",
            at_k(by_loss),
            at_k(by_loss),
            k,
            k,
            precision_at_k=round(at_k(by_loss), 4),
        )
        if args.cleanlab_python:
            tmp = args.work / "cl"
            tmp.mkdir(parents=True, exist_ok=True)
            np.save(tmp / "probs.npy", lab["probs"])
            np.save(tmp / "labels.npy", y)
            subprocess.run(
                [
                    args.cleanlab_python,
                    "-c",
                    CLEANLAB,
                    *(str(tmp / f) for f in ("probs.npy", "labels.npy", "mask.npy", "scores.npy")),
                ],
                check=True,
            )
            mask, scores = np.load(tmp / "mask.npy"), np.load(tmp / "scores.npy")
            precision, recall = pr(set(np.flatnonzero(mask).tolist()), true)
            add(
                f"label, {rate:.0%} flipped",
                "cleanlab find_label_issues (defaults)",
                precision,
                recall,
                int(mask.sum()),
                k,
                precision_at_k=round(at_k(np.argsort(scores, kind="stable")), 4),
            )
    rows_out.append(
        {
            "features": tag,
            "finding": "time",
            "method": f"extract {n_images} images (cpu)",
            "seconds": round(extract, 1),
            "images_per_sec": round(n_images / max(extract, 1e-9), 1),
            "cached": ";".join(f"{m['model']}:{','.join(m['cached'])}" for m in record["models"]),
        }
    )
    rows_out.append(
        {
            "features": tag,
            "finding": "time",
            "method": f"score {n_images} images (probe, duplicates, outliers)",
            "seconds": summary["score_seconds"],
        }
    )
    cols = [
        "features",
        "finding",
        "method",
        "true",
        "flagged",
        "precision",
        "recall",
        "precision_at_k",
        "named_leak",
        "score_seconds",
        "seconds",
        "images_per_sec",
        "cached",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    new = not args.out.is_file()
    with args.out.open("a", newline="") as f:
        w = csv.DictWriter(f, cols, extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerows(rows_out)
    note = args.out.with_name(args.out.stem + "_notes.md")
    with note.open("a") as f:
        f.write(
            f"- `{' '.join(['python', *sys.argv])}` ({tag}): {n_images} images, load average "
            f"{os.getloadavg()[0]:.1f} at the end, {time.perf_counter() - load_start:.0f} s in all\n"
        )
    for r in rows_out:
        print({k: v for k, v in r.items() if v not in ("", None)})


if __name__ == "__main__":
    main()
