"""Images/s of the data fast path (uint8 TensorStore + on-device BatchTransform) vs the reference path
(``Dataset.with_transform`` + per-sample PIL transforms + DataLoader workers), CIFAR-shaped 32x32 images
upsampled to the model's 224, same device, same batch size. Target on the 2-core CPU: fast >= 3x reference.

    python benchmarks/bench_data.py                  # CPU, eval + train (flip-crop), ~1-2 min
    python benchmarks/bench_data.py --device cuda    # on a GPU machine

Writes benchmarks/results/data_<device>.csv (one row per path and mode; medians of --repeats runs).
"""
from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_reference(split, cfg, train: bool, batch_size: int, workers: int, device: torch.device) -> float:
    from zoo.data.transforms import batch_fn, build_transform, collate

    data = split.with_transform(batch_fn(build_transform(cfg, train=train)))
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=train, num_workers=workers,
                                         collate_fn=collate, persistent_workers=False)
    n = 0
    start = time.perf_counter()
    for x, _ in loader:
        x = x.to(device, non_blocking=True)
        n += len(x)
    _sync(device)
    return n / (time.perf_counter() - start)


def time_fast(store, cfg, train: bool, batch_size: int, device: torch.device) -> float:
    from zoo.data.fast import BatchTransform

    bt = BatchTransform(cfg, train=train)
    n = 0
    start = time.perf_counter()
    for x, _ in store.loader(batch_size=batch_size, shuffle=train):
        out = bt(x.to(device, non_blocking=True))
        n += len(out)
    _sync(device)
    return n / (time.perf_counter() - start)


def device_tag(device: torch.device) -> tuple[str, str]:
    """(file-name tag, human name): the human name is the one the other benchmarks record."""
    from zoo.bench.backbones import device_name
    from zoo.bench.report import slugify

    name = device_name(str(device))
    if device.type == "cuda":
        return slugify(name), name
    return "cpu", name


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--num-images", type=int, default=1536, help="CIFAR-shaped images per run (default 1536)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--size", type=int, default=224, help="model input size (default 224)")
    p.add_argument("--modes", default="eval,train", help="comma list of eval,train (train = flip-crop)")
    p.add_argument("--repeats", type=int, default=3, help="runs per measurement; the median is kept")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="reference DataLoader workers")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads (fast path, CPU)")
    p.add_argument("--out", default=str(Path(__file__).parent / "results"), help="results folder")
    args = p.parse_args(argv)

    from zoo.backbones.base import make_data_config
    from zoo.data import load_dataset
    from zoo.data.fast import TensorStore
    from zoo.data.synthetic import make_cifar_like

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    tag, device_name = device_tag(device)
    cfg = make_data_config(args.size)  # ImageNet-style: bicubic, crop_pct 0.875 -> resize 256, crop 224
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = make_cifar_like(Path(tmp) / "cifar", n_per_class=max(1, args.num_images // 10), fmt="disk")
        split = load_dataset(path, progress=False)["train"]
        t0 = time.perf_counter()
        store = TensorStore.from_split(split, progress=False)
        decode_s = time.perf_counter() - t0
        print(f"{len(split)} images 32x32 -> {args.size}, batch {args.batch_size}, device {device_name}; "
              f"TensorStore decode once: {decode_s:.2f} s")
        for mode in args.modes.split(","):
            train = mode == "train"
            time_fast(store, cfg, train, args.batch_size, device)  # warm-up (weights, allocator, kernels)
            fast = statistics.median(time_fast(store, cfg, train, args.batch_size, device)
                                     for _ in range(args.repeats))
            ref = statistics.median(time_reference(split, cfg, train, args.batch_size, args.workers, device)
                                    for _ in range(args.repeats))
            ratio = fast / ref
            print(f"{mode:5s}  reference {ref:8.0f} img/s   fast {fast:8.0f} img/s   ratio {ratio:5.2f}x "
                  f"{'(>= 3x: ok)' if ratio >= 3 else '(target 3x NOT met)'}")
            common = {"mode": mode, "batch_size": args.batch_size, "num_images": len(split),
                      "input_size": args.size, "source_size": 32, "device": tag, "device_name": device_name,
                      "torch_version": torch.__version__, "num_threads": args.threads, "repeats": args.repeats}
            rows.append({"path": "reference", "images_per_sec": round(ref, 1), "ratio_vs_reference": 1.0,
                         "num_workers": args.workers, **common})
            rows.append({"path": "fast", "images_per_sec": round(fast, 1), "ratio_vs_reference": round(ratio, 2),
                         "num_workers": 0, "store_decode_s": round(decode_s, 3), **common})
    out = Path(args.out) / f"data_{tag}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    fields = sorted({k for r in rows for k in r}, key=lambda k: (k != "path", k != "mode", k))
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
