"""``zoo rank``: which backbone to fine-tune on *these* images, answered in minutes instead of fine-tunes.

For each candidate the frozen backbone's pooled features of a sample of the training split are extracted once
(through the linear probe's disk cache, so a later ``linear_probe`` run of the same model, data and image size
reads them back) and scored three ways (zoo.ranking.scores): leave-one-out kNN top-1, a cross-validated
linear probe, and LogME. A candidate that cannot be built or run (no weights offline, out of memory) becomes a
row with the reason, and the others go on.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from zoo.bench.measure import count_gmacs, is_oom
from zoo.bench.results import write_csv, write_markdown
from zoo.data import load_dataset
from zoo.data.loaders import build_loaders
from zoo.env import PeakMemory, run_metadata
from zoo.errors import ConfigError, ZooError
from zoo.ranking.scores import knn_top1, logme, probe_top1
from zoo.registry import create_model, list_models
from zoo.train.feature_cache import FeatureCache, feature_key
from zoo.train.features import extract_features
from zoo.train.schema import DataConfig

SCORES = ("knn_top1", "probe_top1", "logme")
COLUMNS = [
    "rank",
    "candidate",
    "params_m",
    "gmacs",
    "input_size",
    "extract_images_per_sec",
    "peak_mem_mb",
    *SCORES,
    "status",
    "reason",
]
UPSAMPLE_CAP = 8  # never feed a model more than 8x the images' own side: an 8x8 digit at 64 px holds all it has


@dataclass(frozen=True)
class Candidate:
    name: str
    pretrained: bool = True

    @property
    def label(self) -> str:
        return self.name if self.pretrained else f"{self.name} (random init)"


@dataclass
class RankConfig:
    data: str
    models: Sequence[str | Candidate] = ("pypi:*",)
    pretrained: bool = False  # patterns list only models with pretrained weights
    random_init: bool = False  # also score each candidate from random initialisation (the baseline)
    max_params: float | None = None  # millions
    budget_minutes: float | None = None
    sample: int = 2000  # training images scored (seeded, as recipe data.limit takes them)
    val_size: float | int = 0.1  # as the recipe's data.val_size: the same split the fine-tune will train on
    image_size: int | None = None  # default: the model's own, capped at UPSAMPLE_CAP x the images' side
    by: str = "logme"
    k: int = 10
    seed: int = 0
    batch_size: int = 128
    device: str | None = None
    out_dir: str = "runs/rank"
    cache: bool = True
    command: str | None = None  # recorded in rank.md (the CLI passes its command line)

    def validate(self) -> RankConfig:
        if self.by not in SCORES:
            raise ConfigError(f"unknown score {self.by!r} for --by; use one of {', '.join(SCORES)}")
        if self.sample < 10:
            raise ConfigError(f"--sample {self.sample} is too small to score; use at least 10 (default 2000)")
        if self.max_params is not None and self.max_params <= 0:
            raise ConfigError(f"--max-params {self.max_params} must be > 0 (millions of parameters)")
        if not self.models:
            raise ConfigError("no candidates: give --models NAME|PATTERN ... (e.g. --models 'pypi:*')")
        return self


@dataclass
class RankResult:
    rows: list[dict[str, Any]]
    recommended: str | None
    by: str
    csv: Path
    markdown: Path
    plot: Path | None
    seconds: float
    meta: dict[str, Any] = field(default_factory=dict)


def resolve_candidates(
    models: Sequence[str | Candidate], pretrained: bool, random_init: bool
) -> list[tuple[Candidate, float | None]]:
    """Names stay as given; fnmatch patterns expand through the registry. Returns (candidate, known params)."""
    out: list[tuple[Candidate, float | None]] = []
    for m in models:
        if isinstance(m, Candidate):
            out.append((m, None))
            continue
        if any(c in m for c in "*?["):
            infos = list_models(m, pretrained=pretrained)
            if not infos:
                raise ConfigError(
                    f"--models {m!r} matches no model{' with pretrained weights' if pretrained else ''}; "
                    f"see `zoo models {m!r}`"
                )
            out += [(Candidate(i.name), i.param_count) for i in infos]
        else:
            out.append((Candidate(m), None))
    if random_init:
        out += [(Candidate(c.name, pretrained=False), p) for c, p in out if c.pretrained]
    unique: dict[Candidate, float | None] = {}
    for c, p in out:
        unique.setdefault(c, p)  # the first listing of a candidate wins
    return list(unique.items())


def auto_image_size(model_size: int, image_side: int) -> int:
    return min(model_size, max(UPSAMPLE_CAP * image_side, 32))


def _reason(exc: BaseException) -> str:
    if is_oom(exc):
        return "out of memory: " + (str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__)
    text = str(exc).splitlines()[0] if str(exc) else ""
    return (text if isinstance(exc, ZooError) else f"{type(exc).__name__}: {text}")[:300]


def score_candidate(
    cand: Candidate,
    ds: Any,
    cfg: RankConfig,
    cache: FeatureCache | None,
    device: str,
    image_side: int,
    known_params: float | None,
) -> dict[str, Any]:
    """One row of the table; never raises for a candidate's own failure."""
    row: dict[str, Any] = {"candidate": cand.label, "status": "ok", "reason": ""}
    if cfg.max_params is not None and known_params is not None and known_params > cfg.max_params:
        return {
            **row,
            "params_m": known_params,
            "status": "skipped",
            "reason": f"{known_params:.1f}M parameters > --max-params {cfg.max_params:g}",
        }
    model = None
    try:
        if not cand.pretrained:
            torch.manual_seed(cfg.seed)  # the same random init every time, so its features cache too
        model = create_model(cand.name, pretrained=cand.pretrained)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        row["params_m"] = round(params, 2)
        if cfg.max_params is not None and params > cfg.max_params:
            return {**row, "status": "skipped", "reason": f"{params:.1f}M parameters > --max-params {cfg.max_params:g}"}
        size = cfg.image_size or auto_image_size(int(model.data_config["input_size"][-1]), image_side)
        model.data_config["input_size"] = (3, size, size)
        row["input_size"] = size
        row["gmacs"] = round(count_gmacs(model, (3, size, size)), 3)
        model.eval().to(device)
        loaders = build_loaders(
            ds,
            model.data_config,
            DataConfig(
                spec=cfg.data, augment="none", batch_size=cfg.batch_size, eval_batch_size=cfg.batch_size, num_workers=0
            ),
            run_dir=Path(cfg.out_dir) if cfg.cache else None,
            seed=cfg.seed,
        )
        key = feature_key(model, ds["train"], model.data_config)
        hit = cache.get(key) if cache is not None else None
        if hit is not None:
            feats, labels = hit
            row["reason"] = "features read from the cache"
        else:
            eval_tf = loaders.eval_transform.to(device)
            with torch.no_grad(), PeakMemory(device) as mem:
                start = time.perf_counter()
                feats, labels = extract_features(model, loaders.train_plain, None, eval_tf, desc=cand.label, leave=True)
                seconds = time.perf_counter() - start
            row["extract_images_per_sec"] = round(len(feats) / max(seconds, 1e-9), 1)
            row["peak_mem_mb"] = round(mem.peak_mb or 0.0, 1)
            if cache is not None:
                cache.put(key, feats, labels)
        if not torch.isfinite(feats).all():
            return {**row, "status": "failed", "reason": "the features hold NaN or inf"}
        row["knn_top1"] = round(knn_top1(feats, labels, k=cfg.k), 4)
        row["probe_top1"] = round(probe_top1(feats, labels, seed=cfg.seed), 4)
        row["logme"] = round(logme(feats, labels), 4)
    except Exception as exc:  # noqa: BLE001 - a failed candidate is a row with its reason; the others go on
        row.update(status="failed", reason=_reason(exc))
    finally:
        del model
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return row


