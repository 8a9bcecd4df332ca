"""`zoo bench backbones`: measurement pieces, the results files, the CLI and the timm comparison.

Timings here are never asserted against numbers (the CPU is shared); only their consistency is.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import zoo
from zoo import env
from zoo.bench import measure, worker
from zoo.bench import results as report
from zoo.cli import main
from zoo.errors import ConfigError

TINY = dict(img_size=32, warmup=1, iters=1, runs=2, batch_size=2)


# ---- median, timing, OOM --------------------------------------------------------------------------
def test_median_rate_uses_the_median_run_not_the_mean():
    rate, step_ms = measure.median_rate([1.0, 9.0, 2.0], batch_size=8, iters=4)  # mean would be 4 s
    assert rate == pytest.approx(8 * 4 / 2.0)
    assert step_ms == pytest.approx(500.0)
    assert measure.median_rate([1.0, 2.0, 3.0, 10.0], 1, 1)[0] == pytest.approx(1 / 2.5)
    with pytest.raises(ValueError):
        measure.median_rate([], 1, 1)


def test_timed_runs_warms_up_then_times_each_run_and_syncs():
    calls, syncs = [], []
    seconds = measure.timed_runs(lambda: calls.append(1), warmup=2, iters=3, runs=4, sync=lambda: syncs.append(1))
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

    result, used = measure.with_oom_halving(step, 32, on_retry=lambda b, why: retries.append((b, why)))
    assert (result, used) == ("ran 4", 4)
    assert tried == [32, 16, 8, 4]
    assert [b for b, _ in retries] == [16, 8, 4] and "out of memory" in retries[0][1]


def test_oom_halving_recognises_cpu_allocator_errors_and_reraises_everything_else():
    def cpu_oom(batch: int) -> int:
        if batch > 1:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 99 GB")
        return batch

    assert measure.with_oom_halving(cpu_oom, 8) == (1, 1)
    with pytest.raises(ValueError, match="shape"):  # not an OOM: no retry
        measure.with_oom_halving(lambda b: (_ for _ in ()).throw(ValueError("bad shape")), 8)
    with pytest.raises(torch.cuda.OutOfMemoryError):  # still OOM at batch 1: give up, say so
        measure.with_oom_halving(lambda b: (_ for _ in ()).throw(torch.cuda.OutOfMemoryError("oom")), 1)


def test_measure_model_records_the_halved_batch_after_a_simulated_oom(monkeypatch):
    real = measure.measure_inference

    def fake_oom_above_2(model, batch, input_size, cfg):
        if batch > 2:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory (simulated at batch {batch})")
        return real(model, batch, input_size, cfg)

    monkeypatch.setattr(measure, "measure_inference", fake_oom_above_2)
    row = measure.measure_model("timm:test_resnet", measure.BenchConfig(**{**TINY, "batch_size": 8, "train": False}))
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

    hooks = [
        m.register_forward_hook(conv_hook if isinstance(m, torch.nn.Conv2d) else linear_hook)
        for m in model.modules()
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))
    ]
    with torch.no_grad():
        model.eval()(torch.randn(1, *input_size))
    for h in hooks:
        h.remove()
    return total / 1e9


def test_gmacs_of_torchvision_resnet18_matches_layer_arithmetic_and_the_published_figure():
    model = zoo.create_model("tv:resnet18", pretrained=False)
    gmacs = measure.count_gmacs(model, (3, 224, 224))
    assert gmacs == pytest.approx(_macs_from_layer_shapes(model, (3, 224, 224)), rel=0.01)
    assert gmacs == pytest.approx(1.82, rel=0.02)  # torchvision's model card: 1.81 GFLOPS (they mean MACs)


def test_peak_memory_on_cpu_sees_what_the_phase_allocates():
    from zoo.cpu_memory import release_inherited_memory

    # free heap memory that earlier tests left resident would serve the 64 MiB without raising the RSS
    release_inherited_memory()  # glibc's malloc_trim(0)
    with env.PeakMemory("cpu") as mem:
        big = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched so it is resident
        del big
    assert mem.method in ("rss_hwm_delta", "rss_sampled_delta")
    assert 60 <= mem.peak_mb < 200
    with env.PeakMemory("cpu") as quiet:
        pass
    assert quiet.peak_mb < 30


def test_bench_config_rejects_bad_values_with_the_fix():
    with pytest.raises(ConfigError, match="'fp8'.*--precision"):
        measure.BenchConfig(precision="fp8").validate()
    with pytest.raises(ConfigError, match="'tpu'.*--device cpu"):
        measure.BenchConfig(device="tpu").validate()
    with pytest.raises(ConfigError, match="iters=0"):
        measure.BenchConfig(iters=0).validate()
    with pytest.raises(ConfigError, match="bogus"):
        measure.BenchConfig.from_dict({"bogus": 1})


def test_device_slug_and_default_output_name():
    assert env.device_slug("cpu") == f"cpu-{env.cpu_cores()}core"
    assert env.slugify("NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3"
    out = report.default_output(measure.BenchConfig(precision="bf16", channels_last=True))
    assert out == Path("benchmarks/results") / f"backbones_cpu-{env.cpu_cores()}core_bf16_cl.csv"


# ---- report: CSV, Markdown, plot ------------------------------------------------------------------
ROWS = [
    {"model": "a", "gmacs": 1.5, "ips": 120.0, "note": None},
    {"model": "b|c", "gmacs": 4.0, "ips": 30.25, "extra": True},
]


def test_csv_round_trip_keeps_numbers_and_empty_cells(tmp_path):
    path = report.write_csv(ROWS, tmp_path / "sub" / "r.csv")
    back = report.read_csv(path)
    assert back[0] == {"model": "a", "gmacs": 1.5, "ips": 120.0, "note": None, "extra": None}
    assert back[1]["extra"] is True and back[1]["ips"] == 30.25


def test_markdown_has_metadata_table_and_image(tmp_path):
    md = report.write_markdown(
        ROWS,
        tmp_path / "r.md",
        ["model", "gmacs", "ips"],
        title="T",
        meta={"device": "cpu", "torch": "x", "skipped": None},
        notes=["n1"],
        image=tmp_path / "r.png",
    ).read_text()
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


# ---- the command --------------------------------------------------------------------------------
def test_bench_backbones_help_reads_well(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "backbones", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for word in ("--timm-compare", "--precision", "--channels-last", "--compile", "infer_samples_per_sec", "median"):
        assert word in text


def test_a_model_that_fails_gets_an_error_row_and_a_nonzero_exit(tmp_path, capsys):
    row = worker.run_worker("timm:no_such_model", measure.BenchConfig(**TINY))
    assert row["model"] == "timm:no_such_model" and "no_such_model" in row["error"]
    assert main(["bench", "backbones", "timm:test_resnet", "--device", "tpu", "--out", str(tmp_path / "x.csv")]) == 2
    assert "'tpu'" in capsys.readouterr().err


def test_worker_prints_one_json_result_line(capsys):
    assert worker.main(["timm:no_such_model", json.dumps(TINY)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith(worker.RESULT_PREFIX) and "error" in json.loads(line[len(worker.RESULT_PREFIX) :])


def test_protocol_defaults_and_shortfalls():
    cfg = measure.BenchConfig()
    assert (cfg.warmup, cfg.iters, cfg.runs) == (10, 20, 5) and cfg.protocol_shortfalls() == []
    assert measure.BenchConfig(**TINY).protocol_shortfalls() == ["warmup 1 < 10", "iters 1 < 20", "runs 2 < 5"]
