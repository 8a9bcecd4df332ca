"""Artifacts prove their integrity: flipped bytes, NaN weights and a newer format are refused with the file's
name and what to do, and a save killed at any moment leaves the old artifact or the new one, never a mix."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import zoo
from zoo.artifact.files import sha256_of
from zoo.artifact.manifest import MANIFEST_NAME, read_manifest, write_manifest
from zoo.cli import main as zoo_main
from zoo.errors import CheckpointError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def saved(tmp_path):
    model = zoo.create_model("timm:test_resnet", num_classes=3, pretrained=False)
    model.reset_classifier(3, ["a", "b", "c"])
    return model, zoo.save(model, tmp_path / "art")


def test_save_records_the_sha256_of_every_file_loading_reads(saved):
    _, folder = saved
    recorded = read_manifest(folder / MANIFEST_NAME)
    assert recorded == {
        p.name: sha256_of(p) for p in folder.iterdir() if p.name not in ("README.md", MANIFEST_NAME, ".complete")
    }
    assert {"config.json", "zoo.json", "model.safetensors"} <= recorded.keys()
    assert json.loads((folder / "zoo.json").read_text())["format_version"] == 2
    assert {oct(p.stat().st_mode & 0o777) for p in folder.iterdir()} == {"0o644"}


def test_flipped_bytes_are_refused_by_load_and_predict(saved, tmp_path, capsys):
    _, folder = saved
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    start = len(data) - 8192  # inside the tensor data, past the header: the file still parses
    data[start : start + 4096] = bytes(b ^ 0xFF for b in data[start : start + 4096])
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"model.safetensors is corrupt: its sha256 is .* Re-download"):
        zoo.load(folder)
    from PIL import Image

    Image.new("RGB", (40, 40), "red").save(tmp_path / "x.png")
    rc = zoo_main(["predict", str(folder), str(tmp_path / "x.png"), "--json"])
    captured = capsys.readouterr()
    assert rc != 0 and "NaN" not in captured.out and "is corrupt" in captured.err


def test_newer_format_version_is_refused(saved):
    _, folder = saved
    meta = json.loads((folder / "zoo.json").read_text())
    meta["format_version"] = 99
    (folder / "zoo.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="format_version 99 was written by a newer zoo.*Upgrade zoo"):
        zoo.load(folder)


def test_nan_weights_are_refused_on_save_and_on_load(saved, tmp_path):
    model, folder = saved
    with torch.no_grad():
        model.get_classifier().weight[0, 0] = float("nan")
    with pytest.raises(CheckpointError, match="NaN or Inf.*nothing was saved"):
        zoo.save(model, tmp_path / "nan-art")
    assert not (tmp_path / "nan-art").exists()
    state = load_file(str(folder / "model.safetensors"))
    key = next(k for k in state if k.endswith("weight") and state[k].is_floating_point())
    state[key][...] = float("inf")
    save_file(state, str(folder / "model.safetensors"))
    write_manifest(folder)  # a consistent but bad file
    with pytest.raises(CheckpointError, match="NaN or Inf"):
        zoo.load(folder)


SAVER = """
import sys, torch, zoo
target = sys.argv[1]
models = []
for seed in (1, 2):
    torch.manual_seed(seed)
    m = zoo.create_model("timm:test_resnet", num_classes=3, pretrained=False)
    models.append(m)
print("ready", flush=True)
i = 0
while True:
    zoo.save(models[i % 2], target, metrics={"which": i % 2})
    i += 1
"""


@pytest.mark.slow
def test_a_save_killed_at_any_moment_leaves_a_whole_artifact(tmp_path):
    torch.manual_seed(1)
    a = zoo.create_model("timm:test_resnet", num_classes=3, pretrained=False).model.state_dict()
    torch.manual_seed(2)
    b = zoo.create_model("timm:test_resnet", num_classes=3, pretrained=False).model.state_dict()
    target = tmp_path / "art"
    rng = random.Random(0)
    trials = 8
    for trial in range(trials):
        proc = subprocess.Popen(
            [sys.executable, "-c", SAVER, str(target)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(0.3 + rng.random() * 1.5)  # several saves in, killed somewhere inside one
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        model = zoo.load(target)  # killed between the renames, it reads the newest complete version in place
        loaded = model.model.state_dict()
        same_a = all(torch.equal(loaded[k], a[k]) for k in a)
        same_b = all(torch.equal(loaded[k], b[k]) for k in b)
        assert same_a or same_b, f"trial {trial}: the artifact mixes two saves"
        meta = model.zoo_metadata
        assert meta["metrics"]["which"] == (0 if same_a else 1), f"trial {trial}: metadata of the other save"
