"""The backbone table's runs: one fresh process per (tool, model, run), zoo and timm interleaved.

For each model: zoo, timm, zoo, timm, ... ``runs`` times each, every one a new process with the same
environment (thread count) and settings. A zoo run is ``python -m zoo.bench.worker MODEL CONFIG``
(the model built by ``zoo.create_model``, zoo's forward and a training step on it); a timm run is timm's
own ``benchmark.py --bench both`` (sha256-checked, unchanged). Each side's images/s is summarised as the
median with min and max over its runs; the ratio zoo / timm is taken per adjacent pair (the two runs closest
in time, so a burst of load on a shared machine hits both) and summarised the same way.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from zoo.bench.measure import BenchConfig
from zoo.bench.timm_anchor import check_comparable, reported_differences, require_timm_script, run_timm_once, timm_argv
from zoo.bench.worker import child_env, run_worker
from zoo.errors import ConfigError

PHASES = ("infer", "train")


def refuse_unlike(cfg: BenchConfig) -> None:
    """Settings that timm's script cannot measure the way zoo does: refused before anything runs."""
    if cfg.precision == "fp16" and cfg.train and cfg.device.startswith("cuda"):
        raise ConfigError(
            "refusing to compare fp16 training with timm's benchmark.py: zoo scales the loss "
            "(GradScaler), timm's script does not. Fix: --precision bf16 (or fp32), or --no-train."
        )
    if cfg.iters < 5:  # it logs every iters // 5 steps: fewer than 5 divides by zero
        raise ConfigError(
            f"timm's benchmark.py needs at least 5 timed steps; got --iters {cfg.iters}. "
            f"Fix: --iters 20 (the protocol's minimum), or 5 for a smoke run."
        )
    size = cfg.img_size or 224
    check_comparable(timm_argv("model", cfg.batch_size, size, cfg), cfg.batch_size, size, cfg)


def spread(values: Sequence[float]) -> dict[str, float]:
    """median, min and max, rounded for the table."""
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3), "max": round(max(values), 3)}


def summarize(
    zoo_runs: Sequence[dict[str, Any]], timm_runs: Sequence[dict[str, Any]], phases: Sequence[str]
) -> dict[str, Any]:
    """One table row from a model's runs: each side's median/min/max images/s and the paired ratios.

    A pair whose reported batch or input size differ is not compared (the row says why)."""
    row = dict(zoo_runs[0])
    row["runs"] = len(zoo_runs)
    for phase in phases:
        rates = [r[f"{phase}_samples_per_sec"] for r in zoo_runs]
        s = spread(rates)
        batch = row[f"{phase}_batch_size"]
        row |= {
            f"{phase}_samples_per_sec": s["median"],
            f"{phase}_samples_per_sec_min": s["min"],
            f"{phase}_samples_per_sec_max": s["max"],
            f"{phase}_runs_samples_per_sec": rates,
            f"{phase}_step_time": round(1000 * batch / s["median"], 3),
            f"{phase}_peak_mem_mb": max(r[f"{phase}_peak_mem_mb"] for r in zoo_runs),
        }
    if not timm_runs:
        return row
    diffs = sorted({d for z, t in zip(zoo_runs, timm_runs) for d in reported_differences(z, t, phases)})
    if diffs:
        row["error"] = "not compared with timm, settings differ: " + "; ".join(diffs)
        return row
    for phase in phases:
        theirs = [t[f"{phase}_samples_per_sec"] for t in timm_runs]
        pairs = [z[f"{phase}_samples_per_sec"] / t for z, t in zip(zoo_runs, theirs)]
        s, r = spread(theirs), spread(pairs)
        row |= {
            f"timm_{phase}_samples_per_sec": s["median"],
            f"timm_{phase}_samples_per_sec_min": s["min"],
            f"timm_{phase}_samples_per_sec_max": s["max"],
            f"timm_{phase}_runs_samples_per_sec": theirs,
            f"{phase}_vs_timm": r["median"],
            f"{phase}_vs_timm_min": r["min"],
            f"{phase}_vs_timm_max": r["max"],
        }
    row["timm_img_size"] = timm_runs[0].get("infer_img_size", timm_runs[0].get("train_img_size"))
    return row


def _bar(total: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="benchmark", unit="run", disable=not enabled, file=sys.stderr)


def benchmark_backbones(
    models: Sequence[str],
    config: BenchConfig | None = None,
    timm_compare: bool = False,
    timm_script: str | Path | None = None,
    progress: bool = True,
    on_row: Callable[[list[dict[str, Any]]], object] | None = None,  # what it returns is ignored
) -> list[dict[str, Any]]:
    """One row per model (see ``COLUMNS``). With ``timm_compare``, timm's script runs after each of
    zoo's runs on the model's timm architecture; rows record the script's sha256. ``on_row(rows so far)``
    is called after each model, so a long run that is stopped keeps its finished rows."""
    cfg = (config or BenchConfig()).validate()
    if not models:
        raise ConfigError("no models given. Fix: zoo bench backbones timm:resnet18 tv:resnet18 ...")
    script, digest = (None, None)
    if timm_compare:
        refuse_unlike(cfg)
        script, digest = require_timm_script(timm_script)
    phases = PHASES if cfg.train else PHASES[:1]
    env = child_env(cfg)
    rows = []
    bar = _bar(len(models) * cfg.runs * (2 if timm_compare else 1), progress)
    for name in models:
        zoo_runs: list[dict[str, Any]] = []
        timm_runs: list[dict[str, Any]] = []
        error = None
        for _ in range(cfg.runs):
            bar.set_postfix_str(f"zoo {name}")
            z = run_worker(name, cfg)
            bar.update()
            if z.get("error"):
                error = z
                break
            zoo_runs.append(z)
            if script is None or digest is None or not z.get("timm_model"):  # both are set by timm_compare
                continue
            argv = timm_argv(
                z["timm_model"],
                z["infer_batch_size"],
                z["infer_img_size"],
                cfg,
                bench="both" if cfg.train else "inference",
            )
            check_comparable(argv, z["infer_batch_size"], z["infer_img_size"], cfg)
            bar.set_postfix_str(f"timm {z['timm_model']}")
            t = run_timm_once(script, digest, argv, env, cfg.timeout_s)
            bar.update()
            if t.get("error") or any(f"{p}_samples_per_sec" not in t for p in phases):
                error = {**z, "error": f"timm: {t.get('error', f'no result in {t}')}"}
                break
            timm_runs.append(t)
        if error is not None:
            rows.append({**(zoo_runs[0] if zoo_runs else {}), **error})
        else:
            row = summarize(zoo_runs, timm_runs, phases)
            if timm_runs:
                row["timm_script_sha256"] = digest
            rows.append(row)
        if on_row is not None:
            on_row(rows)
    bar.close()
    return rows
