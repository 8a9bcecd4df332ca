"""Images/s of the data fast path vs the reference path, train mode (RandomResizedCrop + flip), same batch,
model input size and number of DataLoader workers, for two kinds of source:

- ``cifar32``: 32x32 PNGs in CIFAR-10's schema, upsampled to the model's 224;
- ``photo``: 500x375 JPEGs, every fourth one 375x500 (crops of scikit-image's photos, generated).

Fast path, as zoo's loaders build it: the split decoded once into the store (each image at its own aspect
ratio, the shorter side bounded by the model's resize size, 256 for 224). Photos: one crop per image cut in
the DataLoader workers with torchvision's uint8 kernels, uint8 batches normalised in this process (crops.py).
32-px images (one size, every crop upsampled): the workers send the stored images with their drawn boxes, and
this process cuts, resizes and normalises each batch at once (batch_crops.py). ``fast_kind`` names which.
Reference: ``Dataset.with_transform`` + timm's per-sample PIL transforms in the workers, as the Hugging Face
examples do. On a CPU the process is set up as zoo's trainer sets up a CPU run (zoo.cpu_memory: glibc keeps
the memory a batch frees; ``--cpu-malloc default`` leaves glibc as it is); both paths run in this process and
its forked workers, so the setting applies to both (``cpu_malloc`` in the results). Both keep their workers
across epochs (``persistent_workers``). Evaluation is not timed: it is the same code on both paths (zoo
eval's PIL transform).

Protocol: the same ``--epochs`` (>= 3) over the same split, >= 10,000 images timed in all per path
(3,390 images x 3 epochs by default), the two paths' epochs interleaved (reference, fast, fast, reference,
...) so that a change in the machine's load falls on both; the load average is recorded at the start and
the end of each source. Two figures per path, never mixed:
- ``first_epoch_images_per_sec``: the first epoch from nothing, INCLUDING the one-time costs (the workers'
  start; the fast path's store decode);
- ``steady_images_per_sec``: epochs 2..N (warm: workers up, store built).

    python benchmarks/bench_data.py --note "..."        # CPU: cifar32 + photo, a few minutes
    python benchmarks/bench_data.py --device cuda        # on a GPU machine
    python benchmarks/bench_data.py --quick              # smoke run (tiny; not a result to quote)

Writes benchmarks/results/data_<device>.csv (one row per source and path).
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


def reference_loader(split: Any, cfg: dict, batch_size: int, workers: int) -> Any:
    """What the Hugging Face examples do: with_transform + timm's per-sample PIL transforms (train:
    RandomResizedCrop + flip) in workers that persist across epochs (the first epoch pays their start)."""
    from zoo.data.transforms import batch_fn, build_transform, collate

    data = split.with_transform(batch_fn(build_transform(cfg, train=True)))
    return torch.utils.data.DataLoader(
        data,
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        collate_fn=collate,
        persistent_workers=workers > 0,
    )


def fast_loader(store: Any, cfg: dict, batch_size: int, workers: int) -> Any:
    """zoo's fast path as build_loaders makes it: crops cut in persistent workers from the store."""
    from zoo.data.crops import train_loader

    return train_loader(store, cfg, batch_size, preset="flip-crop", num_workers=workers, shuffle=True)


def make_photos(root: Path, n: int, size: tuple[int, int] = (500, 375), classes: int = 10, seed: int = 0) -> Path:
    """``n`` photo-sized JPEGs (quality 90; every fourth one portrait) in ``root/<class>/``: random crops of
    scikit-image's photos, resized and colour-shifted, so decoding costs what a real photo costs
    (noise would not compress)."""
    import numpy as np
    import skimage.data
    from PIL import Image

    rng = np.random.default_rng(seed)
    photos = [
        getattr(skimage.data, name)()
        for name in ("chelsea", "coffee", "astronaut", "rocket", "immunohistochemistry", "hubble_deep_field")
    ]
    for i in range(n):
        src = photos[i % len(photos)]
        h, w = src.shape[:2]
        ch, cw = int(h * rng.uniform(0.6, 1.0)), int(w * rng.uniform(0.6, 1.0))
        top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crop = src[top : top + ch, left : left + cw].astype(np.float32) * rng.uniform(0.8, 1.2, size=3)
        shape = size if i % 4 else size[::-1]  # a quarter portrait: the store keeps each one's aspect ratio
        img = Image.fromarray(crop.clip(0, 255).astype(np.uint8)).resize(shape, Image.BICUBIC)
        folder = root / f"class_{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        img.save(folder / f"{i:05d}.jpg", quality=90)
    return root


