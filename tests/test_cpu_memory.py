"""zoo.cpu_memory: a CPU training process keeps the memory a step frees, unless the user chose otherwise."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from zoo import cpu_memory
from zoo.cpu_memory import SETTINGS, keep_freed_memory, reason_to_skip
from zoo.train.accelerator import new_accelerator
from zoo.train.recipe import load_recipe


class FakeLibc:
    def __init__(self, accept: bool = True) -> None:
        self.calls: list[tuple[int, int]] = []
        self.accept = accept

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return 1 if self.accept else 0


def test_tunes_the_three_glibc_knobs():
    libc = FakeLibc()
    line = keep_freed_memory(env={}, libc=libc)
    assert libc.calls == list(SETTINGS.items())
    assert dict(libc.calls) == {-3: 32 * 2**20, -1: 2**30, -2: 128 * 2**20}  # malloc.h's numbers
    assert all(v < 2**31 for _, v in libc.calls)  # mallopt takes a C int
    assert line.startswith("glibc keeps freed memory")


@pytest.mark.parametrize(
    "env, why",
    [
        ({"ZOO_CPU_MALLOC": "default"}, "ZOO_CPU_MALLOC=default"),
        ({"LD_PRELOAD": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"}, "jemalloc is preloaded"),
        ({"LD_PRELOAD": "libtcmalloc_minimal.so.4"}, "tcmalloc is preloaded"),
        ({"MALLOC_ARENA_MAX": "2"}, "the environment sets MALLOC_ARENA_MAX"),
        ({"MALLOC_TRIM_THRESHOLD_": "0"}, "the environment sets MALLOC_TRIM_THRESHOLD_"),
        ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}, "the environment sets GLIBC_TUNABLES"),
    ],
)
def test_a_users_own_allocator_choice_is_left_alone(env, why):
    libc = FakeLibc()
    assert reason_to_skip(env) == why
    assert keep_freed_memory(env=env, libc=libc) == f"left as is ({why})"
    assert libc.calls == []


def test_outside_glibc_nothing_is_called(monkeypatch):
    monkeypatch.setattr(cpu_memory, "_glibc", lambda: None)
    assert keep_freed_memory(env={}) == "left as is (the C library is not glibc)"


def test_a_refused_setting_is_reported():
    assert "refused" in keep_freed_memory(env={}, libc=FakeLibc(accept=False))


@pytest.mark.skipif(not sys.platform.startswith("linux") or cpu_memory._glibc() is None, reason="glibc only")
def test_freed_memory_is_reused_instead_of_faulted_back_in():
    """The real allocator, in a fresh process: 30 blocks of 4 MiB written and freed, four times over (the
    shape of a training step's activations). glibc's defaults trim the freed heap top each round, so every
    round page-faults its memory back in; tuned, the rounds after the first fault nothing."""
    script = textwrap.dedent(
        """
        import json, resource, sys
        import numpy as np
        if sys.argv[1] == "tuned":
            from zoo.cpu_memory import keep_freed_memory
            keep_freed_memory(env={})
        faults = []
        for _ in range(4):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            blocks = [np.ones(2**19) for _ in range(30)]
            del blocks
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        print(json.dumps(faults))
        """
    )
    env = {"PATH": "/usr/bin:/bin"}  # no MALLOC_* or LD_PRELOAD from the caller's environment

    def faults(mode: str) -> list[int]:
        out = subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True, env=env)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    pages = 30 * 4 * 2**20 // 4096
    default, tuned = faults("default"), faults("tuned")
    assert min(default[1:]) > pages // 4  # the defaults give the memory back and fault it in again
    assert max(tuned[1:]) < pages // 50  # tuned: reused


def test_a_cpu_run_tunes_the_allocator_and_records_it(monkeypatch, tmp_path):
    called = []
    monkeypatch.setattr("zoo.train.accelerator.keep_freed_memory", lambda: called.append(1) or "tuned line")
    acc = new_accelerator(load_recipe({"name": "r"}), tmp_path)
    assert acc.device.type == "cpu" and called == [1]
    assert acc.zoo_cpu_malloc == "tuned line"
    from zoo.train.finish import environment

    assert environment(acc)["cpu_malloc"] == "tuned line"


# ---- evaluation batches on a CPU ---------------------------------------------------------------------------
def test_cpu_evaluation_defaults_to_small_batches_and_a_recipe_value_wins(tmp_path):
    import torch

    from zoo.data import load_dataset
    from zoo.data.loaders import build_loaders
    from zoo.inference import CPU_EVAL_BATCH_SIZE, EVAL_BATCH_SIZE, eval_batch_size
    from zoo.train.schema import DataConfig

    ds = load_dataset("sklearn:digits", val_size=0.1)
    config = {"input_size": (3, 32, 32), "mean": (0.5,) * 3, "std": (0.5,) * 3, "crop_pct": 1.0}
    unset = DataConfig(spec="sklearn:digits", batch_size=32, num_workers=0)
    assert build_loaders(ds, config, unset).eval["validation"].batch_size == 64  # 2 x batch, as on a GPU
    cpu = build_loaders(ds, config, unset, default_eval_batch=CPU_EVAL_BATCH_SIZE)
    assert cpu.eval["validation"].batch_size == CPU_EVAL_BATCH_SIZE == 16
    chosen = DataConfig(spec="sklearn:digits", batch_size=32, eval_batch_size=48, num_workers=0)
    assert build_loaders(ds, config, chosen, default_eval_batch=16).eval["validation"].batch_size == 48
    # zoo eval and the final evaluation: by the model's device, unless a batch is given
    layer = torch.nn.Linear(2, 2)
    assert eval_batch_size(layer) == 16 and eval_batch_size(layer, 5) == 5 and EVAL_BATCH_SIZE == 64


def test_a_cpu_run_evaluates_in_cpu_sized_batches(monkeypatch, tmp_path):
    from zoo.train import context

    seen = {}
    real = context.build_loaders

    def spy(*a, **k):
        seen.update(k)
        return real(*a, **k)

    monkeypatch.setattr(context, "build_loaders", spy)
    recipe = load_recipe(
        {
            "name": "b",
            "model": {"name": "timm:test_resnet", "pretrained": False},
            "data": {"spec": "sklearn:digits", "image_size": 32, "batch_size": 32, "num_workers": 0},
            "train": {"epochs": 1},
            "output": {"dir": str(tmp_path)},
        }
    )
    from zoo.train.layout import RunLayout

    ctx = context.build_context(recipe, RunLayout.of(recipe), 0.0)
    assert ctx.accelerator.device.type == "cpu" and seen["default_eval_batch"] == 16


# ---- forked loader workers ------------------------------------------------------------------------------------
@pytest.mark.skipif(not sys.platform.startswith("linux") or cpu_memory._glibc() is None, reason="glibc only")
def test_a_forked_worker_hands_back_the_free_memory_it_inherited():
    """A trainer holding 120 MiB of freed (kept) memory forks a worker. Without the release the worker maps
    those pages too (copy-on-write: the trainer's next writes copy them); with it, they leave the worker."""
    script = textwrap.dedent(
        """
        import json, os, sys
        import numpy as np
        from zoo.cpu_memory import keep_freed_memory, release_inherited_memory
        keep_freed_memory(env={})
        blocks = [np.ones(2**19) for _ in range(30)]  # 120 MiB written, then freed: kept by the allocator
        del blocks
        def rss_mib():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        out = {}
        for release in (False, True):
            r, w = os.pipe()
            if os.fork() == 0:
                if release:
                    release_inherited_memory(0)
                os.write(w, str(rss_mib()).encode())
                os._exit(0)
            os.wait()
            out[str(release)] = float(os.read(r, 64))
        print(json.dumps(out))
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    rss = json.loads(run.stdout)
    assert rss["False"] - rss["True"] > 100  # MiB of inherited free heap handed back


def test_every_loader_worker_starts_by_handing_back_inherited_memory():
    from zoo.cpu_memory import release_inherited_memory
    from zoo.data import load_dataset
    from zoo.data.loaders import build_loaders
    from zoo.train.schema import DataConfig

    ds = load_dataset("sklearn:digits", val_size=0.1)
    config = {"input_size": (3, 32, 32), "mean": (0.5,) * 3, "std": (0.5,) * 3, "crop_pct": 1.0}
    for fast in (True, False):
        loaders = build_loaders(ds, config, DataConfig(spec="sklearn:digits", batch_size=32, fast=fast))
        for loader in (loaders.train, loaders.train_plain, *loaders.eval.values()):
            assert loader.worker_init_fn is release_inherited_memory
