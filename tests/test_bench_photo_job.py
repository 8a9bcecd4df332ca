"""benchmarks/bench_photo_job.py: timm's train.py only as pinned, the same settings for all three,
results read right."""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import pytest

from zoo.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_photo_job", ROOT / "benchmarks" / "bench_photo_job.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_modified_timm_train_is_refused(bench, tmp_path, monkeypatch):
    fake = tmp_path / "timm_train.py"
    fake.write_text("print('not timm')\n")
    monkeypatch.setenv("ZOO_TIMM_TRAIN", str(fake))
    with pytest.raises(ConfigError, match="sha256"):
        bench.timm_train_script()
    monkeypatch.setenv("ZOO_TIMM_TRAIN", str(tmp_path / "missing.py"))
    with pytest.raises(ConfigError, match="not found"):
        bench.timm_train_script()


def _args(**kw):
    base = dict(epochs=3, batch_size=24, workers=5, warmup_epochs=1, device="cpu", zoo_override=[])
    return argparse.Namespace(**{**base, **kw})


@pytest.mark.parametrize("precision, timm_amp", [("bf16", ["--amp", "--amp-dtype", "bfloat16"]), ("no", [])])
def test_every_tool_gets_the_same_settings(bench, tmp_path, precision, timm_amp):
    cmds = bench.commands(
        _args(), tmp_path / "data", tmp_path / "w.safetensors", tmp_path, precision, Path("timm_train.py")
    )
    zoo, timm, tut = (" ".join(cmds[t]) for t in ("zoo", "timm", "tutorial"))
    assert "train.epochs=3" in zoo and "--epochs 3" in timm and "--epochs 3" in tut
    assert "data.batch_size=24" in zoo and "-b 24" in timm and "--batch-size 24" in tut
    assert "data.num_workers=5" in zoo and "-j 5" in timm and "--workers 5" in tut
    assert "schedule.warmup_epochs=1" in zoo and "--warmup-epochs 1" in timm and "--warmup-epochs 1" in tut
    assert "mixed_precision" not in zoo  # zoo runs the recipe's own `auto`
    assert (" ".join(timm_amp) in timm) if timm_amp else "--amp" not in timm
    assert f"--precision {precision}" in tut
    assert cmds["zoo-fp32"][-1] == "train.mixed_precision=no"


def test_results_are_read_as_each_tool_reports_them(bench, tmp_path):
    (tmp_path / "timm").mkdir()
    (tmp_path / "timm" / "summary.csv").write_text(
        "epoch,train_loss,eval_loss,eval_top1,eval_top5,lr\n0,2.3,2.1,40.0,80.0,1e-4\n1,2.0,1.9,62.5,90.0,1e-5\n"
    )
    log = tmp_path / "timm.log"
    log.write_text(
        "Train: 0 [   0/5 (  0%)]  Loss: 2.31 (2.31)  Time: 9.000s,    1.78/s  (9.000s,    1.78/s)  LR: 1e-5\n"
        "Train: 0 [   4/5 (100%)]  Loss: 2.20 (2.25)  Time: 2.000s,    8.00/s  (3.000s,    5.33/s)  LR: 1e-4\n"
        "Train: 1 [   4/5 (100%)]  Loss: 2.00 (2.05)  Time: 2.000s,    8.00/s  (2.500s,    6.40/s)  LR: 1e-5\n"
    )
    got = bench.read_result("timm", tmp_path, log)
    assert got["train_seconds"] == pytest.approx(5 * 3.0 + 5 * 2.5) and got["test_top1"] == pytest.approx(0.625)
    run = tmp_path / "zoo" / "fruits-finetune"
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text(
        json.dumps({"kind": "epoch"})
        + "\n"
        + json.dumps(
            {
                "kind": "final",
                "top1": 0.7,
                "train_seconds": 10.0,
                "images_per_sec": 16.0,
                "environment": {"mixed_precision": "bf16"},
            }
        )
        + "\n"
    )
    got = bench.read_result("zoo", tmp_path, log)
    assert got == {"train_seconds": 10.0, "train_images": 160, "test_top1": 0.7, "precision": "bf16"}
    tut = tmp_path / "tut.log"
    tut.write_text("epoch 1: ...\n" + json.dumps({"train_seconds": 4.0, "train_images": 80, "test_top1": 0.5}) + "\n")
    assert bench.read_result("tutorial", tmp_path, tut)["train_images"] == 80


def test_medians_and_ratios(bench):
    rows = [
        {
            "tool": t,
            "error": "",
            "wall_seconds": w,
            "train_seconds": 1,
            "train_images_per_sec": v,
            "peak_pss_mb": 1,
            "test_top1": 0.5,
            "precision": "no",
        }
        for t, w, v in [("zoo", 10, 4), ("zoo", 12, 6), ("zoo", 50, 100), ("timm", 20, 2), ("timm", 20, 3)]
    ]
    rows.append({**rows[0], "tool": "timm", "error": "boom", "train_images_per_sec": 1000})
    med = {r["tool"]: r for r in bench.median_rows(rows)}
    assert med["zoo"]["train_images_per_sec"] == 6 and med["timm"]["runs"] == 2  # the failed run is left out
    assert med["timm"]["zoo_speed_ratio"] == pytest.approx(6 / 2.5, abs=1e-3)
    assert med["timm"]["zoo_wall_ratio"] == pytest.approx(20 / 12, abs=1e-3)
