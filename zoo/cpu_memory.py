"""glibc's malloc, told to keep the memory a CPU training step frees, so that the next step reuses it.

A training step allocates and frees the same activations and gradients every step (over a gigabyte for
EfficientNet-Lite0 at batch 32 and 224 px). Left to its defaults, glibc hands much of that back to the kernel
as it is freed (heap trimming past a small threshold, arenas shrunk, blocks above a dynamic mmap threshold
unmapped) and the next step faults it back in, each page zeroed by the kernel. On the photo job that was six
times the page faults, five times the kernel time and about 13% fewer images a second than with the memory
kept (benchmarks/results/cpu_memory_cpu-2core.csv; benchmarks/README.md, "CPU memory reuse"). PyTorch's CPU
tuning guide and its launcher (``torch.backends.xeon.run_cpu``) preload jemalloc or tcmalloc for this reason;
neither comes with pip, and glibc's own ``mallopt`` gives the reuse that matters here, in process, with
nothing to install.

The cost is memory the process keeps between steps (peak RSS about 0.2 GB higher on that job), and one trap:
a DataLoader worker forked from a process holding freed memory shares those pages copy-on-write, so every
page the trainer reuses afterwards is copied and the worker keeps the old one (the photo job's two evaluation
workers, forked after the first epoch, held 1.9 GB that way). Workers therefore start with
:func:`release_inherited_memory`, which hands the inherited free pages back (``malloc_trim``). Skipped when
the user already chose (an LD_PRELOADed jemalloc/tcmalloc/mimalloc, or any ``MALLOC_*`` setting in the
environment), off with ``ZOO_CPU_MALLOC=default``, and a no-op where the C library is not glibc (macOS,
musl, Windows).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from collections.abc import Mapping
from typing import Any

# mallopt parameters (glibc's malloc.h)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
SETTINGS = {
    # the largest mmap threshold glibc accepts (HEAP_MAX_SIZE / 2 on 64-bit): blocks up to 32 MiB come from
    # the heap and are reused; setting it also stops glibc's dynamic threshold from moving it back down
    M_MMAP_THRESHOLD: 32 * 2**20,
    # free memory at the heap's top is returned to the kernel only past 1 GiB (glibc's default is 128 KiB,
    # or twice the dynamic mmap threshold): one step's activations stay mapped for the next
    M_TRIM_THRESHOLD: 2**30,
    # grow the heaps (the main one and the per-thread arenas oneDNN's threads allocate in) 128 MiB at a time
    M_TOP_PAD: 128 * 2**20,
}
OPT_OUT = "ZOO_CPU_MALLOC"
PRELOADED = ("jemalloc", "tcmalloc", "mimalloc")


@functools.cache  # find_library runs ldconfig: once per process, and forked workers inherit the handle
def _glibc() -> Any | None:
    """The C library when it is glibc (it has ``mallopt`` and ``gnu_get_libc_version``), else None."""
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # noqa: B018 - raises AttributeError outside glibc
        libc.mallopt  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def reason_to_skip(env: Mapping[str, str]) -> str | None:
    """Why the allocator is left as it is, or None to tune it."""
    if env.get(OPT_OUT, "").lower() in ("default", "0", "off", "no", "false"):
        return f"{OPT_OUT}={env[OPT_OUT]}"
    preload = env.get("LD_PRELOAD", "")
    chosen = next((lib for lib in PRELOADED if lib in preload), None)
    if chosen:
        return f"{chosen} is preloaded"
    set_by_user = sorted(k for k in env if k.startswith("MALLOC_"))  # glibc's MALLOC_*_ and MALLOC_ARENA_*
    if set_by_user or "GLIBC_TUNABLES" in env:
        return f"the environment sets {', '.join(set_by_user) or 'GLIBC_TUNABLES'}"
    return None


def keep_freed_memory(env: Mapping[str, str] | None = None, libc: Any | None = None) -> str:
    """Tune glibc's malloc for a training process (idempotent); a short line saying what was done, which
    the run records in its environment."""
    why_not = reason_to_skip(os.environ if env is None else env)
    if why_not:
        return f"left as is ({why_not})"
    libc = libc if libc is not None else _glibc()
    if libc is None:
        return "left as is (the C library is not glibc)"
    failed = [param for param, value in SETTINGS.items() if libc.mallopt(param, value) != 1]
    if failed:  # glibc refuses values it considers out of range; the others still apply
        return f"glibc refused mallopt parameter(s) {failed}"
    return "glibc keeps freed memory (mmap threshold 32 MiB, trim threshold 1 GiB, top pad 128 MiB)"


def release_inherited_memory(worker_id: int = 0) -> None:
    """A DataLoader ``worker_init_fn``: give the kernel back the free heap pages this forked worker inherited
    from the trainer (glibc's ``malloc_trim(0)``), so they stay the trainer's alone instead of being copied
    the next time it writes them. A no-op outside glibc."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
