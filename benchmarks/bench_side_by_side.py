"""zoo vs the loops people write today, side by side in one run, same model/data/batch/device.

    python benchmarks/bench_side_by_side.py                 # offline: EfficientNet-Lite0 (real weights) on digits

Prints and writes benchmarks/results/side_by_side_<device>.csv (one row per run), .json (the headline
ratios) and .md:
- linear probe: zoo (features cached once) vs the tutorials' loop (frozen backbone run every epoch),
  10 epochs each: the speed ratio after 1, 3 and 10 epochs (target >= 5x), the time each takes to first
  reach the same validation accuracy, and the tutorial loop with BatchNorm in eval mode, with zoo's exact
  preprocessing, and with both, so each cause of the accuracy gap is measured alone;
- fine-tune: zoo's fast path vs the Hugging Face example path (with_transform + plain Accelerate loop):
  training images/s and time per epoch (target >= 1x on CPU, >= 1.5x on a GPU).
Every zoo run starts with its output folder (and so its store and feature caches) deleted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

from zoo.bench.results import write_csv, write_markdown
from zoo.bench.side_by_side import SideBySideConfig, run_side_by_side
from zoo.env import device_name, device_slug, load_average, run_metadata


def summary_of(result: dict, cfg: SideBySideConfig) -> dict:
    """The headline figures, rounded as the READMEs quote them (the CSV keeps every run's raw numbers)."""
    acc = {r["run"]: round(r["val_top1"], 3) for r in result["rows"]}
    return {
        "probe_epochs": cfg.probe_epochs,
        "probe_wall_ratio": round(result["probe_wall_ratio"], 2),
        **{f"probe_ratio_after_{k}_epochs": round(v, 2) for k, v in result["probe_ratio_after_epochs"].items()},
        "probe_speedup_to_same_accuracy": round(result["probe_speedup_to_same_accuracy"], 2),
        "probe_target_accuracy": round(result["probe_target_accuracy"], 3),
        "val_top1": acc,
        "wall_seconds": {r["run"]: round(r["wall_seconds"], 1) for r in result["rows"]},
        "train_images_per_sec": {r["run"]: round(r["train_images_per_sec"], 1) for r in result["rows"]},
        "finetune_images_per_sec_ratio": round(result["finetune_images_per_sec_ratio"], 2),
        "finetune_epoch_time_ratio": round(result["finetune_epoch_time_ratio"], 2),
        "dataset_load_seconds": round(result["dataset_load_seconds"], 1),
    }


def main(argv: list[str] | None = None) -> int:
    d = SideBySideConfig()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in dataclasses.fields(SideBySideConfig):
        value = getattr(d, f.name)
        if isinstance(value, bool):
            p.add_argument(f"--{f.name.replace('_', '-')}", action=argparse.BooleanOptionalAction, default=value)
        else:
            p.add_argument(f"--{f.name.replace('_', '-')}", type=type(value), default=value)
    p.add_argument(
        "--out", type=Path, default=None, help="CSV path (default: benchmarks/results/side_by_side_<device>.csv)"
    )
    p.add_argument("--note", action="append", default=[], help="a line for the notes, e.g. 'the machine was shared'")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    cfg = SideBySideConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(SideBySideConfig)})
    load_before = load_average()
    result = run_side_by_side(cfg)
    out = args.out or Path("benchmarks/results") / f"side_by_side_{device_slug('cpu')}.csv"
    rows = result["rows"]
    write_csv(rows, out)
    summary = summary_of(result, cfg)
    command = "python benchmarks/bench_side_by_side.py " + " ".join(sys.argv[1:] if argv is None else argv)
    meta = run_metadata(
        device=device_name("cpu"),
        model=cfg.model,
        data=cfg.spec,
        image_size=cfg.image_size,
        batch_size=cfg.batch_size,
        probe_epochs=cfg.probe_epochs,
        finetune_epochs=cfg.finetune_epochs,
        load_average_before=load_before,
        load_average_after=load_average(),
        command=f"`{command.strip()}`",
    )
    out.with_suffix(".json").write_text(json.dumps({**summary, "meta": meta, "notes": args.note}, indent=2) + "\n")
    ratios = [
        "linear probe, elapsed-time ratio tutorial / zoo after "
        + ", ".join(
            f"{k} epoch{'s' * (k > 1)}: {summary[f'probe_ratio_after_{k}_epochs']:.2f}x"
            for k in result["probe_ratio_after_epochs"]
        )
        + " (target >= 5x at 10 epochs)",
        f"linear probe, time to the same accuracy ({summary['probe_target_accuracy']:.3f} validation top-1): zoo "
        f"{summary['probe_speedup_to_same_accuracy']:.2f}x faster",
        "linear probe accuracy: "
        + "; ".join(f"{k} {v:.3f}" for k, v in summary["val_top1"].items() if "probe" in k or "tutorial" in k),
        f"fine-tune: zoo {summary['finetune_images_per_sec_ratio']:.2f}x the training images/s of the HF "
        f"with_transform path (target >= 1x on CPU); training time per epoch "
        f"{summary['finetune_epoch_time_ratio']:.2f}x shorter",
        f"every contender is charged the same dataset load ({summary['dataset_load_seconds']:.1f} s); accuracies on "
        f"the validation split; every zoo run starts with its caches deleted",
    ]
    write_markdown(
        rows,
        out.with_suffix(".md"),
        title="zoo side by side with the tutorials' loop and the HF path",
        meta=meta,
        notes=ratios + list(args.note) + ["CPU figures are for ratios only."],
    )
    print("\n".join(ratios))
    print(f"wrote {out}, {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
