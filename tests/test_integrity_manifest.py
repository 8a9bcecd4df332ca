"""The integrity manifest covers every file loading reads (issue 18, item 2): labels and preprocessing edited in
zoo.json or config.json are refused with the file's name, and deleting the manifest does not turn it off."""

from __future__ import annotations

import json
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest

import zoo
from zoo.artifact.files import sha256_of
from zoo.cli import main as zoo_main
from zoo.errors import CheckpointError

MANIFEST = "checksums.sha256"


@pytest.fixture
def saved(tmp_path):
    model = zoo.create_model("timm:test_resnet", num_classes=3, pretrained=False)
    model.reset_classifier(3, ["cat", "dog", "eel"])
    return zoo.save(model, tmp_path / "art")


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2))


def _swap_labels_and_mean_in_meta(meta: dict) -> None:
    meta["label_names"] = meta["label_names"][::-1]
    meta["data_config"]["mean"] = [0.5, 0.5, 0.5]


def _swap_labels_and_mean_in_config(config: dict) -> None:
    config["label_names"] = config["label_names"][::-1]
    config["pretrained_cfg"]["mean"] = [0.5, 0.5, 0.5]


@pytest.mark.parametrize("edited", [["zoo.json"], ["config.json"], ["zoo.json", "config.json"]])
def test_reversed_labels_and_changed_mean_are_refused_naming_the_file(saved, tmp_path, capsys, edited):
    assert zoo.load(saved).label_names == ["cat", "dog", "eel"]
    if "zoo.json" in edited:
        _edit(saved / "zoo.json", _swap_labels_and_mean_in_meta)
    if "config.json" in edited:
        _edit(saved / "config.json", _swap_labels_and_mean_in_config)
    named = edited[0] if len(edited) == 1 else "(zoo|config).json"
    with pytest.raises(CheckpointError, match=rf"/{named} is corrupt.*checksums.sha256 recorded"):
        zoo.load(saved)
    from PIL import Image

    Image.new("RGB", (40, 40), "red").save(tmp_path / "x.png")
    rc = zoo_main(["predict", str(saved), str(tmp_path / "x.png"), "--json"])
    captured = capsys.readouterr()
    assert rc != 0 and "eel" not in captured.out and "damaged or edited" in captured.err


def test_deleting_the_manifest_does_not_turn_the_check_off(saved):
    (saved / MANIFEST).unlink()
    with pytest.raises(CheckpointError, match=rf"{MANIFEST} is missing, but .*zoo.json has format_version 2"):
        zoo.load(saved)
    # posing as a format 1 artifact: those recorded the weights' sha256 in zoo.json, so an empty record is refused
    _edit(saved / "zoo.json", lambda m: m.update(format_version=1))
    with pytest.raises(CheckpointError, match=r"zoo.json: field 'files' .* is missing or empty"):
        zoo.load(saved)


def test_a_file_loading_reads_must_be_listed(saved, tmp_path):
    (saved / "preprocessor_config.json").write_text(json.dumps({"image_mean": [0.5] * 3}))
    with pytest.raises(
        CheckpointError,
        match=r"preprocessor_config.json is read when loading but checksums.sha256 "
        r"does not list it",
    ):
        zoo.load(saved)
    (saved / "preprocessor_config.json").unlink()
    lines = (saved / MANIFEST).read_text().splitlines()
    (saved / MANIFEST).write_text("\n".join(x for x in lines if not x.endswith("  zoo.json")) + "\n")
    with pytest.raises(CheckpointError, match=r"zoo.json is read when loading but checksums.sha256 does not list"):
        zoo.load(saved)
    (saved / MANIFEST).write_text("0" * 64 + "  ../outside.json\n")
    with pytest.raises(CheckpointError, match=r"line 1 is not '<sha256>  <file name>'"):
        zoo.load(saved)


def test_the_manifest_is_sha256sum_format(saved):
    if shutil.which("sha256sum") is None:
        pytest.skip("no sha256sum on this machine")
    out = subprocess.run(["sha256sum", "-c", MANIFEST], cwd=saved, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "config.json: OK" in out.stdout and "zoo.json: OK" in out.stdout


def test_hf_preprocessor_config_is_covered(tiny_hf_dir, tmp_path):
    model = zoo.load(tiny_hf_dir("vit", num_labels=3))
    folder = zoo.save(model, tmp_path / "hf-art")
    assert "preprocessor_config.json" in (folder / MANIFEST).read_text()
    _edit(folder / "preprocessor_config.json", lambda c: c.update(image_mean=[0.0, 0.0, 0.0]))
    with pytest.raises(CheckpointError, match=r"preprocessor_config.json is corrupt"):
        zoo.load(folder)


def test_a_format_1_artifact_loads_with_its_weights_checked_and_a_warning(saved):
    """What zoo.save wrote before the manifest: zoo.json format_version 1 with the weights' sha256 in 'files'."""
    (saved / MANIFEST).unlink()
    _edit(
        saved / "zoo.json",
        lambda m: m.update(format_version=1, files={"model.safetensors": sha256_of(saved / "model.safetensors")}),
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert zoo.load(saved).label_names == ["cat", "dog", "eel"]
    assert any("format_version 1 artifact: only its weights are checked" in str(w.message) for w in caught)
    data = bytearray((saved / "model.safetensors").read_bytes())
    data[-100] ^= 0xFF
    (saved / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"model.safetensors is corrupt"):
        zoo.load(saved)
