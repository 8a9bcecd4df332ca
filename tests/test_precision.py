"""train.mixed_precision: auto picks what the device computes natively; an emulated bf16 says what it costs.

Each kind of device is stood in for by its capability probe (the CPU's flags and torch's CPU capability, or
CUDA's bf16 support), never by mocking the training itself.
"""

from __future__ import annotations

import json
import logging

import pytest
import torch

from zoo.train import precision as P
from zoo.train.accelerator import new_accelerator
from zoo.train.recipe import load_recipe

CPU = torch.device("cpu")
CUDA = torch.device("cuda", 0)


def fake_cpu(monkeypatch, capability: str, flags: set[str]) -> None:
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    monkeypatch.setattr(P, "cpu_flags", lambda: {"fpu", "sse2", "avx2", *flags})


def fake_gpu(monkeypatch, bf16: bool, name: str, cc: tuple[int, int]) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: name)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: cc)


# ---- the decision on each kind of device --------------------------------------------------------------------
@pytest.mark.parametrize(
    "capability, flags, expected",
    [
        ("AVX2", set(), "no"),  # laptop-class CPU (the machine)
        ("AVX512", set(), "no"),  # AVX-512 without bf16 (Skylake-SP)
        ("AVX512", {"avx512_bf16"}, "bf16"),  # Cooper Lake, Zen 4
        ("AVX512", {"amx_bf16", "amx_tile"}, "bf16"),  # Sapphire Rapids (AMX)
        ("AVX2", {"avx512_bf16", "amx_bf16"}, "no"),  # torch's kernels capped below AVX-512
    ],
)
def test_auto_on_cpus(monkeypatch, capability, flags, expected):
    fake_cpu(monkeypatch, capability, flags)
    choice = P.choose_precision("auto", CPU)
    assert choice.precision == expected and choice.requested == "auto" and choice.warning is None
    assert capability in choice.reason or any(f in choice.reason for f in flags)


def test_auto_respects_a_onednn_isa_cap(monkeypatch):
    fake_cpu(monkeypatch, "AVX512", {"amx_bf16"})
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert P.choose_precision("auto", CPU).precision == "no"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")
    assert P.choose_precision("auto", CPU).precision == "bf16"


@pytest.mark.parametrize(
    "bf16, name, cc, expected",
    [
        (True, "NVIDIA H200", (9, 0), "bf16"),
        (True, "NVIDIA A100-SXM4-40GB", (8, 0), "bf16"),
        (False, "Tesla T4", (7, 5), "fp16"),  # no bf16: fp16 with accelerate's grad scaler
        (False, "Tesla V100-SXM2-16GB", (7, 0), "fp16"),
    ],
)
def test_auto_on_gpus(monkeypatch, bf16, name, cc, expected):
    fake_gpu(monkeypatch, bf16, name, cc)
    choice = P.choose_precision("auto", CUDA)
    assert choice.precision == expected and name in choice.reason and f"{cc[0]}.{cc[1]}" in choice.reason
    assert ("scaler" in choice.describe()) == (expected == "fp16")


def test_other_devices_train_in_fp32():
    assert P.choose_precision("auto", torch.device("mps")).precision == "no"


@pytest.mark.parametrize("asked", ["no", "fp16", "bf16"])
def test_an_explicit_precision_is_honoured(monkeypatch, asked):
    fake_cpu(monkeypatch, "AVX512", {"amx_bf16"})
    assert P.choose_precision(asked, CPU).precision == asked
    fake_gpu(monkeypatch, False, "Tesla T4", (7, 5))
    assert P.choose_precision(asked, CUDA).precision == asked


def test_explicit_bf16_on_an_emulating_cpu_warns_with_cost_and_fix(monkeypatch):
    fake_cpu(monkeypatch, "AVX2", set())
    choice = P.choose_precision("bf16", CPU)
    assert choice.precision == "bf16" and choice.warning  # runs as asked
    assert "8x slower" in choice.warning and "train.mixed_precision=auto" in choice.warning
    fake_cpu(monkeypatch, "AVX512", {"avx512_bf16"})
    assert P.choose_precision("bf16", CPU).warning is None  # native: nothing to say


def test_cpu_flags_reads_proc_cpuinfo():
    flags = P.cpu_flags()
    assert not flags or "fpu" in flags  # every x86 Linux lists fpu; elsewhere the set is empty


# ---- the accelerator: what it gets, what it says, once -------------------------------------------------------
@pytest.mark.parametrize(
    "capability, flags, asked, expected",
    [
        ("AVX2", set(), "auto", "no"),
        ("AVX512", {"amx_bf16"}, "auto", "bf16"),
        ("AVX2", set(), "bf16", "bf16"),
    ],
)
def test_accelerator_trains_in_the_chosen_precision(
    monkeypatch, tmp_path, capsys, caplog, capability, flags, asked, expected
):
    fake_cpu(monkeypatch, capability, flags)
    recipe = load_recipe({"name": "r", "train": {"mixed_precision": asked}})
    with caplog.at_level(logging.WARNING, logger="zoo.train"):
        acc = new_accelerator(recipe, tmp_path)
    assert str(acc.mixed_precision) == expected
    out = capsys.readouterr().out
    assert out.count("[r] precision ") == 1 and f"({asked}: " in out
    warned = [r for r in caplog.records if "emulated" in r.getMessage()]
    assert len(warned) == (1 if asked == "bf16" else 0)


def test_the_run_records_the_resolved_precision(monkeypatch, tmp_path, photo_corpus, capsys):
    from zoo.train.run import train

    fake_cpu(monkeypatch, "AVX2", set())
    [s] = train(
        {
            "name": "p",
            "model": {"name": "timm:test_resnet", "pretrained": False},
            "data": {
                "spec": f"imagefolder:{photo_corpus}",
                "image_size": 32,
                "batch_size": 8,
                "limit": 8,
                "val_size": 0.2,
                "num_workers": 0,
            },
            "train": {"epochs": 1},
            "output": {"dir": str(tmp_path)},
            "resume": "never",
        }
    )
    assert "[p] precision fp32 (auto: the CPU kernels run at AVX2" in capsys.readouterr().out
    final = [json.loads(line) for line in (tmp_path / "p" / "metrics.jsonl").read_text().splitlines()][-1]
    env = final["environment"]
    assert env["mixed_precision"] == "no" and env["mixed_precision_requested"] == "auto"
    assert "AVX2" in env["mixed_precision_reason"]
