"""Which precision a run trains in: ``train.mixed_precision: auto`` picks what the device runs natively.

bf16 autocast is a large speed-up where the hardware computes in bf16 (CUDA GPUs from Ampere on; x86 CPUs with
AVX512-BF16 or AMX), and a large slow-down where it does not: on a CPU without them every bf16 op is emulated
(measured 8x slower than fp32 on a 2-core AVX2 laptop CPU, issue 17). ``auto`` therefore resolves to

- ``bf16`` on CUDA with bf16 support, and on a CPU with AVX512-BF16 or AMX;
- ``fp16`` (accelerate adds the gradient scaler) on CUDA without bf16;
- ``no`` (fp32) everywhere else.

An explicit value is always honoured; an explicit ``bf16`` on a CPU without native support warns once with the
cost and the fix. The probes are small functions so that tests can stand in for each kind of device.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

# the cost that the warning quotes: measured, not assumed (issue 17: the fruits recipe in bf16 vs fp32 on a 2-core
# AVX2 laptop CPU, EfficientNet-Lite0, 1.0 vs 8.4 images/s)
EMULATED_BF16_COST = "measured 8x slower than fp32 (1.0 vs 8.4 images/s) on a 2-core AVX2 CPU"
# oneDNN ISA caps (ONEDNN_MAX_CPU_ISA) that still include bf16 compute
_ONEDNN_BF16_ISAS = ("BF16", "AMX", "AVX10", "DEFAULT", "ALL")


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision a run trains in, what was asked for, and why (said on the start line, kept in metrics)."""

    precision: str  # what accelerate gets: no | fp16 | bf16
    requested: str  # what the recipe said: auto | no | fp16 | bf16
    reason: str
    warning: str | None = None  # set when the choice is known to be slow on this device

    def describe(self) -> str:
        shown = {"no": "fp32", "fp16": "fp16 autocast + grad scaler", "bf16": "bf16 autocast"}[self.precision]
        return f"precision {shown} ({self.requested}: {self.reason})"

    def record(self) -> dict[str, str]:
        return {
            "mixed_precision": self.precision,
            "mixed_precision_requested": self.requested,
            "mixed_precision_reason": self.reason,
        }


def cpu_flags() -> set[str]:
    """The CPU feature flags the kernel reports (empty off Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_bf16_support() -> tuple[bool, str]:
    """(native, what was found): does this CPU compute bf16 in hardware, as torch will use it?"""
    capability = torch.backends.cpu.get_cpu_capability()  # honours ATEN_CPU_CAPABILITY
    isa_cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    if isa_cap and not any(k in isa_cap for k in _ONEDNN_BF16_ISAS):
        return False, f"oneDNN is capped at {isa_cap} (ONEDNN_MAX_CPU_ISA)"
    if not capability.startswith("AVX512"):
        return False, f"the CPU kernels run at {capability}, without AVX512-BF16 or AMX"
    found = sorted(cpu_flags() & {"avx512_bf16", "amx_bf16"})
    if found:
        return True, f"the CPU has {' and '.join(found)}"
    return False, f"the CPU ({capability}) has neither avx512_bf16 nor amx_bf16"


def cuda_bf16_support(device: torch.device) -> tuple[bool, str]:
    """(native, the GPU's name and compute capability)."""
    name = torch.cuda.get_device_name(device)
    major, minor = torch.cuda.get_device_capability(device)
    return bool(torch.cuda.is_bf16_supported()), f"{name}, compute capability {major}.{minor}"


def choose_precision(requested: str, device: torch.device) -> PrecisionChoice:
    """Resolve ``train.mixed_precision`` for the device the run trains on."""
    kind = device.type
    if kind == "cuda":
        native, found = cuda_bf16_support(device)
    elif kind == "cpu":
        native, found = cpu_bf16_support()
    else:
        native, found = False, f"device {kind}"
    if requested == "auto":
        if native:
            return PrecisionChoice("bf16", requested, f"{found}: bf16 runs natively")
        if kind == "cuda":
            return PrecisionChoice("fp16", requested, f"{found}: no native bf16, fp16 with a gradient scaler")
        return PrecisionChoice("no", requested, f"{found}: no native bf16 or fp16 training, fp32")
    reason = "as the recipe asks"
    if requested == "bf16" and kind == "cpu" and not native:
        return PrecisionChoice(
            requested,
            requested,
            reason,
            warning=(
                f"train.mixed_precision=bf16 on a CPU without native bf16 ({found}): bf16 is emulated, "
                f"{EMULATED_BF16_COST}. Fix: train.mixed_precision=auto (or no)."
            ),
        )
    return PrecisionChoice(requested, requested, reason)
