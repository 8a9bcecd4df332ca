"""A real two-process DDP run on CPU (gloo), launched the way the README says."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import free_port
from safetensors.torch import load_file

from zoo.errors import TrainingError
from zoo.train.finish import check_ranks_in_sync

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = [
    sys.executable,
    "-m",
    "accelerate.commands.launch",
    "--multi_gpu",
    "--num_processes",
    "2",
    "--num_machines",
    "1",
    "--mixed_precision",
    "no",
    "--dynamo_backend",
    "no",
]


@pytest.mark.slow
def test_two_cpu_ranks_freeze_then_unfreeze(tmp_path):
    """accelerate launch --multi_gpu with ACCELERATE_USE_CPU=1: two ranks, one run directory, identical weights."""
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [
        *LAUNCH,
        "--main_process_port",
        str(free_port()),
        "-m",
        "zoo.train",
        "recipes/quickstart.yaml",
        "variants={}",
        "name=ddp",
        "strategy.name=freeze_then_unfreeze",
        "strategy.unfreeze_epoch=1",
        "strategy.unfreeze_stages=2",
        "train.epochs=2",
        "data.limit=128",
        "data.image_size=32",
        "data.batch_size=16",
        f"output.dir={tmp_path}",
        "resume=never",
    ]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run = tmp_path / "ddp"
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    final = lines[-1]
    assert final["kind"] == "final" and final["num_processes"] == 2
    assert [x["epoch"] for x in lines if x["kind"] == "epoch"] == [0, 1]  # written once, not once per rank
    for name in ("curve.png", "model/model.safetensors", "model/config.json"):
        assert (run / name).is_file(), name
    assert "epoch 2: training blocks.5, blocks.6, head" in done.stdout
    for rank in (0, 1):  # each rank introduces itself once
        assert done.stdout.count(f"[ddp] rank {rank} of 2") == 1, done.stdout
    assert done.stdout.count(f"[ddp] starting fresh in {run} (resume: never)") == 1


# a model without BatchNorm (LayerNorm only): DDP's averaged gradients over two half batches then equal one
# process's gradient over the whole batch, so the two runs must end with the same weights
SAME_BATCH_RECIPE = {
    "model": {"name": "timm:test_vit", "pretrained": False, "kwargs": {"img_size": 32}},
    "data": {
        "spec": "sklearn:digits",
        "image_size": 32,
        "limit": 192,
        "val_size": 0.2,
        "augment": "none",
        "num_workers": 0,
    },
    "optim": {"name": "adamw", "lr": 1.0e-3, "weight_decay": 0.0},
    "train": {"epochs": 1, "mixed_precision": "no"},
    "resume": "never",
}


@pytest.mark.slow
def test_two_cpu_ranks_train_the_same_weights_as_one_process_with_the_same_global_batch(tmp_path):
    """2 ranks x 16 images per step against 1 process x 32: the same weights (to float rounding); and, so that
    the comparison can fail, 1 process x 16 (half the global batch) ends elsewhere."""
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({**SAME_BATCH_RECIPE, "output": {"dir": str(tmp_path)}}))

    def run(cmd: list[str], name: str, batch: int) -> dict[str, torch.Tensor]:
        done = subprocess.run(
            [*cmd, "-m", "zoo.train", str(recipe), f"name={name}", f"data.batch_size={batch}"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return load_file(str(tmp_path / name / "model" / "model.safetensors"))

    ddp = run([*LAUNCH, "--main_process_port", str(free_port())], "ddp", 16)
    one = run([sys.executable], "one", 32)
    half = run([sys.executable], "half", 16)
    assert ddp.keys() == one.keys()
    worst = max((ddp[k] - one[k]).abs().max().item() for k in ddp)
    assert worst < 1e-4, f"DDP and one process differ by up to {worst}"
    moved = max((half[k] - one[k]).abs().max().item() for k in one)
    assert moved > 100 * max(worst, 1e-6), (moved, worst)


class _Ranks:
    """Two ranks' checksums as accelerate's gather would return them."""

    num_processes, device = 2, torch.device("cpu")

    def __init__(self, other: float | None) -> None:
        self.other = other

    def gather(self, mine: torch.Tensor) -> torch.Tensor:
        return torch.cat([mine, mine if self.other is None else torch.tensor([self.other], dtype=mine.dtype)])


def test_ranks_with_different_weights_stop_the_run_before_it_saves():
    model = torch.nn.Linear(3, 2)
    check_ranks_in_sync(_Ranks(None), model)  # equal checksums: nothing to say
    with pytest.raises(TrainingError, match="parameters differ between processes"):
        check_ranks_in_sync(_Ranks(12.5), model)
