"""Pushing and pulling through the real huggingface_hub client against tests/hub_server.py on 127.0.0.1,
loading from a huggingface_hub-style cache offline, and failed pushes that leave the folder intact."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import safetensors.torch
import torch
import yaml

import zoo
from zoo.artifact.hub import PushError
from zoo.errors import CheckpointError

sys.path.insert(0, str(Path(__file__).parent))
from hub_server import HubServer  # noqa: E402

LABELS = ["cat", "dog", "eel"]


@pytest.fixture
def artifact(tmp_path):
    model = zoo.create_model("timm:test_resnet.r160_in1k", num_classes=3, pretrained=False)
    model.reset_classifier(3, LABELS)
    model.eval()
    path = zoo.save(
        model, tmp_path / "art", metrics={"test_top1": 0.8}, dataset={"name": "uoft-cs/cifar10", "fingerprint": "f00d"}
    )
    return model, path


@pytest.fixture
def hub():
    with HubServer(lifetime=120) as server:
        yield server


@pytest.fixture
def online(hub, monkeypatch):
    """In-process client pointed at the test server (huggingface_hub read HF_ENDPOINT at import)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    return hub


def _env(hub: HubServer, tmp_path: Path) -> dict[str, str]:
    return dict(
        os.environ, HF_ENDPOINT=hub.url, HF_HUB_OFFLINE="0", HF_HOME=str(tmp_path / "hf-home"), HF_TOKEN="test-token"
    )


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


FRESH = """
import json, sys, torch, timm, safetensors.torch, zoo
from transformers import AutoModelForImageClassification
x = safetensors.torch.load_file(sys.argv[1])["x"]
m = zoo.load("user/repo")
t = timm.create_model("hf-hub:user/repo", pretrained=True).eval()
h = AutoModelForImageClassification.from_pretrained("user/repo").eval()
with torch.no_grad():
    out = {"zoo": m(x).tolist(), "timm": t(x).tolist(), "transformers": h(pixel_values=x).logits.tolist()}
out["labels"] = [m.label_names, t.pretrained_cfg["label_names"], [h.config.id2label[i] for i in range(3)]]
print(json.dumps(out))
"""


