"""Where a measurement ran: cores, load, device names, library versions and peak memory, in one place.

Every results file (the benchmarks, ``zoo rank``, the scripts in benchmarks/) records the same facts the same
way, so two of them can be compared. Imports no other zoo module (the bottom layer) and imports torch only
inside the functions that need it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import gc
import os
import platform
import re
import threading
from typing import Any


# ---- the machine -------------------------------------------------------------------------------
def cpu_cores() -> int:
    """The cores this process may use (cgroup/affinity aware where the OS says)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def load_average(digits: int = 2) -> str | None:
    """The 1/5/15-minute load averages: how busy a shared machine was when a result was written."""
    return " ".join(f"{x:.{digits}f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else None


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as fh:
            name = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), "")
            if name:
                return name
    return platform.processor() or "CPU"


def slugify(text: str) -> str:
    """'NVIDIA H100 80GB HBM3' -> 'nvidia-h100-80gb-hbm3': safe in a file name."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def device_name(device: str) -> str:
    """Human name of the device: the GPU's marketing name, or the CPU model and core count."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    return f"{cpu_model()} ({cpu_cores()} cores)"


def device_slug(device: str) -> str:
    """'cpu-2core' or the GPU's name slugged ('nvidia-h100-80gb-hbm3'): goes into result file names."""
    return slugify(device_name(device)) if device.startswith("cuda") else f"cpu-{cpu_cores()}core"


def run_metadata(**extra: Any) -> dict[str, Any]:
    """Who measured what with which libraries: goes into a results header so a table is never orphaned."""
    import torch

    meta: dict[str, Any] = dict(extra)
    meta.setdefault("date", _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"))
    meta["torch"] = torch.__version__
    try:
        import timm

        meta["timm"] = timm.__version__
    except ImportError:  # pragma: no cover - timm is a dependency
        meta["timm"] = None
    meta["python"] = platform.python_version()
    meta["platform"] = platform.platform(terse=True)
    return meta


# ---- memory ------------------------------------------------------------------------------------
def rss_bytes() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def hwm_bytes() -> int:
    """The kernel's high-water mark of this process's resident memory (Linux VmHWM), 0 where unknown."""
    with contextlib.suppress(OSError):
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    return 0


def reset_hwm() -> bool:
    """Reset VmHWM to the current RSS (write 5 to /proc/self/clear_refs); False where the OS cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return hwm_bytes() > 0
    except OSError:
        return False


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

    def __enter__(self) -> PeakMemory:
        gc.collect()
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.method = "cuda_max_memory_allocated"
            return self
        self._baseline = rss_bytes()
        if reset_hwm():
            self.method = "rss_hwm_delta"
        else:
            self.method = "rss_sampled_delta"
            self._sampled_peak = self._baseline
            self._sampler = threading.Thread(target=self._sample, daemon=True)
            self._sampler.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.001):
            self._sampled_peak = max(self._sampled_peak, rss_bytes())

    def __exit__(self, *exc: Any) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize(self.device)
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20
            return
        if self._sampler is not None:
            self._stop.set()
            self._sampler.join()
            peak = max(self._sampled_peak, rss_bytes())
        else:
            peak = hwm_bytes()
        self.peak_mb = max(0, peak - self._baseline) / 2**20
