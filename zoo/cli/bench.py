"""`zoo bench ...`: benchmark commands. `zoo bench backbones` lives here; other benchmarks add their
sub-command from their own module, listed in BENCH_MODULES (each has ``add_bench_parser(bench_sub)``)."""
from __future__ import annotations

import argparse
import shlex
import sys
from importlib import import_module
from pathlib import Path

from zoo.cli.output import print_table


# Modules that add a `zoo bench NAME` sub-command through add_bench_parser(subparsers).
BENCH_MODULES: list[str] = ["zoo.cli.bench_transfer"]

BACKBONES_EPILOG = """\
examples:
  zoo bench backbones timm:resnet18 timm:efficientnet_b0 tv:resnet18 --device cpu --timm-compare
  zoo bench backbones timm:resnet50 timm:vit_base_patch16_224 --device cuda --precision bf16 \\
      --channels-last --compile --batch-size 256 --warmup 10 --iters 50

columns (timm's names where timm has one):
  param_count             parameters, millions
  infer_gmacs             multiply-accumulates of one image at infer_img_size, x 1e9 (FLOPs / 2)
  infer_samples_per_sec   images/s of the median timed run, eval mode under no_grad
  infer_step_time         ms per batch of that run
  train_samples_per_sec   images/s with forward, backward and an SGD step
  *_batch_size            the batch used (halved from --batch-size after an out-of-memory)
  *_peak_mem_mb           CUDA: torch.cuda.max_memory_allocated; CPU: peak RSS minus RSS before the phase
  infer_vs_timm           ours / timm benchmark.py's images/s (--timm-compare; timm: and pypi: models)

CPU figures are for ratios between rows; quote absolute figures from a GPU run only.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmark backbones, and transfer strategies on a dataset",
                       description="Benchmarks measured side by side in one run. Run 'zoo bench NAME --help'.")
    bench_sub = p.add_subparsers(title="benchmarks", metavar="NAME")
    add_backbones_parser(bench_sub)
    for name in BENCH_MODULES:
        import_module(name).add_bench_parser(bench_sub)
    p.set_defaults(func=lambda args: p.error(f"choose a benchmark: {', '.join(bench_sub.choices)}"))


def add_backbones_parser(bench_sub: argparse._SubParsersAction) -> None:
    from zoo.bench.backbones import PRECISIONS, BenchConfig

    d = BenchConfig()
    q = bench_sub.add_parser(
        "backbones", help="params, GMACs, images/s, step time and peak memory per backbone",
        description="Measure each model in its own process: warm-up steps, then --runs timed runs of\n"
                    "--iters steps, the median reported. Models are built with random weights (throughput\n"
                    "does not depend on them). Writes a CSV, a Markdown table and a PNG plot.",
        epilog=BACKBONES_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("models", nargs="+", metavar="MODEL", help="model names, e.g. timm:resnet18 tv:resnet18")
    q.add_argument("--device", default=d.device, help="cpu or cuda[:N] (default: %(default)s)")
    q.add_argument("--batch-size", "-b", type=int, default=d.batch_size, help="batch size (default: %(default)s)")
    q.add_argument("--precision", choices=PRECISIONS, default=d.precision,
                   help="fp32, or bf16/fp16 autocast (default: %(default)s)")
    q.add_argument("--channels-last", action="store_true", help="channels_last memory format")
    q.add_argument("--compile", action="store_true", help="torch.compile the model (compile time is in warm-up)")
    q.add_argument("--img-size", type=int, default=None, help="square input size (default: each model's own)")
    q.add_argument("--warmup", type=int, default=d.warmup, help="untimed steps first (default: %(default)s)")
    q.add_argument("--iters", type=int, default=d.iters, help="steps per timed run (default: %(default)s)")
    q.add_argument("--runs", type=int, default=d.runs, help="timed runs; the median is kept (default: %(default)s)")
    q.add_argument("--no-train", action="store_true", help="inference only")
    q.add_argument("--timeout", type=float, default=d.timeout_s, help="seconds per model (default: %(default)s)")
    q.add_argument("--out", type=Path, default=None,
                   help="CSV path; .md and .png are written beside it "
                        "(default: benchmarks/results/backbones_<device>_<precision>.csv)")
    q.add_argument("--timm-compare", action="store_true",
                   help="also run timm's own benchmark.py on the same timm models and add infer_vs_timm")
    q.add_argument("--timm-script", type=Path, default=None,
                   help="path of timm's benchmark.py (default: benchmarks/third_party/timm_benchmark.py)")
    q.add_argument("--no-plot", action="store_true", help="skip the PNG plot")
    q.set_defaults(func=run_backbones)


def run_backbones(args: argparse.Namespace) -> int:
    from zoo.bench.backbones import BenchConfig, benchmark_backbones, default_output, write_backbone_results

    cfg = BenchConfig(device=args.device, batch_size=args.batch_size, precision=args.precision,
                      channels_last=args.channels_last, compile=args.compile, img_size=args.img_size,
                      warmup=args.warmup, iters=args.iters, runs=args.runs, train=not args.no_train,
                      timeout_s=args.timeout).validate()
    rows = benchmark_backbones(args.models, cfg, timm_compare=args.timm_compare, timm_script=args.timm_script)
    out = args.out or default_output(cfg)
    paths = write_backbone_results(rows, out, cfg, plot=not args.no_plot, command=_command(args, out))

    # The terminal gets the headline columns (short headers, so model names fit); the CSV has them all.
    shown = {"model": "model", "param_count": "params (M)", "infer_gmacs": "GMACs",
             "infer_samples_per_sec": "infer img/s", "infer_peak_mem_mb": "infer MiB",
             "train_samples_per_sec": "train img/s", "train_peak_mem_mb": "train MiB"}
    if args.timm_compare:
        shown |= {"timm_infer_samples_per_sec": "timm img/s", "infer_vs_timm": "ours / timm"}
    from zoo.bench.report import format_value

    def cell(row: dict, col: str) -> str:
        value = row.get(col)
        if col.endswith("_mem_mb") and isinstance(value, (int, float)):
            return f"{value:,.0f}"
        if col == "model" and row.get("infer_batch_size") not in (None, cfg.batch_size):
            return f"{value} (batch {row['infer_batch_size']})"
        return format_value(value)

    print_table(list(shown.values()), [[cell(r, c) for c in shown] for r in rows],
                title=f"backbones on {cfg.device}, {cfg.precision}, batch {cfg.batch_size} "
                      f"(the CSV has every column)")
    for r in rows:
        if r.get("error"):
            print(f"  {r['model']}: {r['error']}", file=sys.stderr)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 1 if any(r.get("error") for r in rows) else 0


def _command(args: argparse.Namespace, out: Path) -> str:
    """The command that reproduces this run, whichever way it was started (CLI, script, main([...]))."""
    parts = ["zoo", "bench", "backbones", *args.models, "--device", args.device, "--batch-size",
             str(args.batch_size), "--precision", args.precision, "--warmup", str(args.warmup),
             "--iters", str(args.iters), "--runs", str(args.runs)]
    parts += ["--channels-last"] * args.channels_last + ["--compile"] * args.compile
    parts += ["--img-size", str(args.img_size)] if args.img_size else []
    parts += ["--no-train"] * args.no_train + ["--timm-compare"] * args.timm_compare
    return " ".join(shlex.quote(p) for p in [*parts, "--out", str(out)])