def _summary(epochs: list[tuple[int, float]]) -> dict[str, Any]:
    first_n, first_s = epochs[0]
    rest = epochs[1:]
    return {
        "first_epoch_images_per_sec": round(first_n / first_s, 1),
        "steady_images_per_sec": round(sum(n for n, _ in rest) / sum(s for _, s in rest), 1),
        "epoch_seconds": [round(s, 3) for _, s in epochs],
        "timed_images": sum(n for n, _ in epochs),
    }


def bench_source(
    source: str, split: Any, cfg: dict, args: argparse.Namespace, device: torch.device, common: dict[str, Any]
) -> list[dict[str, Any]]:
    """Train mode, both paths with ``--workers`` workers, their epochs interleaved (reference, fast, fast,
    reference, ...) so that a change in the machine's load falls on both."""
    from zoo.data.crops import SampleCrop, TrainInput, crops_in_batches
    from zoo.data.fast import TensorStore, store_size
    from zoo.env import load_average

    t0 = time.perf_counter()
    store = TensorStore.from_split(split, size=store_size(cfg), progress=False)  # as zoo's loaders build it
    decode_s = time.perf_counter() - t0
    sizes = store.sizes
    print(
        f"{source}: {len(split)} images, stored {sizes.min(0).tolist()}..{sizes.max(0).tolist()} (h, w), "
        f"decoded once in {decode_s:.1f} s"
    )
    load_start = load_average()
    norm = TrainInput(cfg).to(device)
    sides = {
        "reference": (reference_loader(split, cfg, args.batch_size, args.workers), lambda x: x),
        "fast": (fast_loader(store, cfg, args.batch_size, args.workers), norm),
    }
    epochs: dict[str, list[tuple[int, float]]] = {k: [] for k in sides}
    for e in range(args.epochs):
        for side in ["reference", "fast"] if e % 2 == 0 else ["fast", "reference"]:
            loader, step = sides[side]
            epochs[side] += _epochs(lambda loader=loader: iter(loader), 1, device, step)
    base = {
        "source": source,
        "mode": "train",
        "num_images": len(split),
        "num_workers": args.workers,
        **common,
        "load_average_at_start": load_start,
        "load_average_at_end": load_average(),
        "stored_min_hw": "x".join(map(str, sizes.min(0).tolist())),
        "stored_max_hw": "x".join(map(str, sizes.max(0).tolist())),
    }
    ref, fast = _summary(epochs["reference"]), _summary(epochs["fast"])
    batched = crops_in_batches(store, SampleCrop(cfg, train=True))  # how crops.train_loader cuts this store
    n0, s0 = epochs["fast"][0]  # the fast path's first epoch also pays the store's one-time decode
    fast["first_epoch_images_per_sec"] = round(n0 / (s0 + decode_s), 1)
    steady = fast["steady_images_per_sec"] / ref["steady_images_per_sec"]
    first = fast["first_epoch_images_per_sec"] / ref["first_epoch_images_per_sec"]
    print(
        f"{source:7s} train  steady: reference {ref['steady_images_per_sec']:7.0f}  fast "
        f"{fast['steady_images_per_sec']:7.0f} img/s  {steady:5.2f}x   first epoch with decode: "
        f"{ref['first_epoch_images_per_sec']:6.0f} vs {fast['first_epoch_images_per_sec']:6.0f} img/s  "
        f"{first:5.2f}x   load {load_start} -> {base['load_average_at_end']}"
    )
    return [
        {"path": "reference", **base, **ref},
        {
            "path": "fast",
            "store_decode_s": round(decode_s, 2),
            "fast_kind": "batch on the device" if batched else "per sample in the workers",
            **base,
            **fast,
            "steady_ratio_vs_reference": round(steady, 2),
            "first_epoch_ratio_vs_reference": round(first, 2),
        },
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--sources", default="cifar32,photo", help="comma list of cifar32,photo")
    p.add_argument(
        "--cifar-images", type=int, default=3_400, help="32x32 images (default 3400: x 3 epochs = 10,200 timed images)"
    )
    p.add_argument(
        "--photo-images",
        type=int,
        default=3_400,
        help="500x375 (a quarter 375x500) JPEGs (default 3400: x 3 epochs = 10,200 timed images)",
    )
    p.add_argument("--epochs", type=int, default=MIN_EPOCHS, help="epochs per path (>= 3; default 3)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--size", type=int, default=224, help="model input size (default 224)")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers, both paths (default 2)")
    p.add_argument(
        "--threads",
        type=int,
        default=cpu_cores(),
        help="torch threads of the main process, which normalises the fast path's batches as the "
        "trainer does (default: all cores)",
    )
    p.add_argument(
        "--cpu-malloc",
        choices=("zoo", "default"),
        default="zoo",
        help="zoo: glibc set up as zoo's trainer sets it up on a CPU (default); default: left as it is",
    )
    p.add_argument("--quick", action="store_true", help="tiny smoke run (256 images each, 2 epochs)")
    p.add_argument("--note", action="append", default=[], help="recorded in every row, e.g. 'machine shared'")
    p.add_argument("--out", default=None, help="CSV path (default benchmarks/results/data_<device>.csv)")
    args = p.parse_args(argv)
    if args.quick:
        args.cifar_images = args.photo_images = 256
        args.epochs, args.batch_size = 2, 64
    if args.epochs < 2:
        p.error("--epochs must be at least 2 (the first epoch is reported apart from the steady ones)")

    from synthetic_data import make_cifar_like

    from zoo.backbones.base import make_data_config
    from zoo.bench.results import write_csv
    from zoo.data import load_dataset
    from zoo.env import device_name, slugify

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cpu_malloc = "default"
    if device.type == "cpu" and args.cpu_malloc == "zoo":
        from zoo.cpu_memory import keep_freed_memory

        cpu_malloc = keep_freed_memory()
    name = device_name(str(device))
    tag = slugify(name) if device.type == "cuda" else "cpu"
    cfg = make_data_config(args.size)  # ImageNet-style: bicubic, crop_pct 0.875 -> resize 256, crop 224
    common = {
        "batch_size": args.batch_size,
        "input_size": args.size,
        "epochs": args.epochs,
        "device": tag,
        "device_name": name,
        "torch_version": torch.__version__,
        "num_threads": args.threads,
        "cpu_malloc": cpu_malloc,
        "note": "; ".join(args.note) or None,
        "protocol_met": not args.quick,
    }
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
            src_px = "32x32" if source == "cifar32" else "500x375 and 375x500"
            if len(split) * args.epochs < MIN_TIMED_IMAGES and not args.quick:
                print(
                    f"note: {len(split)} x {args.epochs} epochs < {MIN_TIMED_IMAGES} timed images: below the protocol"
                )
                common = {**common, "protocol_met": False}
            rows += bench_source(source, split, cfg, args, device, {"source_size": src_px, **common})
    out = Path(args.out) if args.out else Path(__file__).parent / "results" / f"data_{tag}.csv"
    first = [
        "source",
        "mode",
        "path",
        "steady_images_per_sec",
        "first_epoch_images_per_sec",
        "steady_ratio_vs_reference",
        "first_epoch_ratio_vs_reference",
    ]
    write_csv(rows, out, first + sorted({k for r in rows for k in r} - set(first)))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
