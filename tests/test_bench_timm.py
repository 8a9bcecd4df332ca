"""The timm comparison: timm's own benchmark.py, hash-checked and unchanged; one protocol for both sides
(fresh process per tool, model and run; zoo and timm interleaved; median, min and max); unlike settings refused.

A stand-in script with timm's command line and '--result' JSON checks the plumbing fast (its hash is pinned
for the test only); the real file runs in the slow test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import zoo
from zoo.bench import measure, worker
from zoo.bench import results as report
from zoo.bench import runs as bench_runs
from zoo.bench import timm_anchor as ta
from zoo.cli import main
from zoo.errors import ConfigError

REAL_SCRIPT = ta.find_timm_script()


def needs_real_script(test):
    """An anchor test: it skips without the script, but fails instead where CI sets ZOO_REQUIRE_ANCHORS=1."""
    skip = pytest.mark.skipif(not REAL_SCRIPT.is_file(), reason=f"timm's benchmark.py not at {REAL_SCRIPT}")
    return pytest.mark.anchors(skip(test))


FAKE_TIMM = """\
import argparse, json, sys
p = argparse.ArgumentParser()
for opt in ("--model", "--bench", "--batch-size", "--img-size", "--precision", "--num-warm-iter",
            "--num-bench-iter", "--device", "--torchcompile"):
    p.add_argument(opt)
p.add_argument("--channels-last", action="store_true")
a = p.parse_args()
res = {"model": a.model, "argv": sys.argv[1:]}
for phase in ("infer", "train") if a.bench == "both" else ("infer",):
    res.update({phase + "_samples_per_sec": 50.0, phase + "_batch_size": int(a.batch_size),
                phase + "_img_size": int(a.img_size)})
