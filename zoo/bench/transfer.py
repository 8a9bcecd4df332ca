"""The transfer table: backbones x strategies x seeds on one dataset -> accuracy, time, throughput, memory.

Each run is a real ``zoo.train`` run of a base recipe with the model, strategy and seed overridden, in its
own process (so peak memory is that run's, not the largest so far). A strategy's settings come from the
base recipe's variant of the same strategy when it has one (the quickstart's ``linear_probe`` variant sets
its learning rate), else only ``strategy.name`` changes.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

COLUMNS = [
    "model",
    "strategy",
    "top1_mean",
    "top1_std",
    "seeds",
    "wall_seconds_mean",
    "train_seconds_mean",
    "train_images_per_sec",
    "peak_mem_mb",
    "pareto",
]


@dataclass
class TransferConfig:
    recipe: str = "recipes/quickstart.yaml"
    models: Sequence[str] = ()
    strategies: Sequence[str] = ("linear_probe", "finetune", "partial", "scratch")
    seeds: Sequence[int] = (0,)
    spec: str | None = None
    overrides: Sequence[str] = ()
    out_dir: str = "runs/bench-transfer"
    timeout_s: float = 1800
    extra: dict[str, Any] = field(default_factory=dict)


def run_overrides(base: dict[str, Any], model: str | None, strategy: str, seed: int, spec: str | None) -> list[str]:
    """The key=value overrides for one cell of the table."""
    variants = base.get("variants") or {}
    from_variant: dict[str, Any] = next((v for v in variants.values() if v.get("strategy.name") == strategy), {})
    out = [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in from_variant.items()]
    out += [f"strategy.name={strategy}", f"train.seed={seed}", f"data.seed={seed}", "resume=never"]
    if model:
        out.append(f"model.name={model}")
    if spec:
        out.append(f"data.spec={spec}")
    return out


def _worker(recipe: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Runs in a fresh process: one training run, its summary as a dict."""
    import time

    from zoo.train.loop import Trainer
    from zoo.train.recipe import load_recipe

    start = time.perf_counter()
    summary = Trainer(load_recipe(recipe, overrides)).fit()
    return {**asdict(summary), "wall_seconds": round(time.perf_counter() - start, 3)}


def run_cell(base: dict[str, Any], overrides: list[str], timeout_s: float) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(base, f)
    cmd = [sys.executable, "-m", "zoo.bench.transfer", "--worker", f.name, *overrides]
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout_s, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
    finally:
        os.unlink(f.name)
    lines = [x for x in done.stdout.splitlines() if x.startswith("{")]
    if done.returncode or not lines:
        raise RuntimeError(f"transfer run failed ({' '.join(overrides)}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def aggregate(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation over seeds, per (model, strategy); mark the accuracy/time Pareto front."""
    cells: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in runs:
        cells.setdefault((r["model"], r["strategy"]), []).append(r)
    rows = []
    for (model, strategy), rs in cells.items():
        top1 = [r["final_top1"] for r in rs]
        rows.append(
            {
                "model": model,
                "strategy": strategy,
                "label": f"{strategy}",
                "top1_mean": statistics.fmean(top1),
                "top1_std": statistics.stdev(top1) if len(top1) > 1 else 0.0,
                "seeds": len(rs),
                "eval_split": rs[0]["eval_split"],
                "wall_seconds_mean": statistics.fmean(r["wall_seconds"] for r in rs),
                "train_seconds_mean": statistics.fmean(r["train_seconds"] for r in rs),
                "train_images_per_sec": statistics.fmean(r["images_per_sec"] for r in rs),
                "peak_mem_mb": max(r["peak_mem_mb"] for r in rs),
            }
        )
    for row in rows:  # on the front: no other row is both at least as accurate and faster
        row["pareto"] = not any(
            o is not row and o["top1_mean"] >= row["top1_mean"] and o["wall_seconds_mean"] < row["wall_seconds_mean"]
            for o in rows
        )
    return sorted(rows, key=lambda r: (r["model"], -r["top1_mean"]))


def run_transfer(cfg: TransferConfig, progress: bool = True) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """All cells, then the aggregated rows."""
    from tqdm.auto import tqdm

    from zoo.train.recipe import load_recipe

    base = yaml.safe_load(Path(cfg.recipe).read_text())
    base = {**base, "output": {**(base.get("output") or {}), "dir": cfg.out_dir}}
    load_recipe(base, list(cfg.overrides))  # fail on a bad recipe before the first run
    models = list(cfg.models) or [base["model"]["name"]]
    cells = [(m, s, seed) for m in models for s in cfg.strategies for seed in cfg.seeds]
    runs = []
    for m, s, seed in tqdm(cells, desc="transfer runs", disable=not progress):
        name = f"name={Path(cfg.recipe).stem}-{m.replace(':', '_').replace('/', '_')}-{s}-s{seed}"
        overrides = [*cfg.overrides, *run_overrides(base, m, s, seed, cfg.spec), name]
        runs.append(run_cell({**base, "variants": {}}, overrides, cfg.timeout_s))
    return runs, aggregate(runs)


if __name__ == "__main__" and len(sys.argv) > 2 and sys.argv[1] == "--worker":
    recipe = yaml.safe_load(Path(sys.argv[2]).read_text())
    print(json.dumps(_worker(recipe, sys.argv[3:])))
