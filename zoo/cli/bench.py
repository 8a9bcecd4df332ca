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
  zoo bench backbones timm:resnet18 timm:efficientnet_b0 tv:resnet18 --device cpu --timm-compare \\
      --batch-size 8 --img-size 160
  zoo bench backbones timm:resnet50 timm:vit_base_patch16_224 --device cuda --precision bf16 \\
      --channels-last --compile --batch-size 256 --iters 50 --timm-compare

protocol: one fresh process per (tool, model, run); with --timm-compare the runs alternate zoo, timm,
zoo, timm, ... and timm's own benchmark.py (sha256-checked, unchanged) gets the same model, batch,
--img-size, precision, memory format, compile, warm-up/timed steps and threads. A comparison whose
settings differ is refused. Defaults (10 warm-up, 20 timed steps, 5 runs) are the protocol's minimum.

columns (timm's names where timm has one):
  param_count             parameters, millions
  infer_gmacs             multiply-accumulates of one image at infer_img_size, x 1e9 (FLOPs / 2)
  infer_samples_per_sec   median images/s over the runs (_min, _max beside it), eval mode, no_grad
  infer_step_time         ms per batch at that rate
  train_samples_per_sec   images/s with forward, backward and an SGD step
  *_batch_size            the batch used (halved from --batch-size after an out-of-memory)
  *_peak_mem_mb           CUDA: torch.cuda.max_memory_allocated; CPU: peak RSS minus RSS before the phase
  infer_vs_timm           zoo / timm benchmark.py images/s, median [min, max] over adjacent run pairs
  train_vs_timm           the same for a training step (--timm-compare; timm: and pypi: models)

CPU figures are for ratios between rows; quote absolute figures from a GPU run only.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="benchmark backbones, and transfer strategies on a dataset",
        description="Benchmarks measured side by side in one run. Run 'zoo bench NAME --help'.",
    )
    bench_sub = p.add_subparsers(title="benchmarks", metavar="NAME")
    add_backbones_parser(bench_sub)
    for name in BENCH_MODULES:
        import_module(name).add_bench_parser(bench_sub)
    p.set_defaults(func=lambda args: p.error(f"choose a benchmark: {', '.join(bench_sub.choices)}"))


def add_backbones_parser(bench_sub: argparse._SubParsersAction) -> None:
    from zoo.bench.measure import PRECISIONS, BenchConfig

    d = BenchConfig()
    q = bench_sub.add_parser(
        "backbones",
        help="params, GMACs, images/s, step time and peak memory per backbone",
        description="Measure each model in --runs fresh processes (warm-up steps, then one timed run of\n"
        "--iters steps each); median, min and max reported. Models are built with random weights\n"
        "(throughput does not depend on them). Writes a CSV, a Markdown table and a PNG plot.",
        epilog=BACKBONES_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    q.add_argument("models", nargs="+", metavar="MODEL", help="model names, e.g. timm:resnet18 tv:resnet18")
    q.add_argument("--device", default=d.device, help="cpu or cuda[:N] (default: %(default)s)")
    q.add_argument("--batch-size", "-b", type=int, default=d.batch_size, help="batch size (default: %(default)s)")
    q.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=d.precision,
        help="fp32, or bf16/fp16 autocast (default: %(default)s)",
    )
    q.add_argument("--channels-last", action="store_true", help="channels_last memory format")
    q.add_argument("--compile", action="store_true", help="torch.compile the model (compile time is in warm-up)")
    q.add_argument("--img-size", type=int, default=None, help="square input size (default: each model's own)")
    q.add_argument("--warmup", type=int, default=d.warmup, help="untimed steps per process (default: %(default)s)")
    q.add_argument("--iters", type=int, default=d.iters, help="timed steps per process (default: %(default)s)")
    q.add_argument(
        "--runs",
        type=int,
        default=d.runs,
        help="fresh processes per model and tool; median, min, max kept (default: %(default)s)",
    )
    q.add_argument(
        "--threads", type=int, default=None, help="torch threads in every process, both tools (default: torch's own)"
    )
    q.add_argument("--no-train", action="store_true", help="inference only")
    q.add_argument("--timeout", type=float, default=d.timeout_s, help="seconds per model (default: %(default)s)")
    q.add_argument(
        "--out",
        type=Path,
        default=None,
        help="CSV path; .md and .png are written beside it "
        "(default: benchmarks/results/backbones_<device>_<precision>.csv)",
    )
    q.add_argument(
        "--timm-compare",
        action="store_true",
        help="interleave timm's own benchmark.py on the same timm models: infer/train_vs_timm",
    )
    q.add_argument(
        "--timm-script",
        type=Path,
        default=None,
        help="timm's benchmark.py (default: $ZOO_TIMM_BENCHMARK or "
        "../shared/third_party/timm_benchmark.py); refused unless its sha256 is the pinned one",
    )
    q.add_argument(
        "--timm-args",
        default="",
        help='extra options for timm\'s script as one string (--timm-args="--fuser te"); refused if '
        "they change a setting",
    )
    q.add_argument(
        "--note",
        action="append",
        default=[],
        help="a line for the results' notes (e.g. 'the machine was shared'); repeatable",
    )
    q.add_argument("--no-plot", action="store_true", help="skip the PNG plot")
    q.set_defaults(func=run_backbones)