def test_push_then_load_in_a_fresh_process_gives_same_predictions(artifact, hub, tmp_path):
    model, path = artifact
    env = _env(hub, tmp_path)
    before = _digest(path)
    push = subprocess.run(
        [sys.executable, "-m", "zoo", "push", str(path), "user/repo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert push.returncode == 0, push.stderr
    assert push.stdout.strip() == f"{hub.url}/user/repo"
    assert _digest(path) == before
    files = hub.state.files("user/repo")
    assert sorted(files) == ["README.md", "checksums.sha256", "config.json", "model.safetensors", "zoo.json"]
    assert files["model.safetensors"] == (path / "model.safetensors").read_bytes()
    card = files["README.md"].decode()
    front = yaml.safe_load(card.split("---")[1])
    assert front["library_name"] == "timm" and front["pipeline_tag"] == "image-classification"
    assert front["base_model"] == "timm/test_resnet.r160_in1k" and front["datasets"] == ["uoft-cs/cifar10"]
    assert front["license"] and {"zoo", "image-classification"} <= set(front["tags"])
    assert front["model-index"][0]["results"][0]["metrics"][0]["value"] == 0.8
    assert 'zoo.load("user/repo")' in card and 'timm.create_model("hf-hub:user/repo", pretrained=True)' in card

    x = torch.randn(2, 3, 160, 160)
    safetensors.torch.save_file({"x": x}, str(tmp_path / "x.safetensors"))
    fresh = subprocess.run(
        [sys.executable, "-c", FRESH, str(tmp_path / "x.safetensors")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    out = json.loads(fresh.stdout.strip().splitlines()[-1])
    with torch.no_grad():
        ref = model(x)
    assert torch.equal(torch.tensor(out["zoo"]), ref)
    for key in ("timm", "transformers"):
        assert torch.allclose(torch.tensor(out[key]), ref, atol=1e-5, rtol=0)
    assert out["labels"] == [LABELS] * 3


def test_push_to_branch_and_as_pull_request(artifact, online):
    _, path = artifact
    url = zoo.push_to_hub(path, "user/repo", revision="epoch-1", commit_message="checkpoint 1")
    assert url == f"{online.url}/user/repo/tree/epoch-1"
    assert "model.safetensors" in online.state.files("user/repo", "epoch-1")
    assert online.state.files("user/repo", "main") == {}
    pr = zoo.push_to_hub(path, "user/repo", create_pr=True)
    assert pr == f"{online.url}/user/repo/discussions/1"
    assert "config.json" in online.state.files("user/repo", "refs/pr/1")


@pytest.mark.parametrize("case", ["auth", "network", "no-repo", "offline"])
def test_failed_push_leaves_folder_intact_and_says_how_to_retry(artifact, tmp_path, monkeypatch, case):
    from huggingface_hub import constants

    _, path = artifact
    before = _digest(path)
    server = HubServer(token="right-token", allow_create=case != "no-repo", lifetime=60).start()
    try:
        url = server.url
        if case == "network":
            server.stop()
        monkeypatch.setattr(constants, "ENDPOINT", url)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", case == "offline")
        token = "wrong-token" if case == "auth" else "right-token"
        with pytest.raises(PushError) as info:
            zoo.push_to_hub(path, "user/repo", token=token)
    finally:
        server.stop()
    message = str(info.value)
    retry = f"The local artifact {path} is unchanged; retry with `zoo push {path} user/repo`."
    assert message.endswith(retry)
    expected = {
        "auth": f"push to 'user/repo' at {url} failed while trying to create the repo: HTTP 401, authentication "
        f"refused: log in with `hf auth login` or pass a valid token (HF_TOKEN)",
        "network": f"cannot push to 'user/repo': the Hub at {url} cannot be reached (Connection refused).",
        "no-repo": f"push to 'user/repo' at {url} failed while trying to create the repo: HTTP 403, permission "
        f"denied: the token cannot write to this namespace or repo",
        "offline": "cannot push to 'user/repo': HF_HUB_OFFLINE is set. Unset it and retry.",
    }[case]
    assert message.startswith(expected), message
    assert _digest(path) == before


def test_push_refuses_a_folder_that_is_not_an_artifact(tmp_path, online):
    with pytest.raises(
        CheckpointError,
        match=re.escape(
            f"{tmp_path} is not a zoo artifact (missing model.safetensors, config.json); write one with "
            f"zoo.save(model, '{tmp_path}') first"
        ),
    ):
        zoo.push_to_hub(tmp_path, "user/repo")


def _fake_cache(cache: Path, repo_id: str, files: dict[str, bytes], ref: str = "main") -> str:
    """A cache laid out as huggingface_hub lays it out: blobs by etag, refs/<ref> -> commit, snapshot links."""
    repo_dir = cache / f"models--{repo_id.replace('/', '--')}"
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / ref).write_text(commit)
    for name, data in files.items():
        etag = hashlib.sha256(data).hexdigest()
        blob = repo_dir / "blobs" / etag
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = repo_dir / "snapshots" / commit / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    return commit


def test_load_from_hub_cache_offline(artifact, tmp_path, monkeypatch):
    from huggingface_hub import constants

    model, path = artifact
    assert constants.is_offline_mode()  # conftest sets HF_HUB_OFFLINE=1 before huggingface_hub is imported
    cache = tmp_path / "hub-cache"
    _fake_cache(cache, "user/cached", {p.name: p.read_bytes() for p in path.iterdir()})
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    loaded = zoo.load("user/cached")
    assert loaded.label_names == LABELS and loaded.zoo_metadata["loaded_from"] == "user/cached"
    x = torch.randn(1, 3, 160, 160)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    with pytest.raises(
        CheckpointError,
        match=re.escape(
            "cannot load user/cached@v2: HF_HUB_OFFLINE=1 is set and it is not in the local cache. Fix: run once "
            "with network access, or set HF_HOME to a cache that has it, or pass a local artifact folder."
        ),
    ):
        zoo.load("user/cached", revision="v2")
    with pytest.raises(CheckpointError, match=re.escape("cannot load user/absent@main: HF_HUB_OFFLINE=1 is set")):
        zoo.load("user/absent")


def test_load_missing_repo_from_server_is_a_clear_error(online):
    with pytest.raises(
        CheckpointError,
        match=re.escape(f"Hub repo 'user/missing' not found or not accessible at {online.url}; check the id"),
    ):
        zoo.load("user/missing")


@pytest.mark.live
@pytest.mark.skipif(not os.environ.get("HF_TOKEN"), reason="needs HF_TOKEN for the real Hugging Face Hub")
def test_live_push_and_load_round_trip(artifact, tmp_path, monkeypatch):
    """Against the real Hub (run with -m live and HF_TOKEN set; needs network): push to a private repo,
    load it back in a fresh process, then delete the repo."""
    from huggingface_hub import HfApi, constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "https://huggingface.co")
    model, path = artifact
    api = HfApi(endpoint="https://huggingface.co")
    repo_id = f"{api.whoami()['name']}/zoo-live-test-{os.getpid()}"
    try:
        zoo.push_to_hub(path, repo_id, private=True)
        env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_ENDPOINT")}
        code = f"import zoo; print(zoo.load('{repo_id}').label_names)"
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip().splitlines()[-1] == str(LABELS)
    finally:
        api.delete_repo(repo_id, missing_ok=True)
