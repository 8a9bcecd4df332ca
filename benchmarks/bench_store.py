"""Store build at photo scale: decoding N photo-sized JPEGs into the fast path's tensor store with one
process against all cores, and the peak memory of each.

    python benchmarks/bench_store.py                       # 20,000 JPEGs of 500x375, store side 256
    python benchmarks/bench_store.py --images 2000 --runs 1 --out /tmp/store.csv   # a quick look

The JPEGs (real content: crops of scikit-image's sample photos with a colour cast, landscape and
portrait) are generated once into ``--photos`` and reused. Each measurement runs in a fresh process
(``--worker``) that builds ``TensorStore.from_split(split, size=S, cache_dir=..., num_proc=k)`` on a
datasets split of the JPEG paths, as ``zoo.load_dataset`` gives it for an image folder, and deletes the
store afterwards. Peak memory: the kernel's high-water mark of the main process (VmHWM) and of its
largest worker (RUSAGE_CHILDREN), plus the peak proportional set size (PSS: shared pages split between
the processes that map them) summed over the process tree, sampled every 50 ms by this script. Results:
``benchmarks/results/store_build_cpu-2core.csv``.
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing as mp
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SOURCES = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "stereo_motorcycle",
)


def _make_one(args: tuple[int, str, int, int]) -> None:
    i, folder, w, h = args
    import skimage.data
    from PIL import Image

    rng = np.random.default_rng(i)
    name = SOURCES[i % len(SOURCES)]
    src = getattr(skimage.data, name)()
    src = src[0] if isinstance(src, tuple) else src
    sh, sw = src.shape[:2]
    ch, cw = int(sh * rng.uniform(0.4, 1.0)), int(sw * rng.uniform(0.4, 1.0))
    top, left = rng.integers(0, sh - ch + 1), rng.integers(0, sw - cw + 1)
    crop = src[top : top + ch, left : left + cw, :3].astype(np.float32) * rng.uniform(0.7, 1.1, 3)
    size = (w, h) if i % 4 else (h, w)  # a quarter portrait
    img = Image.fromarray(np.clip(crop, 0, 255).astype(np.uint8)).resize(size, Image.BILINEAR)
    img.save(Path(folder) / name / f"{i:06d}.jpg", quality=90)


def make_photos(folder: Path, n: int, w: int, h: int) -> list[Path]:
    """n JPEGs in class folders (one per source photo), generated once with every core."""
    done = folder / f"done-{n}-{w}x{h}"
    if not done.is_file():
        shutil.rmtree(folder, ignore_errors=True)
        for name in SOURCES:
            (folder / name).mkdir(parents=True)
        from zoo.env import cpu_cores

        with mp.get_context("fork").Pool(cpu_cores()) as pool:
            pool.map(_make_one, [(i, str(folder), w, h) for i in range(n)], chunksize=64)
        done.write_text("ok\n")
    return sorted(folder.glob("*/*.jpg"))


def _split(paths: list[Path]):
    import datasets

    names = sorted({p.parent.name for p in paths})
    features = datasets.Features({"image": datasets.Image(mode="RGB"), "label": datasets.ClassLabel(names=names)})
    return datasets.Dataset.from_dict(
        {"image": [str(p) for p in paths], "label": [names.index(p.parent.name) for p in paths]}, features=features
    )


def worker(args: argparse.Namespace) -> None:
    """One measurement in this fresh process; prints one JSON line."""
    from zoo.data.fast import TensorStore
    from zoo.env import hwm_bytes

    paths = sorted(Path(args.photos).glob("*/*.jpg"))[: args.images]
    split = _split(paths)
    cache = Path(tempfile.mkdtemp(prefix="zoo-bench-store-", dir=args.tmp))
    try:
        t0 = time.perf_counter()
        store = TensorStore.from_split(
            split, size=args.store_size, cache_dir=cache, progress=False, num_proc=args.num_proc
        )
        seconds = time.perf_counter() - t0
        checksum = sum(int(store.image(i).sum()) for i in range(0, len(store), max(1, len(store) // 64)))  # readable
        store_mb = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file()) / 2**20
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    hwm = hwm_bytes() / 2**20
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "seconds": seconds,
                "images": len(store),
                "store_mb": store_mb,
                "checksum": checksum,
                "peak_rss_main_mb": hwm,
                "peak_rss_worker_mb": children,
            }
        )
    )


def _tree_pss(pid: int) -> float:
    """Proportional set size summed over a process and its children: forked workers share the parent's
    pages, which summed RSS would count once per process."""
    import psutil

    try:
        p = psutil.Process(pid)
        procs = [p, *p.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0
    for q in procs:
        try:
            total += q.memory_full_info().pss
        except (psutil.Error, AttributeError):
            pass
    return total / 2**20


def measure(args: argparse.Namespace, num_proc: int) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        "--photos",
        str(args.photos),
        "--images",
        str(args.images),
        "--store-size",
        str(args.store_size),
        "--num-proc",
        str(num_proc),
        "--tmp",
        str(args.tmp),
    ]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, text=True)
    peak = [0.0]

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_pss(proc.pid))
            time.sleep(0.05)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    out, _ = proc.communicate()
    t.join()
    if proc.returncode:
        raise SystemExit(f"worker failed ({proc.returncode}): {' '.join(cmd)}")
    row = json.loads(out.strip().splitlines()[-1])
    row["peak_pss_tree_mb"] = peak[0]
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=20000)
    p.add_argument("--photo-size", default="500x375", help="W x H of the generated JPEGs")
    p.add_argument("--store-size", type=int, default=256, help="store side (a 224-px model with crop_pct 0.875)")
    p.add_argument("--procs", default="1,all", help="process counts to compare ('all' = every core)")
    p.add_argument("--runs", type=int, default=2, help="timed runs per process count (median reported)")
    p.add_argument("--photos", type=Path, default=Path(tempfile.gettempdir()) / "zoo-bench-store-photos")
    p.add_argument("--tmp", type=Path, default=Path(tempfile.gettempdir()), help="where the stores are built")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "store_build_cpu-2core.csv")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--num-proc", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)

    import PIL
    import torch

    from zoo.env import cpu_cores, cpu_model

    w, h = (int(v) for v in args.photo_size.lower().split("x"))
    t0 = time.perf_counter()
    paths = make_photos(args.photos, args.images, w, h)
    print(f"{len(paths)} JPEGs in {args.photos} ({time.perf_counter() - t0:.0f} s)", flush=True)
    cores = cpu_cores()
    counts = [cores if c == "all" else int(c) for c in args.procs.split(",")]
    rows = []
    for k in counts:
        runs = []
        for r in range(args.runs):
            load = os.getloadavg()[0]
            m = measure(args, k)
            m["loadavg_before"] = load
            runs.append(m)
            print(
                f"num_proc={k} run {r + 1}: {m['images'] / m['seconds']:.0f} images/s, {m['seconds']:.1f} s, "
                f"peak PSS tree {m['peak_pss_tree_mb']:.0f} MiB (load before {load:.1f})",
                flush=True,
            )
        med = sorted(runs, key=lambda m: m["seconds"])[len(runs) // 2]
        rows.append(
            {
                "images": med["images"],
                "photo_size": f"{w}x{h}",
                "store_size": args.store_size,
                "num_proc": k,
                "seconds": round(med["seconds"], 2),
                "images_per_sec": round(med["images"] / med["seconds"], 1),
                "speedup_vs_1proc": None,
                "peak_pss_tree_mb": round(med["peak_pss_tree_mb"], 1),
                "peak_rss_main_mb": round(med["peak_rss_main_mb"], 1),
                "peak_rss_worker_mb": round(med["peak_rss_worker_mb"], 1),
                "store_mb": round(med["store_mb"], 1),
                "run_seconds": " ".join(f"{m['seconds']:.2f}" for m in runs),
                "loadavg_before": " ".join(f"{m['loadavg_before']:.1f}" for m in runs),
                "cores": cores,
                "cpu": cpu_model(),
                "torch": torch.__version__,
                "pillow": PIL.__version__,
                "date": time.strftime("%Y-%m-%d"),
            }
        )
    base = next((r["images_per_sec"] for r in rows if r["num_proc"] == 1), None)
    for r in rows:
        r["speedup_vs_1proc"] = round(r["images_per_sec"] / base, 2) if base else None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {args.out}")
    for r in rows:
        print(
            f"  num_proc={r['num_proc']}: {r['images_per_sec']} images/s ({r['speedup_vs_1proc']}x), "
            f"peak RSS main {r['peak_rss_main_mb']} MiB, worker {r['peak_rss_worker_mb']} MiB, "
            f"tree PSS {r['peak_pss_tree_mb']} MiB; store {r['store_mb']} MiB"
        )


if __name__ == "__main__":
    main()