print("log line before the result")
print("--result\\n" + json.dumps(res))
"""


@pytest.fixture
def fake_timm(tmp_path, monkeypatch):
    script = tmp_path / "fake_benchmark.py"
    script.write_text(FAKE_TIMM)
    monkeypatch.setattr(ta, "TIMM_SCRIPT_SHA256", ta.sha256_of(script))  # pinned for this test only
    return script


# ---- the script itself: found beside the checkout, hash-checked, refused when changed ----------------
def test_the_script_is_found_beside_the_checkout_or_from_the_env_var(tmp_path, monkeypatch):
    monkeypatch.delenv(ta.TIMM_SCRIPT_ENV, raising=False)
    repo = Path(zoo.__file__).resolve().parents[1]
    assert ta.find_timm_script() == (repo / ".." / "shared" / "third_party" / "timm_benchmark.py").resolve()
    monkeypatch.setenv(ta.TIMM_SCRIPT_ENV, str(tmp_path / "elsewhere.py"))
    assert ta.find_timm_script() == tmp_path / "elsewhere.py"


@needs_real_script
def test_the_real_script_passes_and_an_edited_copy_is_refused(tmp_path):
    path, digest = ta.require_timm_script(REAL_SCRIPT)
    assert digest == ta.TIMM_SCRIPT_SHA256 == "c2257b70ef9cd6e1dbc19a86cc5d0daea0505649a82352add58013d0382ed1ba"
    edited = tmp_path / "timm_benchmark.py"
    edited.write_bytes(REAL_SCRIPT.read_bytes().replace(b"torch.inference_mode()", b"torch.no_grad()"))
    with pytest.raises(ConfigError, match="not timm's benchmark.py as pinned: sha256"):
        ta.require_timm_script(edited)
    with pytest.raises(ConfigError, match="not found.*shared/third_party"):
        ta.require_timm_script(tmp_path / "missing.py")


def test_cli_refuses_another_script_with_exit_2(tmp_path, capsys):
    other = tmp_path / "benchmark.py"
    other.write_text("print('not timm')\n")
    rc = main(
        [
            "bench",
            "backbones",
            "timm:test_resnet",
            "--timm-compare",
            "--timm-script",
            str(other),
            "--out",
            str(tmp_path / "x.csv"),
        ]
    )
    assert rc == 2 and "sha256" in capsys.readouterr().err


# ---- same settings on both sides, or refused -----------------------------------------------------------
def test_timm_argv_carries_every_setting_and_reads_back_equal():
    cfg = measure.BenchConfig(precision="bf16", channels_last=True, compile=True, warmup=12, iters=25)
    argv = ta.timm_argv("resnet18", 8, 160, cfg)
    assert argv[argv.index("--img-size") + 1] == "160"  # always explicit: timm would use the test size
    assert argv[argv.index("--precision") + 1] == "amp_bfloat16"  # autocast, as zoo's bf16
    assert "--channels-last" in argv and argv[argv.index("--torchcompile") + 1] == "inductor"
    assert ta.settings_differences(ta.expected_settings(8, 160, cfg), ta.argv_settings(argv)) == []
    ta.check_comparable(argv, 8, 160, cfg)


@pytest.mark.parametrize(
    "extra, what",
    [
        ("--torchcompile", "compile"),
        ("--amp", "precision"),
        ("--img-size 100", "img_size"),
        ("--num-bench-iter 50", "iters"),
        ("--channels-last", "channels_last"),
        ("--reparam", "other"),
    ],
)
def test_a_comparison_whose_settings_differ_is_refused(extra, what):
    cfg = measure.BenchConfig(timm_args=tuple(extra.split()))
    with pytest.raises(ConfigError, match=f"refusing to compare.*{what}: zoo"):
        bench_runs.refuse_unlike(cfg)


def test_cli_refuses_compile_against_eager_timm_before_running_anything(tmp_path, capsys, fake_timm):
    rc = main(
        [
            "bench",
            "backbones",
            "timm:test_resnet",
            "--timm-compare",
            "--timm-script",
            str(fake_timm),
            "--timm-args=--torchcompile",
            "--out",
            str(tmp_path / "x.csv"),
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "compile: zoo None, timm 'inductor'" in err and "Fix:" in err
    assert not (tmp_path / "x.csv").exists()


def test_fp16_training_on_cuda_is_refused_not_printed():
    with pytest.raises(ConfigError, match="GradScaler"):
        bench_runs.refuse_unlike(measure.BenchConfig(device="cuda", precision="fp16"))
    bench_runs.refuse_unlike(measure.BenchConfig(device="cuda", precision="fp16", train=False))
    with pytest.raises(ConfigError, match="at least 5 timed steps"):  # timm's script divides by iters // 5
        bench_runs.refuse_unlike(measure.BenchConfig(iters=4))


# ---- the interleaved protocol and its summary ------------------------------------------------------------
def _zoo_row(rate: float, batch: int = 4) -> dict:
    return {
        "model": "timm:m",
        "timm_model": "m",
        "infer_batch_size": batch,
        "infer_img_size": 32,
        "train_batch_size": batch,
        "train_img_size": 32,
        "infer_samples_per_sec": rate,
        "train_samples_per_sec": rate / 4,
        "infer_peak_mem_mb": 1.0,
        "train_peak_mem_mb": 2.0,
    }


def test_runs_alternate_zoo_and_timm_in_fresh_processes_and_pair_the_ratios(monkeypatch, fake_timm):
    calls, zoo_rates, timm_rates = [], iter([100.0, 90.0, 120.0]), iter([100.0, 100.0, 80.0])

    def worker(name, cfg):
        calls.append("zoo")
        return _zoo_row(next(zoo_rates))

    def timm_once(script, digest, argv, env, timeout_s):
        calls.append("timm")
        assert argv[argv.index("--bench") + 1] == "both" and argv[argv.index("--model") + 1] == "m"
        rate = next(timm_rates)
        return {
            f"{p}_{k}": v
            for p in ("infer", "train")
            for k, v in (("samples_per_sec", rate if p == "infer" else rate / 4), ("batch_size", 4), ("img_size", 32))
        }

    monkeypatch.setattr(bench_runs, "run_worker", worker)
    monkeypatch.setattr(bench_runs, "run_timm_once", timm_once)
    cfg = measure.BenchConfig(runs=3, batch_size=4, img_size=32)
    [row] = bench_runs.benchmark_backbones(["timm:m"], cfg, timm_compare=True, timm_script=fake_timm, progress=False)
    assert calls == ["zoo", "timm"] * 3
    assert (row["infer_samples_per_sec"], row["infer_samples_per_sec_min"], row["infer_samples_per_sec_max"]) == (
        100.0,
        90.0,
        120.0,
    )
    assert row["timm_infer_samples_per_sec"] == 100.0
    # pairs 1.0, 0.9, 1.5: the median pair ratio, not median/median (which would be 1.0 too, by chance)
    assert (row["infer_vs_timm"], row["infer_vs_timm_min"], row["infer_vs_timm_max"]) == (1.0, 0.9, 1.5)
    assert row["train_vs_timm"] == 1.0 and row["runs"] == 3 and row["timm_script_sha256"]


def test_a_run_pair_whose_reported_batch_differs_is_not_compared():
    zoo_runs = [_zoo_row(100.0, batch=8)]
    timm_runs = [{"infer_samples_per_sec": 50.0, "infer_batch_size": 4, "infer_img_size": 32}]  # timm halved
    row = bench_runs.summarize(zoo_runs, timm_runs, ["infer"])
    assert "infer_batch_size: zoo 8, timm 4" in row["error"] and row.get("infer_vs_timm") is None


def test_threads_reach_every_process_through_one_environment():
    env = worker.child_env(measure.BenchConfig(threads=1))
    assert env["OMP_NUM_THREADS"] == "1" and env["HF_HUB_OFFLINE"] == "1"


def test_bench_backbones_cli_writes_csv_markdown_and_plot(tmp_path, capsys, fake_timm, monkeypatch):
    # zoo's runs measured in this process to stay fast (the subprocess itself: the slow test below and
    # test_bench.py's failing-model test); timm's side is a real process of the stand-in script
    monkeypatch.setattr(bench_runs, "run_worker", measure.measure_model)
    out = tmp_path / "bb.csv"
    rc = main(
        [
            "bench",
            "backbones",
            "timm:test_resnet",
            "--img-size",
            "32",
            "--warmup",
            "1",
            "--iters",
            "5",
            "--runs",
            "2",
            "--batch-size",
            "2",
            "--out",
            str(out),
            "--timm-compare",
            "--timm-script",
            str(fake_timm),
            "--note",
            "the machine was shared",
        ]
    )
    assert rc == 0
    [row] = report.read_csv(out)
    assert list(row)[: len(report.COLUMNS)] == list(report.COLUMNS)
    model = zoo.create_model("timm:test_resnet", pretrained=False)
    assert row["param_count"] == pytest.approx(sum(p.numel() for p in model.parameters()) / 1e6, abs=0.006)
    assert row["infer_gmacs"] == pytest.approx(measure.count_gmacs(model, (3, 32, 32)), abs=0.0006)
    assert row["infer_img_size"] == 32 and row["infer_batch_size"] == 2 and row["train_batch_size"] == 2
    assert row["runs"] == 2 and row["warmup"] == 1 and row["iters"] == 5 and row["threads"] >= 1
    for phase in ("infer", "train"):
        runs = json.loads(row[f"{phase}_runs_samples_per_sec"])
        assert len(runs) == 2  # one fresh process per run
        rate = row[f"{phase}_samples_per_sec"]
        assert row[f"{phase}_samples_per_sec_min"] <= rate <= row[f"{phase}_samples_per_sec_max"]
        assert row[f"{phase}_samples_per_sec"] * row[f"{phase}_step_time"] / 1000 == pytest.approx(2, rel=0.01)
        assert row[f"timm_{phase}_samples_per_sec"] == 50.0  # what the stand-in reports
        pairs = [r / 50.0 for r in runs]
        assert row[f"{phase}_vs_timm"] == pytest.approx(sorted(pairs)[0] / 2 + sorted(pairs)[1] / 2, abs=1e-3)
    assert row["timm_script_sha256"] == ta.sha256_of(fake_timm)
    assert row["error"] is None and row["device"] == "cpu" and row["precision"] == "fp32"
    md = out.with_suffix(".md").read_text()
    assert "| timm:test_resnet |" in md and f"**torch**: {torch.__version__}" in md
    assert ta.sha256_of(fake_timm) in md and "the machine was shared" in md and "BELOW THE PROTOCOL" in md
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    printed = capsys.readouterr().out
    assert "timm:test_resnet" in printed and "train zoo/timm" in printed


@pytest.mark.slow
@needs_real_script
def test_real_timm_script_beside_zoo_on_cpu(tmp_path):
    """timm's own file, one run each side: both phases measured at the same batch and size, hash recorded."""
    out = tmp_path / "bb.csv"
    rc = main(
        [
            "bench",
            "backbones",
            "timm:test_resnet",
            "--img-size",
            "32",
            "--batch-size",
            "2",
            "--warmup",
            "1",
            "--iters",
            "5",
            "--runs",
            "1",
            "--threads",
            "1",
            "--timm-compare",
            "--out",
            str(out),
            "--no-plot",
        ]
    )
    [row] = report.read_csv(out)
    assert rc == 0, row["error"]
    assert row["timm_script_sha256"] == ta.TIMM_SCRIPT_SHA256 and row["threads"] == 1
    for phase in ("infer", "train"):
        assert row[f"timm_{phase}_samples_per_sec"] > 0 and row[f"{phase}_vs_timm"] > 0
    assert row["timm_img_size"] == 32
