#!/usr/bin/env python3
"""The backbone table of issue 6: a thin wrapper over `zoo bench backbones`.

With no model names it runs the acceptance set (timm:resnet18 timm:efficientnet_b0 tv:resnet18) on the CPU
with timm's own benchmark.py interleaved (batch 8 at 128 px, one torch thread per process on both sides,
so a shared 2-core machine disturbs them less); any other options are passed through unchanged.

    python benchmarks/bench_backbones.py                           # CPU acceptance run, --timm-compare
    python benchmarks/bench_backbones.py --gpu                     # the six-model GPU table (bf16, cl, compile)
    python benchmarks/bench_backbones.py timm:resnet50 --device cuda --batch-size 256
"""

from __future__ import annotations

import sys

from zoo.cli import main

ACCEPTANCE = ["timm:resnet18", "timm:efficientnet_b0", "tv:resnet18"]
GPU_MODELS = [
    "timm:resnet18",
    "timm:resnet50",
    "timm:efficientnet_b0",
    "timm:convnext_tiny",
    "timm:vit_small_patch16_224",
    "timm:vit_base_patch16_224",
]
GPU_OPTIONS = [
    "--device",
    "cuda",
    "--precision",
    "bf16",
    "--channels-last",
    "--compile",
    "--img-size",
    "224",
    "--batch-size",
    "256",
    "--warmup",
    "10",
    "--iters",
    "50",
    "--runs",
    "5",
]
CPU_OPTIONS = ["--device", "cpu", "--batch-size", "8", "--img-size", "128", "--threads", "1"]


def build_argv(argv: list[str]) -> list[str]:
    """`zoo bench backbones ...` arguments for this script's own arguments."""
    if "--gpu" in argv:
        rest = [a for a in argv if a != "--gpu"]
        return ["bench", "backbones", *GPU_MODELS, *GPU_OPTIONS, *rest]
    if not argv or argv[0].startswith("-"):
        extra = [] if "--timm-compare" in argv else ["--timm-compare"]
        return ["bench", "backbones", *ACCEPTANCE, *CPU_OPTIONS, *extra, *argv]
    return ["bench", "backbones", *argv]


if __name__ == "__main__":
    sys.exit(main(build_argv(sys.argv[1:])))
