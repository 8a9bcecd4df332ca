"""zoo vs the loops people write today, side by side in one run, same model/data/batch/device.

    python benchmarks/bench_side_by_side.py                 # offline: EfficientNet-Lite0 (real weights) on digits

Prints and writes (benchmarks/results/side_by_side_<device>.csv/.md):
- linear probe: zoo (features cached once) vs the tutorials' loop (frozen backbone run every epoch),
  10 epochs each, end to end (target >= 5x), and the time each takes to first reach the same validation
  accuracy;
- fine-tune: zoo's fast path vs the Hugging Face example path (with_transform + plain Accelerate loop):
  training images/s and time per epoch (target >= 1x on CPU, >= 1.5x on a GPU).
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from zoo.bench.backbones import device_name, device_slug
from zoo.bench.report import run_metadata, write_csv, write_markdown
from zoo.bench.side_by_side import SideBySideConfig, run_side_by_side


def main() -> None:
    d = SideBySideConfig()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in dataclasses.fields(SideBySideConfig):
        p.add_argument(f"--{f.name.replace('_', '-')}", type=type(getattr(d, f.name)), default=getattr(d, f.name))
    p.add_argument("--out", type=Path, default=None, help="CSV path (default: benchmarks/results/side_by_side_<device>.csv)")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    cfg = SideBySideConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(SideBySideConfig)})
    result = run_side_by_side(cfg)
    out = args.out or Path("benchmarks/results") / f"side_by_side_{device_slug('cpu')}.csv"
    rows = result["rows"]
    write_csv(rows, out)
    acc = result["probe_accuracy"]
    ratios = [
        f"linear probe, {cfg.probe_epochs} epochs end to end: zoo {result['probe_wall_ratio']:.2f}x faster than the "
        f"tutorials' loop (target >= 5x), at validation top-1 {acc['zoo']:.4f} vs {acc['tutorial']:.4f}",
        f"linear probe, time to the same accuracy ({result['probe_target_accuracy']:.4f} validation top-1): zoo "
        f"{result['probe_speedup_to_same_accuracy']:.2f}x faster",
        f"fine-tune: zoo {result['finetune_images_per_sec_ratio']:.2f}x the training images/s of the HF "
        f"with_transform path (target >= 1x on CPU); training time per epoch {result['finetune_epoch_time_ratio']:.2f}x shorter",
        f"every contender is charged the same dataset load ({result['dataset_load_seconds']:.1f} s); accuracies on "
        f"the validation split",
    ]
    meta = run_metadata(device=device_name("cpu"), model=cfg.model, data=cfg.spec, image_size=cfg.image_size,
                        batch_size=cfg.batch_size, probe_epochs=cfg.probe_epochs, finetune_epochs=cfg.finetune_epochs)
    write_markdown(rows, out.with_suffix(".md"), title="zoo side by side with the tutorials' loop and the HF path",
                   meta=meta, notes=ratios + ["CPU figures are for ratios only."])
    print("\n".join(ratios))
    print(f"wrote {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
