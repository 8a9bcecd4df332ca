"""Measuring one backbone in the process that runs it: parameters, GMACs, inference and training images/s,
step time and peak memory (``zoo.env.PeakMemory``). The settings (``BenchConfig``) live here too.

Method, kept comparable to timm's ``benchmark.py`` so that the two can be checked against each other:

- inference: ``model.eval()`` under ``torch.no_grad()``; training: ``model.train()``, cross-entropy on
  random targets, ``backward()`` and an SGD step (timm's default optimizer: momentum 0.9, Nesterov);
- the input is ``torch.randn((B, 3, H, W))`` made once on the device (``channels_last`` when asked);
- one fresh process per (model, run) (``python -m zoo.bench.worker NAME CONFIG``,
  see ``zoo.bench.worker``), so no run
  inherits another's allocator caches, compiled graphs or thread pools; each process makes ``warmup``
  untimed steps, then one timed run of ``iters`` steps; the MEDIAN of ``runs`` processes is reported
  with the min and max, so one run disturbed by another process does not move the table;
- with the timm comparison, timm's own script runs right after each of ours (zoo, timm, zoo, timm, ...),
  see ``zoo.bench.runs``;
- ``torch.cuda.synchronize()`` closes every timed run on a GPU (kernels are asynchronous);
- on out-of-memory the batch is halved and the phase retried; the batch actually used is recorded.
"""

from __future__ import annotations

import contextlib
import gc
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from zoo.env import PeakMemory
from zoo.errors import ConfigError

T = TypeVar("T")

PRECISIONS = ("fp32", "bf16", "fp16")
# The protocol every committed comparison follows (below it a row is marked, not refused: tests and --quick).
PROTOCOL_MIN = {"warmup": 10, "iters": 20, "runs": 5}


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

    def validate(self) -> BenchConfig:
        """Refuse settings that cannot be measured, naming the fix."""
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}. "
                f"Fix: --precision fp32 (or bf16, fp16)."
            )
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
            raise ConfigError(
                f"img_size={self.img_size} is too small. Fix: --img-size 32 or more, or leave "
                f"it out to use each model's own resolution."
            )
        return self

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchConfig:
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


def timed_runs(
    step: Callable[[], Any], warmup: int, iters: int, runs: int, sync: Callable[[], None] = lambda: None
) -> list[float]:
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

    oom_types = tuple({getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError), torch.cuda.OutOfMemoryError})
    if isinstance(exc, oom_types):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def with_oom_halving(
    fn: Callable[[int], T], batch_size: int, on_retry: Callable[[int, str], None] | None = None
) -> tuple[T, int]:
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
        free_memory()
        batch = max(1, batch // 2)
        if on_retry is not None:
            on_retry(batch, reason)


def free_memory() -> None:
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


# ---- one model (in the worker process: zoo.bench.worker) -------------------------------------------------------------
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
                model(x)  # noqa: F821 (pyflakes misreads the `del` below: it clears the closure's cell)

        seconds = timed_runs(step, cfg.warmup, cfg.iters, 1, _sync_fn(cfg.device))  # runs = processes
        del x
    rate, step_ms = median_rate(seconds, batch, cfg.iters)
    return {
        "samples_per_sec": round(rate, 2),
        "step_time": round(step_ms, 3),
        "peak_mem_mb": round(mem.peak_mb or 0.0, 1),  # set on leaving the block
        "run_seconds": [round(s, 4) for s in seconds],
        "mem_method": mem.method,
    }


def measure_training(
    model: Any, batch: int, input_size: Sequence[int], num_classes: int, cfg: BenchConfig
) -> dict[str, Any]:
    """Training throughput: forward, cross-entropy, backward and an SGD step per iteration."""
    import torch

    model.train()
    with PeakMemory(cfg.device) as mem:
        # timm's benchmark.py trains with create_optimizer_v2('sgd'): SGD, momentum 0.9, Nesterov.
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-4, momentum=0.9, nesterov=True)
        loss_fn = torch.nn.CrossEntropyLoss()
        x = _make_input(batch, input_size, cfg)
        target = torch.randint(0, max(1, num_classes), (batch,), device=cfg.device)
        scaler = torch.amp.GradScaler("cuda") if cfg.precision == "fp16" and cfg.device.startswith("cuda") else None

        def step() -> None:
            opt.zero_grad(set_to_none=True)  # noqa: F821 (pyflakes misreads the `del` below: it clears the closure's cell)
            with _autocast(cfg.device, cfg.precision):
                loss = loss_fn(model(x).float(), target)  # noqa: F821 (pyflakes misreads the `del` below: it clears the closure's cell)
            if scaler is not None:  # fp16 gradients underflow without loss scaling
                scaler.scale(loss).backward()
                scaler.step(opt)  # noqa: F821 (pyflakes misreads the `del` below: it clears the closure's cell)
                scaler.update()
            else:
                loss.backward()
                opt.step()  # noqa: F821 (pyflakes misreads the `del` below: it clears the closure's cell)

        seconds = timed_runs(step, cfg.warmup, cfg.iters, 1, _sync_fn(cfg.device))  # runs = processes
        del x, target, opt
    rate, step_ms = median_rate(seconds, batch, cfg.iters)
    return {
        "samples_per_sec": round(rate, 2),
        "step_time": round(step_ms, 3),
        "peak_mem_mb": round(mem.peak_mb or 0.0, 1),  # set on leaving the block
        "run_seconds": [round(s, 4) for s in seconds],
        "mem_method": mem.method,
    }


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
        "device": cfg.device,
        "precision": cfg.precision,
        "channels_last": cfg.channels_last,
        "compile": cfg.compile,
        "threads": torch.get_num_threads(),
        "warmup": cfg.warmup,
        "iters": cfg.iters,
    }
    backbone.to(cfg.device)
    if cfg.channels_last:
        backbone.to(memory_format=torch.channels_last)
    model = torch.compile(backbone) if cfg.compile else backbone

    infer, batch = with_oom_halving(lambda b: measure_inference(model, b, input_size, cfg), cfg.batch_size)
    row.update(
        {
            "infer_batch_size": batch,
            "infer_samples_per_sec": infer["samples_per_sec"],
            "infer_step_time": infer["step_time"],
            "infer_peak_mem_mb": infer["peak_mem_mb"],
            "mem_method": infer["mem_method"],
        }
    )
    if cfg.train:
        free_memory()
        train, batch = with_oom_halving(
            lambda b: measure_training(model, b, input_size, backbone.num_classes, cfg), cfg.batch_size
        )
        row.update(
            {
                "train_batch_size": batch,
                "train_samples_per_sec": train["samples_per_sec"],
                "train_step_time": train["step_time"],
                "train_peak_mem_mb": train["peak_mem_mb"],
                "train_img_size": input_size[-1],
            }
        )
    return row
