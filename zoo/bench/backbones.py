"""The backbone table: parameters, GMACs, inference and training images/s, step time and peak memory.

Method, kept comparable to timm's ``benchmark.py`` so that the two can be checked against each other:

- inference: ``model.eval()`` under ``torch.no_grad()``; training: ``model.train()``, cross-entropy on
  random targets, ``backward()`` and an SGD step (timm's default optimizer: momentum 0.9, Nesterov);
- the input is ``torch.randn((B, 3, H, W))`` made once on the device (``channels_last`` when asked);
- one fresh process per (model, run) (``python -m zoo.bench.backbones --worker NAME``), so no run
  inherits another's allocator caches, compiled graphs or thread pools; each process makes ``warmup``
  untimed steps, then one timed run of ``iters`` steps; the MEDIAN of ``runs`` processes is reported
  with the min and max, so one run disturbed by another process does not move the table;
- with the timm comparison, timm's own script runs right after each of ours (zoo, timm, zoo, timm, ...),
  see ``zoo.bench.runs``;
- ``torch.cuda.synchronize()`` closes every timed run on a GPU (kernels are asynchronous);
- on out-of-memory the batch is halved and the phase retried; the batch actually used is recorded.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

from zoo.errors import ConfigError

T = TypeVar("T")

PRECISIONS = ("fp32", "bf16", "fp16")
# timm's benchmark.py column names first, then ours (memory, the timm comparison, the run settings).
COLUMNS = (
    "model", "param_count", "infer_gmacs", "infer_img_size",
    "infer_batch_size", "infer_samples_per_sec", "infer_step_time", "infer_peak_mem_mb",
    "train_batch_size", "train_samples_per_sec", "train_step_time", "train_peak_mem_mb",
    "timm_model", "timm_infer_samples_per_sec", "infer_vs_timm", "timm_train_samples_per_sec", "train_vs_timm",
    "device", "precision", "channels_last", "compile", "threads", "warmup", "iters", "runs", "error",
)
# The Markdown table: every figure with its spread; the CSV has every column.
TABLE_COLUMNS = ("model", "param_count", "infer_gmacs", "infer_img_size", "infer_batch_size",
                 *(f"{pre}{p}_samples_per_sec{suf}" for p in ("infer", "train") for pre in ("", "timm_")
                   for suf in ("", "_min", "_max")),
                 *(f"{p}_vs_timm{suf}" for p in ("infer", "train") for suf in ("", "_min", "_max")),
                 "infer_peak_mem_mb", "train_peak_mem_mb", "runs", "error")
# The protocol every committed comparison follows (below it a row is marked, not refused: tests and --quick).
PROTOCOL_MIN = {"warmup": 10, "iters": 20, "runs": 5}
RESULT_PREFIX = "ZOO_BENCH_RESULT "


@dataclass
class BenchConfig:
    """How to measure. The step counts are the protocol's minimum (PROTOCOL_MIN); ``runs`` is the number
    of fresh processes per model. On a GPU pass a realistic batch (256) and more iterations."""

    device: str = "cpu"
    batch_size: int = 16
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    img_size: int | None = None
    warmup: int = 10
    iters: int = 20
    runs: int = 5
    train: bool = True
    timeout_s: float = 1800.0
    threads: int | None = None  # torch threads in every process (OMP_NUM_THREADS); None: torch's default
    timm_args: tuple[str, ...] = ()  # extra options for timm's script; refused if they change a setting

    def protocol_shortfalls(self) -> list[str]:
        """Settings below the protocol's minimum steps and runs (fine for a smoke run, never for a table)."""
        return [f"{k} {getattr(self, k)} < {v}" for k, v in PROTOCOL_MIN.items() if getattr(self, k) < v]

    def validate(self) -> "BenchConfig":
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}. "
                              f"Fix: --precision fp32 (or bf16, fp16).")
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ConfigError(f"device {self.device!r} is not supported. Fix: --device cpu or --device cuda.")
        for key in ("batch_size", "iters", "runs"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key}={getattr(self, key)} must be at least 1.")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads={self.threads} must be at least 1. Fix: --threads 2, or leave it out.")
        if self.warmup < 0:
            raise ConfigError(f"warmup={self.warmup} must be 0 or more.")
        if self.img_size is not None and self.img_size < 8:
            raise ConfigError(f"img_size={self.img_size} is too small. Fix: --img-size 32 or more, or leave "
                              f"it out to use each model's own resolution.")
        return self

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BenchConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ConfigError(f"unknown benchmark settings {sorted(unknown)}; known: {sorted(names)}")
        if "timm_args" in data:
            data = {**data, "timm_args": tuple(data["timm_args"])}
        return cls(**data).validate()


