"""`zoo models`, `zoo info` and `zoo --help` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from zoo.cli import main


def run_json(capsys, *argv):
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_models_timm_pattern(capsys):
    rows = run_json(capsys, "models", "resnet5*", "--source", "timm", "--json")
    names = {r["name"] for r in rows}
    assert "timm:resnet50.a1_in1k" in names and "timm:resnet50d.ra2_in1k" in names
    assert all(r["id"].startswith("resnet5") for r in rows)


def test_models_table(capsys):
    assert main(["models", "resnet18*", "--source", "tv"]) == 0
    out = capsys.readouterr().out
    assert "tv:resnet18" in out and "11.69" in out and "IMAGENET1K_V1" in out


def test_models_table_keeps_long_names_whole_when_piped(capsys):
    """Names are what users copy: a piped table must not fold one across lines."""
    assert main(["models", "*dinov2*", "--source", "hf"]) == 0
    out = capsys.readouterr().out
    assert "hf:facebook/dinov2-small-imagenet1k-1-layer" in out and "hf:facebook/dinov2-base-imagenet1k-1-layer" in out


def test_models_hf_and_tv(capsys):
    assert len(run_json(capsys, "models", "--source", "hf", "--json")) >= 10
    tv = run_json(capsys, "models", "--source", "tv", "--json")
    assert {"tv:resnet18", "tv:efficientnet_b0", "tv:vit_b_16", "tv:convnext_tiny"} <= {r["name"] for r in tv}


@pytest.mark.parametrize("name", ["timm:resnet18", "tv:resnet18"])
def test_info_resnet18(capsys, name):
    info = run_json(capsys, "info", name, "--json")
    assert info["num_features"] == 512
    assert info["data_config"]["input_size"] == [3, 224, 224]
    assert len(info["data_config"]["mean"]) == 3 and len(info["data_config"]["std"]) == 3
    assert [g["name"] for g in info["layer_groups"]] == ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
    assert info["layer_groups"][-1]["num_params"] == 512 * 1000 + 1000


def test_info_text(capsys):
    assert main(["info", "timm:test_vit"]) == 0
    out = capsys.readouterr().out
    assert "num_features  64" in out and "blocks.0" in out and "head" in out


def test_unknown_model_exit_code(capsys):
    assert main(["info", "timm:resnet19"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zoo: error: unknown model timm:'resnet19'") and "resnet18" in err


def test_help_reads_well():
    out = subprocess.run([sys.executable, "-m", "zoo", "--help"], capture_output=True, text=True, check=True).stdout
    assert "models" in out and "info" in out and "source:id" in out
    sub = subprocess.run(
        [sys.executable, "-m", "zoo", "models", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "--pretrained" in sub and "fnmatch" in sub
