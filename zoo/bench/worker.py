"""One measured process per (model, run): the parent starts ``python -m zoo.bench.worker MODEL CONFIG_JSON``,
the child measures the model (``zoo.bench.measure.measure_model``) and prints one result line, which the
parent reads back. A fresh process per run means no run inherits another's allocator caches, compiled graphs
or thread pools. An internal entry point (no user types it), so it takes two positional arguments and needs
no argument parser.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from zoo.bench.measure import BenchConfig, measure_model

RESULT_PREFIX = "ZOO_BENCH_RESULT "
USAGE = "usage: python -m zoo.bench.worker MODEL CONFIG_JSON (internal: measure MODEL, print one result line)"


def child_env(cfg: BenchConfig) -> dict[str, str]:
    """The environment of every measured process, zoo's and timm's alike (same thread count)."""
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")  # pretrained=False never needs the Hub; do not wait on it
    if cfg.threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(cfg.threads)
    return env


def run_worker(name: str, cfg: BenchConfig) -> dict[str, Any]:
    """Measure one model in a fresh Python process and return its row (with ``error`` on failure)."""
    cmd = [sys.executable, "-m", "zoo.bench.worker", name, json.dumps(asdict(cfg))]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=cfg.timeout_s, env=child_env(cfg))
    except subprocess.TimeoutExpired:
        return {"model": name, "error": f"timed out after {cfg.timeout_s:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return {"model": name, "error": f"worker exited {proc.returncode}: " + " | ".join(tail)}


def main(argv: Sequence[str]) -> int:
    """Measure ``argv[0]`` with the BenchConfig JSON ``argv[1]``; any failure goes into the row."""
    if len(argv) not in (1, 2) or argv[0].startswith("-"):
        print(USAGE, file=sys.stderr)
        return 2
    name = argv[0]
    try:
        row = measure_model(name, BenchConfig.from_dict(json.loads(argv[1] if len(argv) > 1 else "{}")))
    except Exception as exc:  # noqa: BLE001 - the parent records the error in the model's row
        row = {"model": name, "error": f"{type(exc).__name__}: {exc}"}
    print(RESULT_PREFIX + json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
