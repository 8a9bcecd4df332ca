"""Images/s of the data fast path (uint8 TensorStore + on-device BatchTransform) vs the reference path
(``Dataset.with_transform`` + per-sample PIL transforms + DataLoader workers), same device, batch and
model input size, for two kinds of source:

- ``cifar32``: 32x32 PNGs in CIFAR-10's schema, upsampled to the model's 224;
- ``photo``: 500x375 JPEGs (crops of scikit-image's photos, generated), resized down to 224.

Protocol (both paths): the same ``--epochs`` (>= 3) over the same split, >= 10,000 images timed in all
per path and mode (3,400 images x 3 epochs by default).
The reference's DataLoader keeps its workers (``persistent_workers``) across epochs; the fast path decodes
the split into its store once. Two figures per path, never mixed:
- ``first_epoch_images_per_sec``: the first epoch from nothing, INCLUDING the one-time costs (the
  reference's worker start and decode; the fast path's store decode);
- ``steady_images_per_sec``: epochs 2..N (warm: workers up, store built, kernels and weights cached).

    python benchmarks/bench_data.py                      # CPU: cifar32 + photo, eval and train, a few minutes
    python benchmarks/bench_data.py --device cuda        # on a GPU machine
    python benchmarks/bench_data.py --quick              # smoke run (tiny; not a result to quote)

Writes benchmarks/results/data_<device>.csv (one row per source, mode and path).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "tests"))  # synthetic_data: the test fixtures
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from zoo.env import cpu_cores  # noqa: E402 - after the path is set

MIN_TIMED_IMAGES, MIN_EPOCHS = 10_000, 3


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _epochs(batches: Any, epochs: int, device: torch.device, step: Any) -> list[tuple[int, float]]:
    """(images, seconds) of each epoch; ``batches()`` gives a fresh iterator over one epoch."""
    out = []
    for _ in range(epochs):
        n, start = 0, time.perf_counter()
        for x, _y in batches():
            n += len(step(x.to(device, non_blocking=True)))
        _sync(device)
        out.append((n, time.perf_counter() - start))
    return out


def time_reference(split: Any, cfg: dict, train: bool, batch_size: int, workers: int, epochs: int,
                   device: torch.device) -> list[tuple[int, float]]:
    """What the Hugging Face examples do: with_transform + timm's per-sample PIL transforms in workers
    that persist across epochs (the first epoch pays their start)."""
    from zoo.data.transforms import batch_fn, build_transform, collate

    data = split.with_transform(batch_fn(build_transform(cfg, train=train)))
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=train, num_workers=workers,
                                         collate_fn=collate, persistent_workers=workers > 0)
    return _epochs(lambda: iter(loader), epochs, device, lambda x: x)


def time_fast(store: Any, cfg: dict, train: bool, batch_size: int, epochs: int,
              device: torch.device) -> list[tuple[int, float]]:
    from zoo.data.fast import BatchTransform

    bt = BatchTransform(cfg, train=train).to(device)
    return _epochs(lambda: store.loader(batch_size=batch_size, shuffle=train), epochs, device, bt)


def make_photos(root: Path, n: int, size: tuple[int, int] = (500, 375), classes: int = 10, seed: int = 0) -> Path:
    """``n`` photo-sized JPEGs (quality 90) in ``root/<class>/``: random crops of scikit-image's photos,
    resized and colour-shifted, so decoding costs what a real photo costs (noise would not compress)."""
    import numpy as np
    import skimage.data
    from PIL import Image

    rng = np.random.default_rng(seed)
    photos = [getattr(skimage.data, name)() for name in ("chelsea", "coffee", "astronaut", "rocket",
                                                         "immunohistochemistry", "hubble_deep_field")]
    for i in range(n):
        src = photos[i % len(photos)]
        h, w = src.shape[:2]
        ch, cw = int(h * rng.uniform(0.6, 1.0)), int(w * rng.uniform(0.6, 1.0))
        top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crop = src[top:top + ch, left:left + cw].astype(np.float32) * rng.uniform(0.8, 1.2, size=3)
        img = Image.fromarray(crop.clip(0, 255).astype(np.uint8)).resize(size, Image.BICUBIC)
        folder = root / f"class_{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        img.save(folder / f"{i:05d}.jpg", quality=90)
    return root


def _summary(epochs: list[tuple[int, float]]) -> dict[str, Any]:
    first_n, first_s = epochs[0]
    rest = epochs[1:]
    return {"first_epoch_images_per_sec": round(first_n / first_s, 1),
            "steady_images_per_sec": round(sum(n for n, _ in rest) / sum(s for _, s in rest), 1),
            "epoch_seconds": [round(s, 3) for _, s in epochs], "timed_images": sum(n for n, _ in epochs)}


def bench_source(source: str, split: Any, cfg: dict, args: argparse.Namespace, device: torch.device,
                 common: dict[str, Any]) -> list[dict[str, Any]]:
    from zoo.data.fast import TensorStore, store_size

    t0 = time.perf_counter()
    size = store_size(cfg) if source == "photo" else None  # as zoo's loaders: photos pre-resized once
    store = TensorStore.from_split(split, size=size, progress=False)
    decode_s = time.perf_counter() - t0
    print(f"{source}: {len(split)} images, store {tuple(store.images.shape[1:])}, decoded once in {decode_s:.1f} s")
    rows = []
    for mode in args.modes.split(","):
        train = mode == "train"
        base = {"source": source, "mode": mode, "num_images": len(split), **common}
        ref = _summary(time_reference(split, cfg, train, args.batch_size, args.workers, args.epochs, device))
        ref_row = {"path": "reference", "num_workers": args.workers, **base, **ref}
        try:
            fast_epochs = time_fast(store, cfg, train, args.batch_size, args.epochs, device)
        except Exception as exc:  # noqa: BLE001 - recorded in the row, the other rows still count
            rows += [ref_row, {"path": "fast", **base, "error": f"{type(exc).__name__}: {exc}"}]
            print(f"{source:6s} {mode:5s}  fast path FAILED: {type(exc).__name__}: {exc}")
            continue
        fast = _summary(fast_epochs)
        # the fast path's first epoch also pays the store's one-time decode
        n0, s0 = fast_epochs[0]
        fast["first_epoch_images_per_sec"] = round(n0 / (s0 + decode_s), 1)
        steady = fast["steady_images_per_sec"] / ref["steady_images_per_sec"]
        first = fast["first_epoch_images_per_sec"] / ref["first_epoch_images_per_sec"]
        rows += [ref_row, {"path": "fast", "num_workers": 0, "store_decode_s": round(decode_s, 2), **base, **fast,
                           "steady_ratio_vs_reference": round(steady, 2),
                           "first_epoch_ratio_vs_reference": round(first, 2)}]
        print(f"{source:6s} {mode:5s}  steady: reference {ref['steady_images_per_sec']:7.0f}  fast "
              f"{fast['steady_images_per_sec']:7.0f} img/s  {steady:5.2f}x   first epoch with decode: "
              f"{ref['first_epoch_images_per_sec']:6.0f} vs {fast['first_epoch_images_per_sec']:6.0f} img/s  "
              f"{first:5.2f}x")
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--sources", default="cifar32,photo", help="comma list of cifar32,photo")
    p.add_argument("--cifar-images", type=int, default=3_400,
                   help="32x32 images (default 3400: x 3 epochs = 10,200 timed images)")
    p.add_argument("--photo-images", type=int, default=3_400,
                   help="500x375 JPEGs (default 3400: x 3 epochs = 10,200 timed images)")
    p.add_argument("--epochs", type=int, default=MIN_EPOCHS, help="epochs per path (>= 3; default 3)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--size", type=int, default=224, help="model input size (default 224)")
    p.add_argument("--modes", default="eval,train", help="comma list of eval,train (train = flip-crop)")
    p.add_argument("--workers", type=int, default=cpu_cores(), help="reference DataLoader workers")
    p.add_argument("--threads", type=int, default=cpu_cores(), help="torch threads")
    p.add_argument("--quick", action="store_true", help="tiny smoke run (256 images each, 2 epochs)")
    p.add_argument("--note", action="append", default=[], help="recorded in every row, e.g. 'machine shared'")
    p.add_argument("--out", default=None, help="CSV path (default benchmarks/results/data_<device>.csv)")
    args = p.parse_args(argv)
    if args.quick:
        args.cifar_images = args.photo_images = 256
        args.epochs, args.batch_size = 2, 64
    if args.epochs < 2:
        p.error("--epochs must be at least 2 (the first epoch is reported apart from the steady ones)")

    from zoo.backbones.base import make_data_config
    from zoo.bench.results import write_csv
    from zoo.env import device_name, load_average, slugify
    from zoo.data import load_dataset
    from synthetic_data import make_cifar_like

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    name = device_name(str(device))
    tag = slugify(name) if device.type == "cuda" else "cpu"
    cfg = make_data_config(args.size)  # ImageNet-style: bicubic, crop_pct 0.875 -> resize 256, crop 224
    common = {"batch_size": args.batch_size, "input_size": args.size, "epochs": args.epochs, "device": tag,
              "device_name": name, "torch_version": torch.__version__, "num_threads": args.threads,
              "load_average_at_start": load_average(), "note": "; ".join(args.note) or None,
              "protocol_met": not args.quick}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for source in args.sources.split(","):
            if source == "cifar32":
                path = make_cifar_like(Path(tmp) / "cifar", n_per_class=max(1, args.cifar_images // 10), fmt="disk")
            elif source == "photo":
                path = str(make_photos(Path(tmp) / "photos", args.photo_images))
            else:
                p.error(f"unknown source {source!r}: use cifar32 or photo")
            split = load_dataset(path, val_size=10, check_images=False, progress=False)["train"]
            src_px = "32x32" if source == "cifar32" else "500x375"
            if len(split) * args.epochs < MIN_TIMED_IMAGES and not args.quick:
                print(f"note: {len(split)} x {args.epochs} epochs < {MIN_TIMED_IMAGES} timed images: below the protocol")
                common = {**common, "protocol_met": False}
            rows += bench_source(source, split, cfg, args, device, {"source_size": src_px, **common})
    out = Path(args.out) if args.out else Path(__file__).parent / "results" / f"data_{tag}.csv"
    first = ["source", "mode", "path", "steady_images_per_sec", "first_epoch_images_per_sec",
             "steady_ratio_vs_reference", "first_epoch_ratio_vs_reference"]
    write_csv(rows, out, first + sorted({k for r in rows for k in r} - set(first)))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
