"""`zoo bench backbones`: measurement pieces, the results files, the CLI and the timm comparison.

Timings here are never asserted against numbers (the CPU is shared); only their consistency is.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import zoo
from zoo.bench import backbones as bb
from zoo.bench import report
from zoo.cli import main
from zoo.errors import ConfigError

TINY = dict(img_size=32, warmup=1, iters=1, runs=2, batch_size=2)
TIMM_SCRIPT = bb.default_timm_script()
needs_timm_script = pytest.mark.skipif(
    not TIMM_SCRIPT.is_file(), reason="timm's benchmark.py not fetched: python benchmarks/third_party/"
                                      "fetch_timm_benchmark.py")


# ---- median, timing, OOM --------------------------------------------------------------------------
def test_median_rate_uses_the_median_run_not_the_mean():
    rate, step_ms = bb.median_rate([1.0, 9.0, 2.0], batch_size=8, iters=4)  # mean would be 4 s
    assert rate == pytest.approx(8 * 4 / 2.0)
    assert step_ms == pytest.approx(500.0)
    assert bb.median_rate([1.0, 2.0, 3.0, 10.0], 1, 1)[0] == pytest.approx(1 / 2.5)
    with pytest.raises(ValueError):
        bb.median_rate([], 1, 1)


def test_timed_runs_warms_up_then_times_each_run_and_syncs():
    calls, syncs = [], []
    seconds = bb.timed_runs(lambda: calls.append(1), warmup=2, iters=3, runs=4, sync=lambda: syncs.append(1))
    assert len(calls) == 2 + 3 * 4
    assert len(seconds) == 4 and all(s >= 0 for s in seconds)
    assert len(syncs) == 1 + 4  # after the warm-up and closing every timed run


def test_oom_halves_the_batch_until_it_fits_and_reports_the_batch_used():
    tried, retries = [], []

    def step(batch: int) -> str:
        tried.append(batch)
        if batch > 5:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory at batch {batch}")
        return f"ran {batch}"

    result, used = bb.with_oom_halving(step, 32, on_retry=lambda b, why: retries.append((b, why)))
    assert (result, used) == ("ran 4", 4)
    assert tried == [32, 16, 8, 4]
    assert [b for b, _ in retries] == [16, 8, 4] and "out of memory" in retries[0][1]


def test_oom_halving_recognises_cpu_allocator_errors_and_reraises_everything_else():
    def cpu_oom(batch: int) -> int:
        if batch > 1:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 99 GB")
        return batch

    assert bb.with_oom_halving(cpu_oom, 8) == (1, 1)
    with pytest.raises(ValueError, match="shape"):  # not an OOM: no retry
        bb.with_oom_halving(lambda b: (_ for _ in ()).throw(ValueError("bad shape")), 8)
    with pytest.raises(torch.cuda.OutOfMemoryError):  # still OOM at batch 1: give up, say so
        bb.with_oom_halving(lambda b: (_ for _ in ()).throw(torch.cuda.OutOfMemoryError("oom")), 1)


def test_measure_model_records_the_halved_batch_after_a_simulated_oom(monkeypatch):
    real = bb.measure_inference

    def fake_oom_above_2(model, batch, input_size, cfg):
        if batch > 2:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory (simulated at batch {batch})")
        return real(model, batch, input_size, cfg)

    monkeypatch.setattr(bb, "measure_inference", fake_oom_above_2)
    row = bb.measure_model("timm:test_resnet", bb.BenchConfig(**{**TINY, "batch_size": 8, "train": False}))
    assert row["infer_batch_size"] == 2  # 8 -> 4 -> 2
    assert row["infer_samples_per_sec"] > 0


# ---- GMACs, memory, config ------------------------------------------------------------------------
def _macs_from_layer_shapes(model: torch.nn.Module, input_size: tuple[int, int, int]) -> float:
    """Independent count: conv MACs = H_out*W_out*C_out*(C_in/groups)*k*k, linear = in*out."""
    total = 0

    def conv_hook(m, _inp, out):
        nonlocal total
        kh, kw = m.kernel_size
        total += out.shape[2] * out.shape[3] * m.out_channels * (m.in_channels // m.groups) * kh * kw

    def linear_hook(m, _inp, _out):
        nonlocal total
        total += m.in_features * m.out_features

    hooks = [m.register_forward_hook(conv_hook if isinstance(m, torch.nn.Conv2d) else linear_hook)
             for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        model.eval()(torch.randn(1, *input_size))
    for h in hooks:
        h.remove()
    return total / 1e9


def test_gmacs_of_torchvision_resnet18_matches_layer_arithmetic_and_the_published_figure():
    model = zoo.create_model("tv:resnet18", pretrained=False)
    gmacs = bb.count_gmacs(model, (3, 224, 224))
    assert gmacs == pytest.approx(_macs_from_layer_shapes(model, (3, 224, 224)), rel=0.01)
    assert gmacs == pytest.approx(1.82, rel=0.02)  # torchvision's model card: 1.81 GFLOPS (they mean MACs)


def test_peak_memory_on_cpu_sees_what_the_phase_allocates():
    with bb.PeakMemory("cpu") as mem:
        big = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched so it is resident
        del big
    assert mem.method in ("rss_hwm_delta", "rss_sampled_delta")
    assert 60 <= mem.peak_mb < 200
    with bb.PeakMemory("cpu") as quiet:
        pass
    assert quiet.peak_mb < 30


def test_bench_config_rejects_bad_values_with_the_fix():
    with pytest.raises(ConfigError, match="'fp8'.*--precision"):
        bb.BenchConfig(precision="fp8").validate()
    with pytest.raises(ConfigError, match="'tpu'.*--device cpu"):
        bb.BenchConfig(device="tpu").validate()
    with pytest.raises(ConfigError, match="iters=0"):
        bb.BenchConfig(iters=0).validate()
    with pytest.raises(ConfigError, match="bogus"):
        bb.BenchConfig.from_dict({"bogus": 1})


def test_device_slug_and_default_output_name():
    assert bb.device_slug("cpu") == f"cpu-{bb.cpu_cores()}core"
    assert report.slugify("NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3"
    out = bb.default_output(bb.BenchConfig(precision="bf16", channels_last=True))
    assert out == Path("benchmarks/results") / f"backbones_cpu-{bb.cpu_cores()}core_bf16_cl.csv"


# ---- report: CSV, Markdown, plot ------------------------------------------------------------------
ROWS = [{"model": "a", "gmacs": 1.5, "ips": 120.0, "note": None},
        {"model": "b|c", "gmacs": 4.0, "ips": 30.25, "extra": True}]


def test_csv_round_trip_keeps_numbers_and_empty_cells(tmp_path):
    path = report.write_csv(ROWS, tmp_path / "sub" / "r.csv")
    back = report.read_csv(path)
    assert back[0] == {"model": "a", "gmacs": 1.5, "ips": 120.0, "note": None, "extra": None}
    assert back[1]["extra"] is True and back[1]["ips"] == 30.25


def test_markdown_has_metadata_table_and_image(tmp_path):
    md = report.write_markdown(ROWS, tmp_path / "r.md", ["model", "gmacs", "ips"], title="T",
                               meta={"device": "cpu", "torch": "x", "skipped": None}, notes=["n1"],
                               image=tmp_path / "r.png").read_text()
    assert md.startswith("# T")
    assert "- **device**: cpu" in md and "skipped" not in md
    assert "| model | gmacs | ips |\n|:---|---:|---:|" in md
    assert "| b\\|c | 4.00 | 30.25 |" in md  # pipes escaped, numbers formatted
    assert "![r](r.png)" in md and "- n1" in md


def test_scatter_plot_writes_a_png_and_refuses_nothing_to_plot(tmp_path):
    png = report.scatter_plot(ROWS, "gmacs", "ips", tmp_path / "p.png", logx=True, logy=True, title="t")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="'nope'"):
        report.scatter_plot(ROWS, "nope", "ips", tmp_path / "q.png")


FAKE_TIMM = """\
import argparse, json
parser = argparse.ArgumentParser()
for opt in ("--model", "--bench", "--batch-size", "--img-size", "--precision", "--num-warm-iter",
            "--num-bench-iter"):
    parser.add_argument(opt)
