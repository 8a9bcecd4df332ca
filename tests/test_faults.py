"""The fault trials, kept as tests: broken model folders and bad recipes each end in one clear error (no
traceback), a Hub server that dies mid-upload leaves the artifact as it was, and runs killed with SIGKILL at
random moments (mid-step, during a state save, during the final save) resume to the very same model."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file, save_file

import zoo
from zoo.artifact.manifest import write_manifest
from zoo.cli import main as cli
from zoo.cli.train import main as train_main

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["cat", "dog", "eel"]


# ---- 18 broken model folders ------------------------------------------------------------------------------
def _json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))
    write_manifest(path.parent)  # as a tool that rewrote the folder would: the load reaches the field checks


def _weights(folder: Path, change, record: bool = True) -> None:
    """Rewrite the weights; ``record`` also records their new sha256 in checksums.sha256 (as a tool that rewrote
    the folder would), so the load reaches the shape and name checks behind the integrity check."""
    path = folder / "model.safetensors"
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path))
    if record:
        write_manifest(folder)


def _truncate(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _pickle_only(folder: Path) -> None:
    tensors = load_file(str(folder / "model.safetensors"))
    torch.save(tensors, folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()


def _rename_key(t: dict) -> None:
    t["head.weight"] = t.pop("fc.weight")


# case -> (how to break a good artifact, a phrase the one error must contain)
BROKEN_FOLDERS = {
    "no weights": (lambda f: (f / "model.safetensors").unlink(), "missing file"),
    "no config": (lambda f: (f / "config.json").unlink(), "missing file"),
    "empty folder": (lambda f: [p.unlink() for p in f.iterdir()], "missing file"),
    "weights zero bytes": (lambda f: (f / "model.safetensors").write_bytes(b""), "model.safetensors"),
    "weights truncated": (lambda f: _truncate(f / "model.safetensors", 0.5), "is corrupt: its sha256"),
    "weights header only": (lambda f: _truncate(f / "model.safetensors", 0.01), "model.safetensors"),
    "weights are text": (lambda f: (f / "model.safetensors").write_text("not weights\n"), "model.safetensors"),
    "header claims 1 TB": (
        lambda f: (f / "model.safetensors").write_bytes(struct.pack("<Q", 2**40) + b"{}"),
        "model.safetensors",
    ),
    "weights a folder": (
        lambda f: ((f / "model.safetensors").unlink(), (f / "model.safetensors").mkdir()),
        "model.safetensors",
    ),
    "head shape wrong": (lambda f: _json(f / "config.json", num_classes=5), "wrong shapes"),
    "tensor missing": (lambda f: _weights(f, lambda t: t.pop("fc.bias")), "missing"),
    "tensor renamed": (lambda f: _weights(f, _rename_key), "unexpected"),
    "config bad JSON": (lambda f: _truncate(f / "config.json", 0.5), "not valid JSON"),
    "config a list": (lambda f: (f / "config.json").write_text("[1, 2]"), "config.json"),
    "architecture unknown": (lambda f: _json(f / "config.json", architecture="no_such_net"), "no_such_net"),
    "num_classes a string": (lambda f: _json(f / "config.json", num_classes="three"), "num_classes"),
    "zoo.json bad JSON": (lambda f: (f / "zoo.json").write_text("{"), "not valid JSON"),
    "label count wrong": (lambda f: _json(f / "zoo.json", label_names=["cat", "dog"]), "label_names"),
    "pickle only": (_pickle_only, "pickle"),
}


@pytest.fixture(scope="module")
def good_artifact(tmp_path_factory) -> Path:
    model = zoo.create_model("timm:test_resnet", num_classes=3, pretrained=False)
    model.reset_classifier(3, LABELS)
    root = tmp_path_factory.mktemp("artifact")
    Image.fromarray(np.full((40, 30, 3), 120, np.uint8)).save(root / "photo.png")
    return zoo.save(model.eval(), root / "good")


def _one_clear_error(rc: int, err: str) -> str:
    assert rc != 0 and "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len([line for line in lines if "error: " in line]) == 1, err
    return err


def test_the_good_artifact_predicts(good_artifact, capsys):
    assert cli(["predict", str(good_artifact), str(good_artifact.parent / "photo.png"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["predictions"]


@pytest.mark.parametrize("case", list(BROKEN_FOLDERS))
def test_broken_model_folder_is_one_clear_error(good_artifact, tmp_path, capsys, case):
    folder = tmp_path / "model"
    shutil.copytree(good_artifact, folder)
    breaker, phrase = BROKEN_FOLDERS[case]
    breaker(folder)
    rc = cli(["predict", str(folder), str(good_artifact.parent / "photo.png")])
    err = _one_clear_error(rc, capsys.readouterr().err)
    assert phrase in err, err
    assert str(folder) in err  # names the folder or the file in it


# ---- 18 bad recipes ------------------------------------------------------------------------------------
GOOD_RECIPE = {
    "model": {"name": "timm:test_resnet", "pretrained": False},
    "data": {"spec": "sklearn:digits"},
    # fp32: `auto` picks bf16 on a CPU with AMX, where this tiny ResNet diverged to NaN (the trials test kills)
    "train": {"epochs": 2, "mixed_precision": "no"},
}

# case -> (overrides on the command line or a raw YAML text, phrase the one error must contain)
BAD_RECIPES = {
    "unknown section": (["trainer.epochs=3"], "trainer"),
    "misspelled key": (["optim.learning_rate=0.1"], "optim.lr"),
    "epochs not a number": (["train.epochs=many"], "train.epochs"),
    "lr a list": (["optim.lr=[1,2]"], "optim.lr"),
    "negative lr": (["optim.lr=-1"], "optim.lr"),
    "zero epochs": (["train.epochs=0"], "train.epochs"),
    "batch size zero": (["data.batch_size=0"], "data.batch_size"),
    "val_size above one fraction": (["data.val_size=1.5"], "data.val_size"),
    "label smoothing one": (["train.label_smoothing=1.0"], "train.label_smoothing"),
    "unknown strategy": (["strategy.name=finetuning"], "strategy.name"),
    "unknown precision": (["train.mixed_precision=fp8"], "train.mixed_precision"),
    "unknown select_by": (["train.select_by=accuracy"], "train.select_by"),
    "unknown sampler": (["data.sampler=weighted"], "data.sampler"),
    "model without source id": (["model.name=timm:"], "model.name"),
    "run name with a slash": (["name=a/b"], "name"),
    "warmup longer than the run": (["schedule.warmup_epochs=3"], "schedule.warmup_epochs"),
    "probe with augmentation": (["strategy.name=linear_probe", "data.augment=randaugment"], "data.augment"),
    "push checkpoints without a repo": (["hub.push_checkpoints=true"], "hub.repo_id"),
    "lp_ft probing the whole run": (["strategy.name=lp_ft", "strategy.probe_epochs=2"], "strategy.probe_epochs"),
    "not YAML": ("model: [unclosed\n", "YAML"),
    "not a mapping": ("- a\n- b\n", "mapping"),
}


@pytest.mark.parametrize("case", list(BAD_RECIPES))
def test_bad_recipe_is_one_clear_error(tmp_path, capsys, case):
    spec, phrase = BAD_RECIPES[case]
    path = tmp_path / "recipe.yaml"
    path.write_text(spec if isinstance(spec, str) else yaml.safe_dump(GOOD_RECIPE))
    rc = train_main([str(path), *([] if isinstance(spec, str) else spec), "--check"])
    err = _one_clear_error(rc, capsys.readouterr().err)
    assert rc == 2 and phrase in err, err


# ---- a Hub server that dies mid-upload ---------------------------------------------------------------------
def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_hub_server_dying_mid_upload_leaves_artifact_and_repo_unchanged(good_artifact, tmp_path, monkeypatch):
    """The first push lands; the second dies halfway through the commit's body (the server reads part of it,
    then goes away): a PushError that says which step failed and how to retry, the local folder untouched,
    and the repo still at the first commit (no half-written files)."""
    from hub_server import HubServer, _Handler
    from huggingface_hub import constants

    from zoo.errors import ZooError

    class DiesMidCommit(_Handler):
        def do_POST(self) -> None:
            if "/commit/" in self.path and self.server.die_on_commit:
                self.rfile.read(min(512, int(self.headers.get("Content-Length") or 0)))  # part of the upload
                self.close_connection = True
                self.connection.shutdown(2)  # no answer: the process is gone
                threading.Thread(target=self.server.stop, daemon=True).start()
                return
            super().do_POST()

    folder = tmp_path / "model"
    shutil.copytree(good_artifact, folder)
    server = HubServer(lifetime=60)
    server.RequestHandlerClass = DiesMidCommit
    server.die_on_commit = False
    with server:
        monkeypatch.setattr(constants, "ENDPOINT", server.url)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setenv("HF_TOKEN", "test-token")
        zoo.push_to_hub(folder, "user/model")
        first = server.state.files("user/model", "main")
        _weights(folder, lambda t: t.update({k: v + 1 for k, v in t.items() if v.is_floating_point()}))
        before = _digest(folder)
        server.die_on_commit = True
        with pytest.raises(ZooError) as info:  # zoo's PushError
            zoo.push_to_hub(folder, "user/model")
        after_repo = server.state.files("user/model", "main")
    message = str(info.value)
    assert type(info.value).__name__ == "PushError"
    assert "failed while trying to upload the files" in message, message
    assert message.endswith(f"The local artifact {folder} is unchanged; retry with `zoo push {folder} user/model`.")
    assert _digest(folder) == before
    assert after_repo == first and first["model.safetensors"] != (folder / "model.safetensors").read_bytes()


# ---- SIGKILL at random moments, then resume -------------------------------------------------------------
# Each run draws its own moments (the seed is printed with any failure; ZOO_FAULT_SEED=N replays it).
SEED = int(os.environ.get("ZOO_FAULT_SEED") or random.SystemRandom().randrange(2**32))
TRIALS = {  # name -> the event the killer waits for; the moment after it is drawn per run
    "mid-run a": "step",  # a random state, then a random moment within the next save interval
    "mid-run b": "step",
    "during a state save": "state-save",  # a random save, then a random moment once its folder appears
    "during the final save": "final-save",
}
KILL_RECIPE = {
    "model": {"name": "timm:test_resnet", "pretrained": False},
    "data": {
        "spec": "sklearn:digits",
        "image_size": 16,
        "batch_size": 16,
        "limit": 192,
        "val_size": 0.2,
        "augment": "flip-crop",
        "num_workers": 0,
    },  # augmentation: the RNG state must resume too
    "optim": {"lr": 3e-3, "weight_decay": 0.0},
    "train": {"epochs": 2, "save_every_steps": 2, "keep_last": 2, "mixed_precision": "no"},
}
STEPS = 2 * 192 // 16


def _launch(recipe: Path, log: Path, *overrides: str) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    with open(log, "w") as out:  # a file, not a pipe: a victim must never block on a full pipe
        return subprocess.Popen(
            [sys.executable, "-m", "zoo.train", str(recipe), *overrides],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )


def _result(run_dir: Path) -> dict:
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    epochs = [(e["epoch"], e["train_loss"], e["val_top1"], e["val_loss"]) for e in lines if e["kind"] == "epoch"]
    return {
        "epochs": epochs,
        "final": {k: lines[-1][k] for k in ("kind", "top1", "balanced_acc", "loss", "confusion")},
        "model": hashlib.sha256((run_dir / "model" / "model.safetensors").read_bytes()).hexdigest(),
    }


@pytest.fixture(scope="module")
def kill_reference(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("kills")
    recipe = out / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({**KILL_RECIPE, "output": {"dir": str(out)}}))
    ref = _launch(recipe, out / "ref.log", "name=ref", "resume=never")
    assert ref.wait(timeout=300) == 0, (out / "ref.log").read_text()[-3000:]
    return recipe, _result(out / "ref")


def _steps(states: Path, prefix: str) -> list[int]:
    return [int(p.name.split("-")[1]) for p in states.glob(f"{prefix}*")] if states.is_dir() else []


def _wait_for(victim: subprocess.Popen, ready) -> None:
    deadline = time.monotonic() + 300
    while victim.poll() is None and time.monotonic() < deadline and not ready():
        time.sleep(0.001)


def _kill_at_a_random_moment(victim: subprocess.Popen, run_dir: Path, kind: str, rng: random.Random) -> str:
    """Wait for the trial's event, then sleep a drawn time and SIGKILL; returns the moment, for messages."""
    states = run_dir / "states"
    if kind == "step":
        target = rng.randint(4, STEPS - 2)  # a state to reach (one of either epoch), with one before it
        seen: dict[int, float] = {}

        def ready() -> bool:
            for step in _steps(states, "state-"):
                seen.setdefault(step, time.monotonic())
            return any(step >= target for step in seen)

        _wait_for(victim, ready)
        times = sorted(seen.values())
        interval = times[-1] - times[-2] if len(times) > 1 else 0.5  # two steps and a save, as measured
        delay = rng.uniform(0, interval)
        moment = f"{delay:.3f} s (of a {interval:.3f} s save interval) after a state at step >= {target}"
    elif kind == "state-save":  # accelerate writes into .tmp-<step>, renamed to state-<step> when complete
        save = rng.choice(range(4, STEPS + 1, 2))  # a save with an earlier state to resume from
        _wait_for(victim, lambda: save in _steps(states, ".tmp-") or save in _steps(states, "state-"))
        delay = rng.uniform(0, 0.05)
        moment = f"{delay:.3f} s after the state save of step {save} began"
    else:  # zoo.save writes the artifact into .model.tmp-* and renames it into place
        _wait_for(victim, lambda: run_dir.is_dir() and any(run_dir.glob(".model.tmp-*")))
        delay = rng.uniform(0, 0.05)
        moment = f"{delay:.3f} s after the final save began"
    time.sleep(delay)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    return moment