def assign_ranks(rows: list[dict[str, Any]], by: str) -> str | None:
    """Rank the scored rows by ``by`` (1 = best); returns the recommended candidate."""
    scored = sorted((r for r in rows if r.get("status") == "ok" and isinstance(r.get(by), float)), key=lambda r: -r[by])
    for i, r in enumerate(scored, start=1):
        r["rank"] = i
    rows.sort(key=lambda r: (r.get("rank") is None, r.get("rank") or 0))
    return scored[0]["candidate"] if scored else None


def plot_scores(rows: Sequence[dict[str, Any]], path: Path, recommended: str | None) -> Path | None:
    """Each score against the cost of a forward pass (GMACs per image), one panel per score."""
    import matplotlib

    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r.get("status") == "ok" and isinstance(r.get("gmacs"), float)]
    if not ok:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5), dpi=110)
    for ax, score in zip(axes, SCORES):
        for r in ok:
            best = r["candidate"] == recommended
            ax.scatter(r["gmacs"], r[score], s=60 if best else 30, color="tab:orange" if best else "tab:blue", zorder=3)
            ax.annotate(r["candidate"], (r["gmacs"], r[score]), textcoords="offset points", xytext=(4, 3), fontsize=7)
        ax.set_xlabel("GMACs per image (at the ranked input size)")
        ax.set_ylabel(score)
        ax.set_title(score, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.margins(0.2)
    fig.suptitle(f"transferability vs cost (orange: recommended, {recommended})", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def rank(data: str, models: Sequence[str | Candidate] = ("pypi:*",), **options: Any) -> RankResult:
    """Score backbones for transfer to ``data`` (a zoo.load_dataset spec); see :class:`RankConfig`."""
    cfg = RankConfig(data=data, models=list(models), **options).validate()
    started = time.perf_counter()
    candidates = resolve_candidates(cfg.models, cfg.pretrained, cfg.random_init)
    device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        torch.set_flush_denormal(True)  # as the trainer: pretrained weights make slow denormals on x86
    ds = load_dataset(data, val_size=cfg.val_size, seed=cfg.seed)
    train = ds["train"]
    if len(train) > cfg.sample:  # the same rows a recipe's data.limit takes, so the cache entry is shared
        train = train.shuffle(seed=cfg.seed).select(range(cfg.sample))
    ds = dataclasses.replace(ds, splits={"train": train})
    image_side = int(statistics.median(max(im.size) for im in train.select(range(min(len(train), 64)))["image"]))
    cache = FeatureCache(Path(cfg.out_dir).parent / ".cache") if cfg.cache else None
    rows: list[dict[str, Any]] = []
    for cand, params in candidates:
        if cfg.budget_minutes is not None and time.perf_counter() - started > cfg.budget_minutes * 60:
            rows.append(
                {
                    "candidate": cand.label,
                    "status": "skipped",
                    "reason": f"over the --budget-minutes {cfg.budget_minutes:g} budget",
                }
            )
            continue
        rows.append(score_candidate(cand, ds, cfg, cache, device, image_side, params))
    recommended = assign_ranks(rows, cfg.by)
    out = Path(cfg.out_dir)
    meta = run_metadata(
        command=cfg.command,
        data=data,
        train_images_scored=len(train),
        by=cfg.by,
        device=device,
        torch_threads=torch.get_num_threads(),
        seconds=round(time.perf_counter() - started, 1),
    )
    csv = write_csv(rows, out / "rank.csv", COLUMNS)
    plot = plot_scores(rows, out / "rank.png", recommended)
    notes = [
        f"recommended: **{recommended}** (highest {cfg.by})" if recommended else "no candidate could be scored",
        "knn_top1: leave-one-out cosine kNN accuracy; probe_top1: 3-fold cross-validated linear probe; "
        "logme: LogME evidence per example (You et al., ICML 2021). Higher is better for all three.",
    ]
    shown = [{**r, **{s: f"{r[s]:.4f}" for s in SCORES if isinstance(r.get(s), float)}} for r in rows]
    md = write_markdown(shown, out / "rank.md", COLUMNS, title=f"zoo rank {data}", meta=meta, notes=notes, image=plot)
    return RankResult(rows, recommended, cfg.by, csv, md, plot, round(time.perf_counter() - started, 2), meta)