parser.add_argument("--channels-last", action="store_true")

def main():
    args = parser.parse_args()
    print("log line before the result")
    print("--result\\n" + json.dumps({"model": args.model, "infer_samples_per_sec": 50.0, "argv": vars(args)}))
"""


# ---- the command --------------------------------------------------------------------------------
def test_bench_backbones_help_reads_well(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "backbones", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for word in ("--timm-compare", "--precision", "--channels-last", "--compile", "infer_samples_per_sec",
                 "median"):
        assert word in text


def test_bench_backbones_cli_writes_csv_markdown_and_plot(tmp_path, capsys):
    out = tmp_path / "bb.csv"
    fake_timm = tmp_path / "fake_benchmark.py"
    fake_timm.write_text(FAKE_TIMM)
    rc = main(["bench", "backbones", "timm:test_resnet", "tv:resnet18", "--img-size", "32", "--warmup", "1",
               "--iters", "1", "--runs", "2", "--batch-size", "2", "--out", str(out),
               "--timm-compare", "--timm-script", str(fake_timm)])
    assert rc == 0
    rows = report.read_csv(out)
    assert [r["model"] for r in rows] == ["timm:test_resnet", "tv:resnet18"]
    assert list(rows[0])[: len(bb.COLUMNS)] == list(bb.COLUMNS)
    for row in rows:
        model = zoo.create_model(row["model"], pretrained=False)
        assert row["param_count"] == pytest.approx(sum(p.numel() for p in model.parameters()) / 1e6, abs=0.006)
        assert row["infer_gmacs"] == pytest.approx(bb.count_gmacs(model, (3, 32, 32)), abs=0.0006)
        assert row["infer_img_size"] == 32 and row["infer_batch_size"] == 2 and row["train_batch_size"] == 2
        for phase in ("infer", "train"):
            assert row[f"{phase}_samples_per_sec"] > 0 and row[f"{phase}_peak_mem_mb"] >= 0
            # the two columns describe the same median run: images/s x s/step = batch
            assert row[f"{phase}_samples_per_sec"] * row[f"{phase}_step_time"] / 1000 == pytest.approx(2, rel=0.01)
        assert row["error"] is None and row["device"] == "cpu" and row["precision"] == "fp32"
    timm_row, tv_row = rows
    assert timm_row["timm_model"] == "test_resnet" and timm_row["timm_infer_samples_per_sec"] == 50.0
    assert timm_row["infer_vs_timm"] == pytest.approx(timm_row["infer_samples_per_sec"] / 50.0, abs=6e-4)
    assert tv_row["timm_model"] is None and tv_row["infer_vs_timm"] is None  # no timm counterpart
    md = out.with_suffix(".md").read_text()
    assert "| tv:resnet18 |" in md and f"**torch**: {torch.__version__}" in md and "**device**:" in md
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    printed = capsys.readouterr().out
    assert "timm:test_resnet" in printed and "tv:resnet18" in printed  # model names never fold


def test_a_model_that_fails_gets_an_error_row_and_a_nonzero_exit(tmp_path, capsys):
    row = bb.run_worker("timm:no_such_model", bb.BenchConfig(**TINY))
    assert row["model"] == "timm:no_such_model" and "no_such_model" in row["error"]
    assert main(["bench", "backbones", "timm:test_resnet", "--device", "tpu", "--out", str(tmp_path / "x.csv")]) == 2
    assert "'tpu'" in capsys.readouterr().err


# ---- the timm comparison --------------------------------------------------------------------------
def test_timm_compare_passes_our_settings_to_timms_script(tmp_path):
    """A stand-in with timm's interface (its parser, main() and '--result' JSON) checks the plumbing;
    the CLI test above checks the parsed result lands in the row, the real script is run below."""
    script = tmp_path / "fake_benchmark.py"
    script.write_text(FAKE_TIMM)
    cfg = bb.BenchConfig(img_size=48, warmup=3, iters=6, runs=2, channels_last=True, precision="bf16")
    result = bb.run_timm_benchmark("resnet18", 12, 48, cfg, script)
    assert result["infer_runs_samples_per_sec"] == [50.0, 50.0]  # one process per run, as ours: median kept
    argv = result["argv"]
    assert argv["model"] == "resnet18" and argv["bench"] == "inference" and argv["batch_size"] == "12"
    assert argv["img_size"] == "48" and argv["precision"] == "bfloat16" and argv["channels_last"] is True
    assert argv["num_warm_iter"] == "3" and argv["num_bench_iter"] == "6"  # same steps per run as ours
    assert argv["device"] == "cpu"  # the option run_timm_script adds


def test_timm_output_parsing_and_missing_script_error(tmp_path):
    assert bb.parse_timm_output('x\n--result\n{"infer_samples_per_sec": 3.5}')["infer_samples_per_sec"] == 3.5
    assert "boom" in bb.parse_timm_output("no marker", "Traceback\nRuntimeError: boom")["error"]
    with pytest.raises(ConfigError, match="fetch_timm_benchmark.py"):
        bb.benchmark_backbones(["timm:test_resnet"], timm_compare=True, timm_script=tmp_path / "missing.py")


@needs_timm_script
def test_real_timm_benchmark_runs_on_cpu_and_agrees_in_kind():
    cfg = bb.BenchConfig(img_size=32, warmup=1, iters=5, runs=1, batch_size=4)
    result = bb.run_timm_benchmark("test_resnet", 4, 32, cfg, TIMM_SCRIPT)
    assert "error" not in result, result
    assert result["infer_batch_size"] == 4 and result["infer_img_size"] == 32
    assert result["infer_samples_per_sec"] > 0
    assert math.isclose(result["param_count"], 0.47, abs_tol=0.01)


def test_worker_prints_one_json_result_line(capsys):
    assert bb._worker_main(["--worker", "timm:no_such_model", "--config", json.dumps(TINY)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith(bb.RESULT_PREFIX) and "error" in json.loads(line[len(bb.RESULT_PREFIX):])
