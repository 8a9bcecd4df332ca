"""CPU memory reuse (zoo.cpu_memory) and CPU evaluation batches (zoo.inference.CPU_EVAL_BATCH_SIZE).

Two measurements, each case in a fresh process, cases interleaved and the order reversed every repeat,
medians reported:

- ``train``: ``python -m zoo train recipes/imagefolder/fruits-finetune.yaml`` on a photo folder with pip's
  EfficientNet-Lite0 weights, as shipped (glibc's malloc tuned) against ``ZOO_CPU_MALLOC=default`` (glibc's
  own defaults). Train images/s is zoo's own figure (metrics.jsonl); wall seconds, the kernel (system) CPU
  seconds, minor page faults and peak RSS come from the process's rusage (``os.wait4``: the trainer and the
  loader workers it reaped).
- ``eval``: float32 inference of the same weights over the folder's held-out split, as ``zoo eval`` runs it
  (zoo.inference.evaluate, eval preprocessing), at batch 16 and 64, tuned and not: images/s of the
  evaluation alone (model and data loaded before the clock starts).

    python benchmarks/bench_cpu_memory.py --data /tmp/pjq/photos-v1-32-10-800 --repeats 3
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from zoo.env import cpu_cores, cpu_model, load_average  # noqa: E402

EVAL_SNIPPET = """
import json, sys, time, torch
from zoo.cpu_memory import keep_freed_memory
import zoo
from zoo.data import load_dataset
from zoo.inference import evaluate
mode, batch, data, model_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
line = keep_freed_memory() if mode == "tuned" else "glibc defaults"
torch.set_flush_denormal(True)
model = zoo.load(model_dir)
split = load_dataset("imagefolder:" + data)["validation"]
evaluate(model, split.select(range(batch)), batch_size=batch, progress=False)  # warm-up: one batch
start = time.perf_counter()
result = evaluate(model, split, batch_size=batch, progress=False)
print(json.dumps({"seconds": time.perf_counter() - start, "images": result["n"], "top1": result["top1"]}))
"""


def spawn(cmd: list[str], env: dict[str, str]) -> tuple[str, float, os.struct_rusage]:
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        out.seek(0)
        text = out.read()
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{text[-3000:]}")
    return text, wall, usage


def environment(tuned: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "ZOO_CPU_MALLOC"}
    env["HF_HUB_OFFLINE"] = "1"
    if not tuned:
        env["ZOO_CPU_MALLOC"] = "default"
    return env


def train_case(tuned: bool, a: argparse.Namespace, work: Path, rep: int) -> dict:
    out = work / f"train-{'tuned' if tuned else 'default'}-{rep}"
    cmd = [
        sys.executable,
        "-m",
        "zoo",
        "train",
        "recipes/imagefolder/fruits-finetune.yaml",
        f"data.spec=imagefolder:{a.data}",
        "model.name=pypi:efficientnet_lite0",
        f"train.epochs={a.epochs}",
        "schedule.warmup_epochs=1",
        f"data.batch_size={a.batch_size}",
        f"output.dir={out}",
        "resume=never",
    ]
    _, wall, usage = spawn(cmd, environment(tuned))
    final = json.loads((out / "fruits-finetune" / "metrics.jsonl").read_text().splitlines()[-1])
    return {
        "case": f"train {'tuned' if tuned else 'glibc defaults'}",
        "repeat": rep,
        "images_per_sec": final["images_per_sec"],
        "wall_seconds": round(wall, 2),
        "system_cpu_seconds": round(usage.ru_stime, 2),
        "minor_faults": usage.ru_minflt,
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "cpu_malloc": final["environment"].get("cpu_malloc", "not recorded"),
        "model_dir": str(out / "fruits-finetune" / "model"),
    }


def eval_case(tuned: bool, batch: int, a: argparse.Namespace, model_dir: str, rep: int) -> dict:
    mode = "tuned" if tuned else "default"
    text, wall, usage = spawn(
        [sys.executable, "-c", EVAL_SNIPPET, mode, str(batch), a.data, model_dir], environment(tuned)
    )
    r = json.loads(text.strip().splitlines()[-1])
    return {
        "case": f"eval batch {batch} {'tuned' if tuned else 'glibc defaults'}",
        "repeat": rep,
        "images_per_sec": round(r["images"] / r["seconds"], 2),
        "wall_seconds": round(wall, 2),
        "system_cpu_seconds": round(usage.ru_stime, 2),
        "minor_faults": usage.ru_minflt,
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "cpu_malloc": "tuned" if tuned else "glibc defaults",
        "model_dir": model_dir,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", required=True, help="a photo folder with train/ and val/ (tests/photo_corpus.py)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--work", default=None, help="scratch folder for the runs (default: a temporary one)")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/cpu_memory_cpu-2core.csv"))
    a = p.parse_args()
    work = Path(a.work or tempfile.mkdtemp(prefix="zoo-cpu-memory-"))
    rows: list[dict] = []
    for rep in range(a.repeats):
        for tuned in (True, False) if rep % 2 == 0 else (False, True):
            rows.append(train_case(tuned, a, work, rep))
            print(rows[-1], flush=True)
    model_dir = rows[0]["model_dir"]
    for rep in range(a.repeats):
        cases = [(t, b) for t in (True, False) for b in (16, 64)]
        for tuned, batch in cases if rep % 2 == 0 else cases[::-1]:
            rows.append(eval_case(tuned, batch, a, model_dir, rep))
            print(rows[-1], flush=True)
    write(rows, a, Path(a.out))


def write(rows: list[dict], a: argparse.Namespace, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fields = ["case", "repeat", "images_per_sec", "wall_seconds", "system_cpu_seconds", "minor_faults", "peak_rss_mb"]
    with open(out.with_name(out.stem + "_runs.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[*fields, "cpu_malloc"], extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    medians = []
    for case in dict.fromkeys(r["case"] for r in rows):
        mine = [r for r in rows if r["case"] == case]
        medians.append(
            {"case": case, "runs": len(mine)}
            | {k: round(statistics.median(float(r[k]) for r in mine), 2) for k in fields[2:]}
        )
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["case", "runs", *fields[2:]])
        w.writeheader()
        w.writerows(medians)
    command = "python benchmarks/bench_cpu_memory.py " + " ".join(sys.argv[1:])
    lines = [
        "# CPU memory reuse and CPU evaluation batches",
        "",
        f"- command: `{command}`",
        f"- data: {a.data}; train: fruits recipe, pip's EfficientNet-Lite0, {a.epochs} epochs, batch {a.batch_size}",
        f"- machine: {cpu_model()}, {cpu_cores()} cores; load average at the end {load_average()}",
        "- medians over interleaved repeats; each case a fresh process",
        "",
        "| case | runs | images/s | wall s | kernel CPU s | minor faults | peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {m['case']} | {m['runs']} | {m['images_per_sec']} | {m['wall_seconds']} | "
            f"{m['system_cpu_seconds']} | {int(m['minor_faults'])} | {m['peak_rss_mb']} |"
            for m in medians
        ),
    ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