# ---- small measurement pieces (tested one by one) -------------------------------------------------
def median_rate(run_seconds: Sequence[float], batch_size: int, iters: int) -> tuple[float, float]:
    """(samples/s, ms per step) of the median timed run."""
    if not run_seconds:
        raise ValueError("no timed runs to summarise")
    med = statistics.median(run_seconds)
    return batch_size * iters / med, 1000.0 * med / iters


def timed_runs(step: Callable[[], Any], warmup: int, iters: int, runs: int,
               sync: Callable[[], None] = lambda: None) -> list[float]:
    """Seconds taken by each of ``runs`` runs of ``iters`` steps, after ``warmup`` untimed steps."""
    for _ in range(warmup):
        step()
    sync()
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(iters):
            step()
        sync()
        seconds.append(time.perf_counter() - start)
    return seconds


def is_oom(exc: BaseException) -> bool:
    """True for CUDA's OutOfMemoryError and for the CPU allocator's 'can't allocate memory'."""
    import torch

    oom_types = tuple({getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError),
                       torch.cuda.OutOfMemoryError})
    if isinstance(exc, oom_types):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def with_oom_halving(fn: Callable[[int], T], batch_size: int,
                     on_retry: Callable[[int, str], None] | None = None) -> tuple[T, int]:
    """Run ``fn(batch)``; on out-of-memory halve the batch and retry. Returns (result, batch used)."""
    batch = int(batch_size)
    while True:
        try:
            return fn(batch), batch
        except Exception as exc:  # noqa: BLE001 - re-raised unless it is an OOM
            if not is_oom(exc) or batch <= 1:
                raise
            reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        # outside the except block: the traceback (and the failed step's tensors) are released now
        _free_memory()
        batch = max(1, batch // 2)
        if on_retry is not None:
            on_retry(batch, reason)


def _free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def count_gmacs(model: Any, input_size: Sequence[int]) -> float:
    """Multiply-accumulates (x 1e9) of one forward pass on one image.

    torch.utils.flop_counter counts FLOPs of the matmul/conv/attention ops (the same ops fvcore and
    timm's published GMACs count; element-wise ops are ignored). One MAC is two FLOPs, so MACs = FLOPs / 2.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    x = torch.randn((1, *input_size))
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    model.train(was_training)
    return counter.get_total_flops() / 2 / 1e9


# ---- peak memory -----------------------------------------------------------------------------------
class PeakMemory:
    """Peak memory of a phase, in MiB.

    CUDA: ``torch.cuda.max_memory_allocated`` after resetting the peak: everything the phase held on
    the card (weights, activations, gradients, optimizer state); exact and free to read.
    CPU: the peak process RSS minus the RSS just before the phase, i.e. what the phase added on top of
    the already-built model. On Linux the kernel's own high-water mark is used (reset by writing 5
    to /proc/self/clear_refs, read as VmHWM): exact and with no sampling thread that could steal
    time from the measured loop. Elsewhere a psutil thread samples RSS every millisecond.
    """

    def __init__(self, device: str) -> None:
        self.device = device
        self.peak_mb: float | None = None
        self._baseline = 0
        self._sampler: threading.Thread | None = None
        self._stop = threading.Event()
        self._sampled_peak = 0
        self.method = ""

    def __enter__(self) -> "PeakMemory":
        import torch

        gc.collect()
        if self.device.startswith("cuda"):
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.method = "cuda_max_memory_allocated"
            return self
        self._baseline = _rss_bytes()
        if _reset_hwm():
            self.method = "rss_hwm_delta"
        else:
            self.method = "rss_sampled_delta"
            self._sampled_peak = self._baseline
            self._sampler = threading.Thread(target=self._sample, daemon=True)
            self._sampler.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.001):
            self._sampled_peak = max(self._sampled_peak, _rss_bytes())

    def __exit__(self, *exc: Any) -> None:
        import torch

        if self.device.startswith("cuda"):
            torch.cuda.synchronize(self.device)
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20
            return
        if self._sampler is not None:
            self._stop.set()
            self._sampler.join()
            peak = max(self._sampled_peak, _rss_bytes())
        else:
            peak = _hwm_bytes()
        self.peak_mb = max(0, peak - self._baseline) / 2**20


def _rss_bytes() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return _hwm_bytes() > 0
    except OSError:
        return False


def _hwm_bytes() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


# ---- one model, in the worker process -------------------------------------------------------------
def _autocast(device: str, precision: str) -> contextlib.AbstractContextManager:
    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu", dtype=dtype)


def _sync_fn(device: str) -> Callable[[], None]:
    import torch

    if device.startswith("cuda"):
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def _make_input(batch: int, input_size: Sequence[int], cfg: BenchConfig) -> Any:
    import torch

    x = torch.randn((batch, *input_size), device=cfg.device)  # as timm: random normal, made once
    return x.contiguous(memory_format=torch.channels_last) if cfg.channels_last else x


def measure_inference(model: Any, batch: int, input_size: Sequence[int], cfg: BenchConfig) -> dict[str, Any]:
    """Inference throughput at one batch size: eval mode, no_grad (as timm), median of the timed runs."""
    import torch

    model.eval()
    with PeakMemory(cfg.device) as mem, torch.no_grad():
        x = _make_input(batch, input_size, cfg)

        def step() -> None:
            with _autocast(cfg.device, cfg.precision):
                model(x)

        seconds = timed_runs(step, cfg.warmup, cfg.iters, 1, _sync_fn(cfg.device))  # runs = processes
        del x
    rate, step_ms = median_rate(seconds, batch, cfg.iters)
    return {"samples_per_sec": round(rate, 2), "step_time": round(step_ms, 3), "peak_mem_mb": round(mem.peak_mb, 1),
            "run_seconds": [round(s, 4) for s in seconds], "mem_method": mem.method}


def measure_training(model: Any, batch: int, input_size: Sequence[int], num_classes: int,
                     cfg: BenchConfig) -> dict[str, Any]:
    """Training throughput: forward, cross-entropy, backward and an SGD step per iteration."""
    import torch

    model.train()
    with PeakMemory(cfg.device) as mem:
        # timm's benchmark.py trains with create_optimizer_v2('sgd'): SGD, momentum 0.9, Nesterov.
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-4, momentum=0.9,
                              nesterov=True)
        loss_fn = torch.nn.CrossEntropyLoss()
        x = _make_input(batch, input_size, cfg)
        target = torch.randint(0, max(1, num_classes), (batch,), device=cfg.device)
        scaler = torch.amp.GradScaler("cuda") if cfg.precision == "fp16" and cfg.device.startswith("cuda") else None

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            with _autocast(cfg.device, cfg.precision):
                loss = loss_fn(model(x).float(), target)
            if scaler is not None:  # fp16 gradients underflow without loss scaling
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()

        seconds = timed_runs(step, cfg.warmup, cfg.iters, 1, _sync_fn(cfg.device))  # runs = processes
        del x, target, opt
    rate, step_ms = median_rate(seconds, batch, cfg.iters)
    return {"samples_per_sec": round(rate, 2), "step_time": round(step_ms, 3), "peak_mem_mb": round(mem.peak_mb, 1),
            "run_seconds": [round(s, 4) for s in seconds], "mem_method": mem.method}


def timm_counterpart(backbone: Any) -> str | None:
    """The timm architecture name behind a zoo backbone (timm: and pypi: models), else None."""
    from zoo.backbones.timm import TimmBackbone

    return backbone.architecture if isinstance(backbone, TimmBackbone) else None


def measure_model(name: str, cfg: BenchConfig) -> dict[str, Any]:
    """Every column of one row except the timm comparison. Runs in the worker process."""
    import torch

    from zoo.registry import create_model

    cfg.validate()
    if cfg.device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {cfg.device} but torch sees no CUDA device. Fix: --device cpu.")
        torch.backends.cudnn.benchmark = True  # as timm's benchmark.py, which also allows TF32 matmuls:
        torch.backends.cuda.matmul.allow_tf32 = True  # the same on both sides of a comparison
    backbone = create_model(name, pretrained=False)  # throughput does not depend on the weights
    input_size = tuple(backbone.data_config["input_size"])
    if cfg.img_size:
        input_size = (input_size[0], cfg.img_size, cfg.img_size)
    row: dict[str, Any] = {
        "model": name,
        "param_count": round(sum(p.numel() for p in backbone.parameters()) / 1e6, 2),
        "infer_gmacs": round(count_gmacs(backbone, input_size), 3),
        "infer_img_size": input_size[-1],
        "timm_model": timm_counterpart(backbone),
        "device": cfg.device, "precision": cfg.precision,
        "channels_last": cfg.channels_last, "compile": cfg.compile, "threads": torch.get_num_threads(),
        "warmup": cfg.warmup, "iters": cfg.iters,
    }
    backbone.to(cfg.device)
    if cfg.channels_last:
        backbone.to(memory_format=torch.channels_last)
    model = torch.compile(backbone) if cfg.compile else backbone

    infer, batch = with_oom_halving(lambda b: measure_inference(model, b, input_size, cfg), cfg.batch_size)
    row.update({"infer_batch_size": batch, "infer_samples_per_sec": infer["samples_per_sec"],
                "infer_step_time": infer["step_time"], "infer_peak_mem_mb": infer["peak_mem_mb"],
                "mem_method": infer["mem_method"]})
    if cfg.train:
        _free_memory()
        train, batch = with_oom_halving(
            lambda b: measure_training(model, b, input_size, backbone.num_classes, cfg), cfg.batch_size)
        row.update({"train_batch_size": batch, "train_samples_per_sec": train["samples_per_sec"],
                    "train_step_time": train["step_time"], "train_peak_mem_mb": train["peak_mem_mb"],
                    "train_img_size": input_size[-1]})
    return row


# ---- the parent: one subprocess per model ----------------------------------------------------------
def child_env(cfg: BenchConfig) -> dict[str, str]:
    """The environment of every measured process, zoo's and timm's alike (same thread count)."""
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")  # pretrained=False never needs the Hub; do not wait on it
    if cfg.threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(cfg.threads)
    return env


def run_worker(name: str, cfg: BenchConfig) -> dict[str, Any]:
    """Measure one model in a fresh Python process and return its row (with ``error`` on failure)."""
    cmd = [sys.executable, "-m", "zoo.bench.backbones", "--worker", name, "--config", json.dumps(asdict(cfg))]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=cfg.timeout_s, env=child_env(cfg))
    except subprocess.TimeoutExpired:
        return {"model": name, "error": f"timed out after {cfg.timeout_s:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return {"model": name, "error": f"worker exited {proc.returncode}: " + " | ".join(tail)}


def device_name(device: str) -> str:
    """Human name of the device: the GPU's marketing name, or the CPU model and core count."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    model = ""
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as fh:
            model = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), "")
    return f"{model or 'CPU'} ({cpu_cores()} cores)"


