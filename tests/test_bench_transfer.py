"""zoo bench transfer and the side-by-side baselines, on generated data and real Lite0 weights."""

from __future__ import annotations

import csv

import pytest
import yaml
from synthetic_data import make_cifar_like

from zoo.bench.baselines import time_to_accuracy
from zoo.bench.transfer import aggregate, run_overrides
from zoo.cli import main


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> str:
    return str(make_cifar_like(tmp_path_factory.mktemp("d") / "c", n_per_class=12, size=32, fmt="disk"))


def _run(model, strategy, seed, top1, wall):
    return {
        "model": model,
        "strategy": strategy,
        "final_top1": top1,
        "wall_seconds": wall,
        "train_seconds": wall / 2,
        "images_per_sec": 100.0,
        "peak_mem_mb": 500.0 + seed,
        "eval_split": "test",
    }


def test_aggregate_mean_std_and_pareto():
    rows = aggregate(
        [
            _run("m", "linear_probe", 0, 0.8, 10),
            _run("m", "linear_probe", 1, 0.9, 12),
            _run("m", "finetune", 0, 0.95, 60),
            _run("m", "scratch", 0, 0.7, 70),
        ]
    )
    by = {r["strategy"]: r for r in rows}
    assert by["linear_probe"]["top1_mean"] == pytest.approx(0.85)
    assert by["linear_probe"]["top1_std"] == pytest.approx(0.0707, abs=1e-4)
    assert by["linear_probe"]["seeds"] == 2 and by["linear_probe"]["peak_mem_mb"] == 501.0
    assert by["linear_probe"]["pareto"] and by["finetune"]["pareto"] and not by["scratch"]["pareto"]


def test_run_overrides_take_the_recipes_variant_settings():
    base = {"variants": {"lp": {"strategy.name": "linear_probe", "optim.lr": 0.01}}}
    got = run_overrides(base, "timm:x", "linear_probe", 3, "disk:/d")
    assert got[:2] == ["strategy.name=linear_probe", "optim.lr=0.01"]
    assert {"train.seed=3", "data.seed=3", "resume=never", "model.name=timm:x", "data.spec=disk:/d"} <= set(got)
    assert "optim.lr=0.01" not in run_overrides(base, None, "finetune", 0, None)


def test_time_to_accuracy():
    assert time_to_accuracy([(1.0, 0.5), (2.0, 0.8), (3.0, 0.9)], 0.8) == 2.0
    assert time_to_accuracy([(1.0, 0.5)], 0.8) is None


def test_zoo_bench_transfer_writes_table_and_pareto_plot(data, tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "model": {"name": "timm:test_resnet", "pretrained": False},
                "data": {"spec": data, "image_size": 32, "batch_size": 32, "augment": "none"},
                "optim": {"lr": 1e-2},
                "train": {"epochs": 2},
                "variants": {"lp": {"strategy.name": "linear_probe", "optim.lr": 3e-2}},
            }
        )
    )
    out = tmp_path / "t.csv"
    assert (
        main(
            [
                "bench",
                "transfer",
                "--recipe",
                str(recipe),
                "--strategies",
                "linear_probe",
                "finetune",
                "--out",
                str(out),
                f"output.dir={tmp_path / 'runs'}",
            ]
        )
        == 0
    )
    rows = list(csv.DictReader(out.open()))
    assert {r["strategy"] for r in rows} == {"linear_probe", "finetune"}
    assert all(0.0 <= float(r["top1_mean"]) <= 1.0 and float(r["wall_seconds_mean"]) > 0 for r in rows)
    assert out.with_suffix(".png").stat().st_size > 1000
    assert "| linear_probe |" in out.with_suffix(".md").read_text().replace("| timm:test_resnet ", "")
    assert len(list(csv.DictReader(out.with_name("t_runs.csv").open()))) == 2


def test_side_by_side_baselines_learn_and_report_ratios(data, tmp_path):
    from zoo.bench.side_by_side import SideBySideConfig, run_side_by_side

    result = run_side_by_side(
        SideBySideConfig(
            spec=data,
            image_size=32,
            batch_size=32,
            probe_epochs=3,
            finetune_epochs=1,
            out_dir=str(tmp_path),
            probe_variants=False,
        )
    )
    kinds = [r["kind"] for r in result["rows"]]
    assert kinds == ["linear probe", "linear probe", "fine-tune", "fine-tune"]
    assert result["probe_accuracy"]["zoo"] > 0.3 and result["probe_accuracy"]["tutorial"] > 0.3  # chance 0.1
    assert result["probe_speedup_to_same_accuracy"] > 0 and result["finetune_images_per_sec_ratio"] > 0
    assert len(result["tutorial"].curve) == 3 and all(0 <= a <= 1 for _, a in result["tutorial"].curve)
