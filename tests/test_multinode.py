"""Beyond one machine, for real: two "machines" on one host (two `accelerate launch` commands with
--num_machines 2 and --machine_rank 0|1, CPU ranks over gloo) train a recipe to the same final weights as
one two-process launch. The commands are the ones README.md gives for a cluster, with 127.0.0.1 as the
main machine's address."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
# the balanced sampler and class weights ride along: both must be DDP-safe (one shared order, sharded)
RECIPE = {
    "model": {"name": "timm:test_resnet", "pretrained": False},
    "data": {
        "spec": "sklearn:digits",
        "image_size": 24,
        "batch_size": 16,
        "limit": 192,
        "val_size": 0.2,
        "augment": "flip-crop",
        "num_workers": 0,
        "sampler": "balanced",
    },
    "optim": {"lr": 1.0e-2, "weight_decay": 0.0},
    "train": {"epochs": 2, "class_weights": "balanced", "mixed_precision": "no"},
    "resume": "never",
}
LAUNCH = [
    sys.executable,
    "-m",
    "accelerate.commands.launch",
    "--multi_gpu",
    "--mixed_precision",
    "no",
    "--dynamo_backend",
    "no",
]


def _env() -> dict[str, str]:
    return {**os.environ, "ACCELERATE_USE_CPU": "1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def _outcome(run_dir: Path) -> dict:
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    final = lines[-1]
    assert final["kind"] == "final" and final["num_processes"] == 2
    return {
        "epochs": [(e["epoch"], e["train_loss"], e["val_top1"]) for e in lines if e["kind"] == "epoch"],
        "final": {k: final[k] for k in ("top1", "balanced_acc", "loss", "confusion")},
        "weights": hashlib.sha256((run_dir / "model" / "model.safetensors").read_bytes()).hexdigest(),
    }


@pytest.mark.slow
def test_two_machines_of_one_process_match_one_launch_of_two(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({**RECIPE, "output": {"dir": str(tmp_path)}}))
    port = str(free_port())
    machines = [
        subprocess.Popen(
            [
                *LAUNCH,
                "--num_processes",
                "2",
                "--num_machines",
                "2",
                "--machine_rank",
                str(rank),
                "--main_process_ip",
                "127.0.0.1",
                "--main_process_port",
                port,
                "-m",
                "zoo.train",
                str(recipe),
                "name=two-machines",
            ],
            cwd=ROOT,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in (0, 1)
    ]
    outputs = [m.communicate(timeout=600)[0] for m in machines]
    for rank, (m, out) in enumerate(zip(machines, outputs)):
        assert m.returncode == 0, f"machine {rank}:\n{out[-3000:]}"
    one = subprocess.run(
        [
            *LAUNCH,
            "--num_processes",
            "2",
            "--num_machines",
            "1",
            "--main_process_port",
            str(free_port()),
            "-m",
            "zoo.train",
            str(recipe),
            "name=one-machine",
        ],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert one.returncode == 0, one.stdout[-3000:] + one.stderr[-3000:]
    two = _outcome(tmp_path / "two-machines")
    assert two == _outcome(tmp_path / "one-machine")
    assert "epoch 2: train loss" in outputs[0] and "epoch 2: train loss" not in outputs[1]  # rank 0 reports
    assert (tmp_path / "two-machines" / "metrics.jsonl").read_text().count('"kind": "final"') == 1


@pytest.mark.slow
def test_fsdp_config_on_cpu_ranks_says_it_runs_as_ddp_and_saves_resumes_and_exports(tmp_path):
    """accelerate 1.15 has no FSDP on CPU: recipes/accelerate/fsdp.yaml on two CPU ranks runs as MULTI_CPU
    (DDP). zoo says so in a warning, and the run still saves states, resumes and writes a full artifact."""
    import zoo

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                **RECIPE,
                "train": {"epochs": 1, "save_every_steps": 2, "mixed_precision": "no"},
                "output": {"dir": str(tmp_path)},
            }
        )
    )

    def launch(*overrides: str) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "accelerate.commands.launch",
                "--config_file",
                "recipes/accelerate/fsdp.yaml",
                "--num_processes",
                "2",
                "--main_process_port",
                str(free_port()),
                "-m",
                "zoo.train",
                str(recipe),
                "name=fsdp",
                *overrides,
            ],
            cwd=ROOT,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done

    first = launch()
    assert "FSDP was asked for" in first.stderr and "run as MULTI_CPU" in first.stderr
    second = launch("train.epochs=2", "resume=auto")
    assert "resumed from" in second.stdout
    assert _outcome(tmp_path / "fsdp")["epochs"][0][0] == 0
    model = zoo.load(tmp_path / "fsdp" / "model")  # an ordinary, full safetensors artifact
    assert model.num_classes == 10
