"""Validate before work: `zoo train --check` and the start of every run check the model name, the data path
and the output folder before any data is loaded or folder created. And a run finishes like a tool: it says
first whether it starts fresh or resumes, and ends with its scores, time and model path."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml
from data_fixtures import good_folder

import zoo.data
from zoo.cli import main

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "recipes" / "quickstart.yaml")


def _train(argv, capsys):
    rc = main(["train", *argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return rc, out, err


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.name=nosuch:resnet18", "zoo: error: unknown model source 'nosuch'. Known sources: hf, pypi, timm, tv"),
        ("model.name=timm:resnet19", "zoo: error: unknown model timm:'resnet19'. Did you mean: resnet18"),
        ("model.name=tv:resnet999", "zoo: error: unknown model tv:'resnet999'."),
        ("model.name=pypi:efficientnet_lite9", "zoo: error: unknown model pypi:'efficientnet_lite9'."),
        (
            "model.name=hf:./no/such/folder",
            "zoo: error: hf:./no/such/folder: './no/such/folder' is not a directory with a transformers config.json",
        ),
        (
            "data.spec=imagefolder:/no/such/photos",
            "zoo: error: dataset spec 'imagefolder:/no/such/photos': no such folder",
        ),
        ("data.spec=/no/such/photos", "zoo: error: dataset spec '/no/such/photos' is not a known dataset"),
        ("data.spec=parquet:/no/such/*.parquet", "zoo: error: dataset spec 'parquet:/no/such/*.parquet': no parquet"),
    ],
)
def test_check_refuses_unknown_models_and_missing_data(override, message, capsys, tmp_path):
    rc, out, err = _train([QUICKSTART, "--check", override, f"output.dir={tmp_path / 'runs'}"], capsys)
    assert rc == 2 and out == ""
    assert err.startswith(message), err
    assert not (tmp_path / "runs").exists()


def test_check_refuses_an_output_folder_that_cannot_be_made(capsys, tmp_path):
    (tmp_path / "file").write_text("x")
    rc, _, err = _train([QUICKSTART, "--check", f"output.dir={tmp_path / 'file' / 'runs'}"], capsys)
    assert rc == 2 and f"{tmp_path / 'file'} is a file, not a folder; choose another output.dir" in err


def test_check_passes_a_good_recipe_and_prints_it_resolved(capsys, tmp_path):
    rc, out, _ = _train([QUICKSTART, "--check", "train.epochs=2", f"output.dir={tmp_path / 'runs'}"], capsys)
    assert rc == 0 and yaml.safe_load(out)["train"]["epochs"] == 2
    assert not (tmp_path / "runs").exists()  # --check creates nothing


def test_a_run_with_a_bad_name_loads_no_data_and_makes_no_folder(capsys, tmp_path, monkeypatch):
    def no_loading(*args, **kwargs):
        raise AssertionError("data was loaded before the model name was checked")

    monkeypatch.setattr(zoo.data, "load_dataset", no_loading)
    folder = good_folder(tmp_path / "photos", classes=("a", "b"), n=4)
    for bad in ("model.name=nosuch:resnet18", "model.name=timm:resnet19"):
        rc, _, err = _train([QUICKSTART, bad, f"data.spec={folder}", f"output.dir={tmp_path / 'runs'}"], capsys)
        assert rc == 2 and err.startswith("zoo: error: unknown model"), err
    assert not (tmp_path / "runs").exists()


def _tiny(folder: Path, out: Path, *extra: str) -> list[str]:
    return [
        QUICKSTART,
        "variants={}",
        "model.name=timm:test_resnet",
        "model.pretrained=false",
        f"data.spec={folder}",
        "data.image_size=32",
        "data.val_size=2",
        "data.batch_size=8",
        "train.epochs=1",
        f"output.dir={out}",
        *extra,
    ]


@pytest.mark.slow  # two real runs: seconds on a quiet 2-core machine, a minute on a busy one
def test_a_run_says_how_it_starts_and_ends_with_a_summary(capsys, tmp_path):
    folder = good_folder(tmp_path / "photos", classes=("a", "b"), n=6, splits=("train", "test"))
    out = tmp_path / "runs"
    rc, stdout, _ = _train(_tiny(folder, out), capsys)
    assert rc == 0
    run = out / "quickstart"
    lines = stdout.splitlines()
    assert lines[0] == f"[quickstart] starting fresh in {run}"
    assert lines[-2].startswith("[quickstart] done in ") and ": best val top-1 " in lines[-2]
    assert ", test top-1 " in lines[-2]
    assert lines[-1] == f"[quickstart] model: {run / 'model'}"
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (run / "model").iterdir()}
    assert set(modes.values()) == {0o644}, modes  # safetensors' own file too (it writes 0600)

    state = sorted((run / "states").iterdir())[-1]
    rc, stdout, _ = _train(_tiny(folder, out, "train.epochs=2"), capsys)
    assert rc == 0 and stdout.splitlines()[0] == f"[quickstart] resuming from {state}"