def _leftovers(run_dir: Path) -> list[str]:
    """Staged folders and temporary files of killed writes (fsutil's .NAME.tmp-*, .NAME.old-*; .tmp-<step>)."""
    return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob(".*") if ".tmp-" in p.name or ".old-" in p.name)


@pytest.mark.slow
@pytest.mark.parametrize("trial", list(TRIALS))
def test_sigkill_then_resume_ends_with_the_same_metrics_and_model_bytes(kill_reference, trial):
    recipe, reference = kill_reference
    rng = random.Random(f"{SEED}:{trial}")
    name = "trial-" + trial.replace(" ", "-")
    run_dir, log = recipe.parent / name, recipe.parent / f"{name}.log"
    victim = _launch(recipe, log, f"name={name}", "resume=never")
    moment = _kill_at_a_random_moment(victim, run_dir, TRIALS[trial], rng)
    replay = f"killed {moment} (ZOO_FAULT_SEED={SEED} replays it)"
    assert victim.returncode == -signal.SIGKILL, f"the run ended before the kill, {replay}:\n{log.read_text()[-2000:]}"
    resumed = _launch(recipe, log, f"name={name}", "resume=auto")
    assert resumed.wait(timeout=300) == 0, f"{replay}\n{log.read_text()[-3000:]}"
    assert "resumed from" in log.read_text(), replay
    assert _result(run_dir) == reference, replay
    assert _leftovers(run_dir) == [], replay
    zoo.load(run_dir / "model")  # the artifact the resumed run left loads
