"""The resume guard has no holes: a state whose saved recipe is unreadable, or a run folder where no state
loads, is refused with the paths and the two ways out (never a silent fresh start or an unchecked resume);
a changed run length says what it does to the learning-rate schedule."""

from __future__ import annotations

from pathlib import Path

import pytest
from synthetic_data import make_cifar_like

from zoo.cli.train import main as train_main
from zoo.metrics import read_metrics


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> str:
    return str(make_cifar_like(tmp_path_factory.mktemp("data") / "cifar", n_per_class=8, size=16, fmt="disk"))


def _run(spec: str, out: Path, *extra: str) -> int:
    return train_main(
        [
            "recipes/quickstart.yaml",
            "variants={}",
            "name=r",
            f"output.dir={out}",
            f"data.spec={spec}",
            "model.name=timm:test_resnet",
            "model.pretrained=false",
            "data.image_size=16",
            "data.batch_size=16",
            "optim.lr=3e-3",
            "train.epochs=1",
            *extra,
        ]
    )


def _states(out: Path) -> list[Path]:
    return sorted((out / "r" / "states").glob("state-*"))


def test_unreadable_saved_recipe_is_refused_not_skipped(photos, tmp_path, capsys):
    assert _run(photos, tmp_path, "resume=never") == 0
    [state] = _states(tmp_path)
    (state / "recipe.json").write_text('{"model": {"name": "timm:test_res')  # a torn write
    capsys.readouterr()
    # a changed lr would be refused by the guard; with the recipe unreadable the guard must still refuse
    rc = _run(photos, tmp_path, "train.epochs=2", "optim.lr=0.01", "resume=auto")
    err = capsys.readouterr().err
    assert rc == 2, err
    assert str(state / "recipe.json") in err and "unreadable" in err
    assert "resume=never" in err and "name=NEW_NAME" in err
    assert [m["epoch"] for m in read_metrics(tmp_path / "r" / "metrics.jsonl") if m["kind"] == "epoch"] == [0]


def test_no_loadable_state_is_refused_not_a_silent_fresh_start(photos, tmp_path, capsys):
    assert _run(photos, tmp_path, "train.save_every_steps=1", "train.keep_last=2", "resume=never") == 0
    states = _states(tmp_path)
    assert len(states) == 2
    for state in states:
        (state / "model.safetensors").write_bytes(b"\0" * 16)  # every state truncated
    before = (tmp_path / "r" / "metrics.jsonl").read_text()
    capsys.readouterr()
    rc = _run(photos, tmp_path, "train.save_every_steps=1", "train.keep_last=2", "train.epochs=2", "resume=auto")
    out = capsys.readouterr()
    assert rc == 2, out.out[-2000:] + out.err[-2000:]
    assert "no saved state loads" in out.err and all(str(s) in out.err for s in states), out.err
    assert "resume=never" in out.err and "name=NEW_NAME" in out.err
    assert (tmp_path / "r" / "metrics.jsonl").read_text() == before  # nothing trimmed, nothing restarted


def test_changed_run_length_says_how_the_schedule_changes(photos, tmp_path, caplog):
    assert _run(photos, tmp_path, "train.epochs=2", "resume=never") == 0
    caplog.clear()
    assert _run(photos, tmp_path, "train.epochs=3", "resume=auto") == 0
    epochs = [m for m in read_metrics(tmp_path / "r" / "metrics.jsonl") if m["kind"] == "epoch"]
    assert [m["epoch"] for m in epochs] == [0, 1, 2]
    steps = epochs[0]["step"]  # optimizer steps per epoch
    said = caplog.text  # a warning: zoo.train's logger, which `zoo train` shows on stderr
    assert "train.epochs changed 2 -> 3 on resume" in said, said[-3000:]
    assert f"({3 * steps} optimizer steps instead of {2 * steps})" in said
    # the lr it names is the one the resumed epoch trained with: the 3-epoch schedule at step 2*steps
    resumed_lr = max(epochs[2]["lr_groups"].values())
    assert f"from 0 to {resumed_lr:.3g}" in said, said[-3000:]
    # the first two epochs ended at the old schedule's end; the resumed one starts on the new schedule
    assert epochs[1]["lr"] == pytest.approx(0.0, abs=1e-12) and resumed_lr > 0


def test_resume_clears_what_killed_writes_left(photos, tmp_path, capsys):
    """A SIGKILL mid-write leaves a partial state folder or an atomic write's temporary file: resuming removes
    them (tests/test_faults.py kills at random moments; this plants both kinds where a kill would leave them)."""
    assert _run(photos, tmp_path, "resume=never") == 0
    run = tmp_path / "r"
    partial = run / "states" / ".tmp-00000099"
    partial.mkdir()
    (partial / "optimizer.bin").write_bytes(b"\0" * 8)
    torn = run / ".best.safetensors.tmp-0a1b2c3d.safetensors"
    torn.write_bytes(b"\0" * 8)
    assert _run(photos, tmp_path, "resume=auto") == 0
    assert "resumed from" in capsys.readouterr().out
    assert not partial.exists() and not torn.exists()
    assert sorted(p.name for p in run.rglob(".*") if ".tmp-" in p.name) == []
