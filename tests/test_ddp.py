"""A real two-process DDP run on CPU (gloo), launched the way the README says."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import free_port

ROOT = Path(__file__).resolve().parents[1]




@pytest.mark.slow
def test_two_cpu_ranks_freeze_then_unfreeze(tmp_path):
    """accelerate launch --multi_gpu with ACCELERATE_USE_CPU=1: two ranks, one run directory, identical weights."""
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(free_port()),
           "-m", "zoo.train", "recipes/quickstart.yaml", "variants={}", "name=ddp",
           "strategy.name=freeze_then_unfreeze", "strategy.unfreeze_epoch=1", "strategy.unfreeze_stages=2",
           "train.epochs=2", "data.limit=128", "data.image_size=32", "data.batch_size=16",
           f"output.dir={tmp_path}", "resume=never"]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run = tmp_path / "ddp"
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    final = lines[-1]
    assert final["kind"] == "final" and final["num_processes"] == 2 and final["ranks_in_sync"] is True
    assert [x["epoch"] for x in lines if x["kind"] == "epoch"] == [0, 1]  # written once, not once per rank
    for name in ("curve.png", "model/model.safetensors", "model/config.json"):
        assert (run / name).is_file(), name
    assert "epoch 2: training blocks.5, blocks.6, head" in done.stdout
    for rank in (0, 1):  # each rank introduces itself once
        assert done.stdout.count(f"[ddp] rank {rank} of 2") == 1, done.stdout
    assert done.stdout.count(f"[ddp] starting fresh in {run} (resume: never)") == 1