def load_average() -> str | None:
    """The 1/5/15-minute load averages: how busy a shared machine was when a result was written."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else None


def cpu_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def device_slug(device: str) -> str:
    """'cpu-2core' or the GPU's name slugged ('nvidia-h100-80gb-hbm3'): goes into result file names."""
    from zoo.bench.report import slugify

    if device.startswith("cuda"):
        import torch

        return slugify(torch.cuda.get_device_name(torch.device(device)))
    return f"cpu-{cpu_cores()}core"


def default_output(cfg: BenchConfig) -> Path:
    """benchmarks/results/backbones_<device>_<precision>[_cl][_compile].csv"""
    suffix = ("_cl" if cfg.channels_last else "") + ("_compile" if cfg.compile else "")
    return Path("benchmarks") / "results" / f"backbones_{device_slug(cfg.device)}_{cfg.precision}{suffix}.csv"


def write_backbone_results(rows: Sequence[dict[str, Any]], out: str | Path, cfg: BenchConfig,
                           plot: bool = True, command: str | None = None, notes: Sequence[str] = ()) -> list[Path]:
    """CSV at ``out``, a Markdown table (``.md``) and a throughput-vs-GMACs plot (``.png``) beside it.
    ``notes`` (e.g. "the machine was shared") go into the Markdown as they are."""
    from zoo.bench import report

    out = Path(out)
    if out.suffix != ".csv":
        raise ConfigError(f"--out {out} must end in .csv (the .md and .png are written beside it).")
    columns = list(COLUMNS) + [c for c in report.columns_of(rows) if c not in COLUMNS]  # every run: same columns
    paths = [report.write_csv(rows, out, columns)]
    meta = report.run_metadata(
        device=device_name(cfg.device), precision=cfg.precision, channels_last=cfg.channels_last,
        compile=cfg.compile, batch_size=cfg.batch_size, threads=cfg.threads or "torch default",
        timing=f"{cfg.runs} fresh processes per model and tool (zoo, timm, zoo, timm, ...), each {cfg.warmup} "
               f"warm-up steps then {cfg.iters} timed steps; median [min, max] over the runs",
        load_average_at_write=load_average(),
        timm_script_sha256=next((r["timm_script_sha256"] for r in rows if r.get("timm_script_sha256")), None),
        command=f"`{command}`" if command else None)
    png = out.with_suffix(".png")
    if plot and any(isinstance(r.get("infer_samples_per_sec"), (int, float)) for r in rows):
        ok = [r for r in rows if isinstance(r.get("infer_gmacs"), (int, float))]
        report.scatter_plot(ok, "infer_gmacs", "infer_samples_per_sec", png, label="model",
                            logx=all(r["infer_gmacs"] > 0 for r in ok), logy=True,
                            title=f"inference throughput vs GMACs - {meta['device']}, {cfg.precision}",
                            xlabel="GMACs per image", ylabel="inference images/s")
    else:
        png = None
    notes = [
        *notes,
        "GMACs: torch.utils.flop_counter FLOPs of one image / 2 (matmul, conv and attention ops).",
        "Peak memory: CUDA max_memory_allocated (weights included); on CPU the peak RSS added by the "
        "phase on top of the built model (Linux VmHWM).",
        "*_batch_size is the batch used after any out-of-memory halving.",
    ]
    if cfg.protocol_shortfalls():
        notes.append("BELOW THE PROTOCOL (a smoke run, not a table): " + ", ".join(cfg.protocol_shortfalls()))
    if any(r.get("infer_vs_timm") is not None for r in rows):
        notes.append("*_vs_timm = zoo images/s / timm benchmark.py images/s of the adjacent run pair; median "
                     "[min, max] over the pairs. timm's script (sha256 in the header, unchanged) ran with the "
                     "same model, batch, --img-size, precision, memory format, compile, steps and threads. "
                     "Inference grad mode differs by design: zoo's path uses torch.no_grad (as zoo.predict), "
                     "timm's script torch.inference_mode.")
    if not cfg.device.startswith("cuda"):
        notes.append("CPU figures from a shared machine: use them for ratios between rows, not as absolutes.")
    table_cols = [c for c in TABLE_COLUMNS if any(r.get(c) is not None for r in rows)]
    paths.append(report.write_markdown(rows, out.with_suffix(".md"), table_cols, title="Backbone benchmark",
                                       meta=meta, notes=notes, image=png))
    if png is not None:
        paths.append(png)
    return paths


def _worker_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m zoo.bench.backbones",
                                     description="Internal: measure one model in this process (one run).")
    parser.add_argument("--worker", metavar="MODEL", required=True, help="measure MODEL, print one result line")
    parser.add_argument("--config", default="{}", help="BenchConfig as JSON")
    args = parser.parse_args(argv)
    try:
        row = measure_model(args.worker, BenchConfig.from_dict(json.loads(args.config)))
    except Exception as exc:  # noqa: BLE001 - the parent records the error in the model's row
        row = {"model": args.worker, "error": f"{type(exc).__name__}: {exc}"}
    print(RESULT_PREFIX + json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
