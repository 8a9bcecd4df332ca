"""The artifact folder swap (issue 18, item 4): files and folders are fsynced before the swap, a killed swap is
recovered to the newest complete version by its marker's stamp (not by the uuid in the folder name), and
loading never renames anything."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

import zoo
from zoo.fsutil import recover_dir


def _model(seed: int):
    torch.manual_seed(seed)
    model = zoo.create_model("timm:test_resnet", num_classes=3, pretrained=False)
    model.reset_classifier(3, ["cat", "dog", "eel"])
    return model


def _same(a, b) -> bool:
    sa, sb = a.model.state_dict(), b.model.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


def _tree(parent: Path) -> dict[str, float]:
    return {str(p.relative_to(parent)): p.stat().st_mtime_ns for p in sorted(parent.rglob("*"))}


def test_save_fsyncs_every_file_before_the_swap_and_the_parent_after(tmp_path, monkeypatch):
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(src, dst, *args, **kwargs):
        events.append(("replace", f"{src} -> {dst}"))
        return real_replace(src, dst, *args, **kwargs)

    zoo.save(_model(1), tmp_path / "art")  # a first version, so the second save swaps one out
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    target = zoo.save(_model(2), tmp_path / "art")
    monkeypatch.undo()
    swap_in = next(i for i, (kind, what) in enumerate(events) if kind == "replace" and what.endswith(f"-> {target}"))
    staged = Path(events[swap_in][1].split(" -> ")[0])
    synced_before = {what for kind, what in events[:swap_in] if kind == "fsync"}
    for path in target.iterdir():
        assert str(staged / path.name) in synced_before, f"{path.name} was not fsynced before the swap"
    assert str(staged) in synced_before and str(tmp_path) in synced_before
    assert ("fsync", str(tmp_path)) in events[swap_in + 1 :], "the parent folder was not fsynced after the swap"


def test_recovery_takes_the_newest_complete_folder_by_its_marker_and_load_never_renames(tmp_path):
    older, newer, oldest = _model(1), _model(2), _model(3)
    target = tmp_path / "art"
    versions = {
        ".art.tmp-ffffffff": (older, 2_000),
        ".art.tmp-00000000": (newer, 3_000),
        ".art.old-99999999": (oldest, 1_000),
    }
    for name, (model, stamp) in versions.items():
        zoo.save(model, tmp_path / "scratch")
        shutil.move(str(tmp_path / "scratch"), str(tmp_path / name))
        (tmp_path / name / ".complete").write_text(f"{stamp}\n")  # completed at that time_ns
    incomplete = tmp_path / ".art.tmp-zzzzzzzz"  # a save killed before its marker: never a candidate
    shutil.copytree(tmp_path / ".art.tmp-00000000", incomplete)
    (incomplete / ".complete").unlink()
    before = _tree(tmp_path)
    loaded = zoo.load(target)
    assert _same(loaded, newer), "load did not read the newest complete version"
    assert _tree(tmp_path) == before, "zoo.load renamed or wrote files"
    recover_dir(target)  # what the next zoo.save does first
    assert _same(zoo.load(target), newer)
    zoo.save(older, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]
    assert _same(zoo.load(target), older)


def test_loading_after_a_killed_swap_writes_nothing(tmp_path):
    """Killed between the two renames: the new version is staged and complete, the target is gone. A load
    reads the staged version in place (a reader may lack write access, or race a writer)."""
    model = _model(4)
    zoo.save(model, tmp_path / "scratch")
    shutil.move(str(tmp_path / "scratch"), str(tmp_path / ".art.tmp-12345678"))
    (tmp_path / ".art.tmp-12345678" / ".complete").write_text("ok\n")  # a marker as an older zoo wrote it
    before = _tree(tmp_path)
    assert _same(zoo.load(tmp_path / "art"), model)
    assert _tree(tmp_path) == before, "zoo.load renamed or wrote files"
    assert not (tmp_path / "art").exists()
