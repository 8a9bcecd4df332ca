"""The shipped fruits recipe, as shipped (``train.mixed_precision: auto``), against fp32 on this CPU.

Each case is ``python -m zoo train recipes/imagefolder/fruits-finetune.yaml`` on a photo folder
(tests/photo_corpus.py) with pip's EfficientNet-Lite0 weights, a few steps (``data.limit`` images, 2 epochs:
the recipe warms up for one), one fresh process per run, cases interleaved, the order reversed every repeat.
Train images/s is zoo's own figure (images trained / train-phase seconds, from metrics.jsonl).

Two CPUs are measured on the one machine: the machine as it is, and a laptop-class AVX2 CPU emulated by
capping torch's kernels (``ATEN_CPU_CAPABILITY=avx2``) and oneDNN's (``ONEDNN_MAX_CPU_ISA=AVX2``), which is
what a CPU without AVX512-BF16/AMX runs. On the AVX2 CPU ``auto`` must resolve to fp32 and an explicit bf16
shows the cost of emulated bf16 (``--cases avx2-bf16``; slow, not in the default set).

    python benchmarks/bench_precision.py --data runs/photo_job/photos-v1-16-4-800
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
CASES = {  # name -> (environment, precision override or None for the recipe as shipped)
    "native-auto": ({}, None),
    "native-fp32": ({}, "no"),
    "avx2-auto": (AVX2, None),
    "avx2-fp32": (AVX2, "no"),
    # emulated bf16 is very slow (issue 17: 8x); not in the default cases so a run fits on a loaded machine
    "avx2-bf16": (AVX2, "bf16"),
}
DEFAULT_CASES = "native-auto,native-fp32,avx2-auto,avx2-fp32"


def run(case: str, data: str, limit: int, batch: int, work: Path, rep: int) -> dict:
    env_extra, precision = CASES[case]
    out = work / f"{case}-{rep}"
    cmd = [
        sys.executable,
        "-m",
        "zoo",
        "train",
        "recipes/imagefolder/fruits-finetune.yaml",
        f"data.spec=imagefolder:{data}",
        "model.name=pypi:efficientnet_lite0",
        f"data.limit={limit}",
        f"data.batch_size={batch}",
        "train.epochs=2",
        f"output.dir={out}",
        "resume=never",
    ]
    if precision:
        cmd.append(f"train.mixed_precision={precision}")
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **env_extra}, capture_output=True, text=True)
    wall = time.perf_counter() - start
    row = {
        "case": case,
        "repeat": rep,
        "wall_seconds": round(wall, 1),
        "command": " ".join([*(f"{k}={v}" for k, v in env_extra.items()), "zoo", *cmd[3:]]),
    }
    if proc.returncode != 0:
        return {**row, "error": proc.stderr.strip().splitlines()[-1][:200]}
    final = json.loads((out / "fruits-finetune" / "metrics.jsonl").read_text().splitlines()[-1])
    said = [line for line in proc.stdout.splitlines() if "] precision " in line]
    warned = [line for line in (proc.stdout + proc.stderr).splitlines() if "emulated" in line]
    return {
        **row,
        "precision": final["environment"]["mixed_precision"],
        "train_images_per_sec": round(final["images_per_sec"], 3),
        "start_line": said[0] if said else "",
        "warned": bool(warned),
        "error": "",
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="an image folder (train/ and val/ inside)")
    p.add_argument("--limit", type=int, default=64, help="training images per epoch")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--cases", default=DEFAULT_CASES, help=f"comma list of {', '.join(CASES)}")
    p.add_argument("--work", default="runs/precision")
    p.add_argument("--note", action="append", default=[])
    p.add_argument("--out", default="benchmarks/results/precision_fruits_cpu-2core.csv")
    a = p.parse_args()
    cases, rows, out = a.cases.split(","), [], ROOT / a.out
    for rep in range(a.repeats):
        for case in cases if rep % 2 == 0 else cases[::-1]:
            rows.append(run(case, a.data, a.limit, a.batch_size, Path(a.work).resolve(), rep))
            print(json.dumps(rows[-1]), flush=True)
            write(rows, cases, a, out)  # after every run: a cut-short run still counts


def write(rows: list[dict], cases: list[str], a: argparse.Namespace, out: Path) -> None:
    fields = [
        "case",
        "repeat",
        "precision",
        "train_images_per_sec",
        "wall_seconds",
        "warned",
        "start_line",
        "command",
        "error",
    ]
    with open(out.with_name(out.stem + "_runs.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    med = {
        c: statistics.median(r["train_images_per_sec"] for r in rows if r["case"] == c and not r["error"])
        for c in cases
        if any(r["case"] == c and not r["error"] for r in rows)
    }
    summary = []
    for c, v in med.items():
        base = med.get(c.split("-")[0] + "-fp32")
        first = next(r for r in rows if r["case"] == c and not r["error"])
        summary.append(
            {
                "case": c,
                "precision": first["precision"],
                "train_images_per_sec": round(v, 3),
                "vs_fp32": round(v / base, 3) if base else "",
                "warned": first["warned"],
                "start_line": first["start_line"],
            }
        )
    if not summary:
        return
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, list(summary[0]))
        w.writeheader()
        w.writerows(summary)
    md = [
        f"# fruits-finetune.yaml as shipped (precision auto) vs fp32, {a.limit} photos x 2 epochs per run,"
        f" batch {a.batch_size}",
        "",
        f"- command: `python benchmarks/bench_precision.py {' '.join(sys.argv[1:])}`",
        f"- {a.repeats} interleaved repeats, median; load average at the end "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}",
        *[f"- note: {n}" for n in a.note],
        "",
        "| case | precision | train img/s | vs fp32 | warned | start line |",
        "|---|---|---:|---:|---|---|",
    ]
    md += [
        f"| {s['case']} | {s['precision']} | {s['train_images_per_sec']} | {s['vs_fp32']} | {s['warned']} "
        f"| `{s['start_line']}` |"
        for s in summary
    ]
    out.with_suffix(".md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