def run_backbones(args: argparse.Namespace) -> int:
    from zoo.bench.measure import BenchConfig
    from zoo.bench.results import default_output, write_backbone_results
    from zoo.bench.runs import benchmark_backbones

    cfg = BenchConfig(
        device=args.device,
        batch_size=args.batch_size,
        precision=args.precision,
        channels_last=args.channels_last,
        compile=args.compile,
        img_size=args.img_size,
        warmup=args.warmup,
        iters=args.iters,
        runs=args.runs,
        train=not args.no_train,
        timeout_s=args.timeout,
        threads=args.threads,
        timm_args=tuple(shlex.split(args.timm_args)),
    ).validate()
    if cfg.protocol_shortfalls():
        print(
            "note: below the protocol (" + ", ".join(cfg.protocol_shortfalls()) + "): a smoke run, "
            "not a table to quote",
            file=sys.stderr,
        )
    out = args.out or default_output(cfg)

    def write(rows: list[dict]) -> list[Path]:
        return write_backbone_results(
            rows, out, cfg, plot=not args.no_plot, command=_command(args, out), notes=args.note
        )

    # the files are rewritten after every model: a long run that is stopped keeps its finished rows
    rows = benchmark_backbones(
        args.models, cfg, timm_compare=args.timm_compare, timm_script=args.timm_script, on_row=write
    )
    paths = write(rows)

    # The terminal gets the headline columns (short headers, so model names fit); the CSV has them all.
    # Rates and ratios as "median (min-max)" over the runs.
    shown = {
        "model": "model",
        "param_count": "params (M)",
        "infer_gmacs": "GMACs",
        "infer_samples_per_sec": "infer img/s",
    }
    if args.timm_compare:
        shown |= {"timm_infer_samples_per_sec": "timm infer", "infer_vs_timm": "infer zoo/timm"}
    if cfg.train:
        shown |= {"train_samples_per_sec": "train img/s"}
        if args.timm_compare:
            shown |= {"timm_train_samples_per_sec": "timm train", "train_vs_timm": "train zoo/timm"}
    from zoo.markdown import format_value

    def cell(row: dict, col: str) -> str:
        value = row.get(col)
        if col == "model" and row.get("infer_batch_size") not in (None, cfg.batch_size):
            return f"{value} (batch {row['infer_batch_size']})"
        if row.get(f"{col}_min") is not None:
            return f"{format_value(value)} ({format_value(row[f'{col}_min'])}-{format_value(row[f'{col}_max'])})"
        return format_value(value)

    print_table(
        list(shown.values()),
        [[cell(r, c) for c in shown] for r in rows],
        title=f"backbones on {cfg.device}, {cfg.precision}, batch {cfg.batch_size}: median (min-max) "
        f"of {cfg.runs} runs (the CSV has every column)",
    )
    for r in rows:
        if r.get("error"):
            print(f"  {r['model']}: {r['error']}", file=sys.stderr)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 1 if any(r.get("error") for r in rows) else 0


def _command(args: argparse.Namespace, out: Path) -> str:
    """The command that reproduces this run, whichever way it was started (CLI, script, main([...]))."""
    parts = [
        "zoo",
        "bench",
        "backbones",
        *args.models,
        "--device",
        args.device,
        "--batch-size",
        str(args.batch_size),
        "--precision",
        args.precision,
        "--warmup",
        str(args.warmup),
        "--iters",
        str(args.iters),
        "--runs",
        str(args.runs),
    ]
    parts += ["--channels-last"] * args.channels_last + ["--compile"] * args.compile
    parts += ["--img-size", str(args.img_size)] if args.img_size else []
    parts += ["--threads", str(args.threads)] if args.threads else []
    parts += [f"--note={n}" for n in args.note]
    parts += [f"--timm-args={args.timm_args}"] if args.timm_args else []
    parts += ["--no-train"] * args.no_train + ["--timm-compare"] * args.timm_compare
    return " ".join(shlex.quote(p) for p in [*parts, "--out", str(out)])
