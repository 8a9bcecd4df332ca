"""No network and no HF_HUB_OFFLINE: a name that needs the Hub fails in under 3 seconds with the reason (not
after huggingface_hub's ~25 s of retries), and what is in the cache still loads. "No network" is HF_ENDPOINT
pointing at a closed port on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hub_server import HubServer

import zoo
from zoo.backbones import weights
from zoo.errors import WeightsUnavailableError

ROOT = Path(__file__).resolve().parents[1]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed: connections are refused


def _env(tmp_path: Path, endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "ZOO_OFFLINE")}
    return dict(env, HF_ENDPOINT=endpoint, HF_HOME=str(tmp_path / "hf-home"), PYTHONPATH=str(ROOT))


SCRIPT = """
import json, sys, time
import timm, transformers, torch
from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification
import zoo
from zoo.cli import main
from zoo.registry import sources
sources()  # every source imported first: the timing below is the Hub's, not the imports'

out = {}
for name, argv in [("info", ["info", "hf:google/vit-base-patch16-224"]),
                   ("predict", ["predict", "timm:resnet50.a1_in1k", sys.argv[1]]),
                   ("load", ["predict", "user/repo", sys.argv[1]])]:
    start = time.perf_counter()
    rc = main(argv)
    out[name] = {"rc": rc, "seconds": time.perf_counter() - start}
print(json.dumps(out), file=sys.stderr)
"""


@pytest.mark.slow
def test_unreachable_hub_fails_in_under_3_seconds_with_the_reason(tmp_path):
    """The CLI as users run it, HF_ENDPOINT set in the environment (read at import)."""
    from PIL import Image

    Image.new("RGB", (64, 48), "red").save(tmp_path / "img.png")
    port = closed_port()
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "img.png")],
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(tmp_path, f"http://127.0.0.1:{port}"),
    )
    lines = proc.stderr.strip().splitlines()
    timings = json.loads(lines[-1])
    errors = [line for line in lines if line.startswith("zoo: error:")]
    assert "Retrying" not in proc.stderr and "Traceback" not in proc.stderr
    assert len(errors) == 3, proc.stderr
    reason = f"the Hub at http://127.0.0.1:{port} cannot be reached (Connection refused)"
    assert errors[0].startswith(
        "zoo: error: cannot load the config (config.json) for "
        f"'hf:google/vit-base-patch16-224': {reason} and they are not in the local cache."
    )
    assert "pretrained=False" not in errors[0]  # zoo info already builds random weights
    assert errors[1].startswith(f"zoo: error: cannot load pretrained weights for 'timm:resnet50.a1_in1k': {reason}")
    assert "model.pretrained=false" in errors[1]
    assert errors[2].startswith(f"zoo: error: cannot load user/repo@main: {reason} and it is not in the local cache")
    for name, t in timings.items():
        assert t["rc"] == 1, (name, proc.stderr)  # failed work, not bad usage
        assert t["seconds"] < 3.0, (name, t)


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """In-process: huggingface_hub pointed at a closed port, offline mode off, an empty cache."""
    from huggingface_hub import constants

    endpoint = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    weights._probe.cache_clear()
    yield endpoint
    weights._probe.cache_clear()


def test_every_hub_name_fails_fast_in_process(no_network):
    import transformers
    from huggingface_hub import constants

    from zoo.errors import ArtifactUnavailableError
    from zoo.registry import sources

    for auto in ("AutoConfig", "AutoImageProcessor", "AutoModelForImageClassification"):
        getattr(transformers, auto)  # transformers imports these lazily, on first use

    sources()  # import every source (and transformers' lazy modules) first: time the Hub, not the imports
    reason = f"the Hub at {no_network} cannot be reached (Connection refused)"
    calls = {
        "timm": (
            lambda: zoo.create_model("timm:test_resnet.r160_in1k", pretrained=True),  # timm/test_resnet...
            WeightsUnavailableError,
        ),
        "hf": (lambda: zoo.create_model("hf:google/vit-base-patch16-224", pretrained=False), WeightsUnavailableError),
        "load": (lambda: zoo.load("user/repo"), ArtifactUnavailableError),
    }
    for name, (call, error) in calls.items():
        start = time.perf_counter()
        with pytest.raises(error, match=re.escape(reason)):
            call()
        assert time.perf_counter() - start < 3.0, name
        assert constants.HF_HUB_OFFLINE is False  # only the download ran in offline mode
    assert weights.hub_unreachable() == "Connection refused"


LOAD_TWICE = """
import json, sys, time
import zoo, zoo.artifact.load, zoo.artifact.hub
from transformers import AutoConfig, AutoModelForImageClassification
from zoo.errors import ZooError
from zoo.registry import sources
sources()  # imports first: time the load, not the imports
out = {}
for repo in sys.argv[1:]:
    start = time.perf_counter()
    try:
        out[repo] = {"num_classes": zoo.load(repo).num_classes}
    except ZooError as exc:
        out[repo] = {"error": str(exc)}
    out[repo]["seconds"] = time.perf_counter() - start
print(json.dumps(out))
"""


@pytest.mark.slow
def test_a_cached_model_still_loads_when_the_hub_is_gone(tmp_path):
    """Fill the cache from the test Hub, stop the Hub: zoo.load serves the cache at once (huggingface_hub's
    offline mode, switched on by the failed probe), and an uncached repo fails at once."""
    model = zoo.create_model("timm:test_resnet", num_classes=3, pretrained=False)
    path = zoo.save(model.eval(), tmp_path / "art")
    with HubServer(lifetime=300) as hub:
        env = dict(_env(tmp_path, hub.url), HF_TOKEN="test-token")
        fill = "import sys, zoo; zoo.push_to_hub(sys.argv[1], 'user/repo'); print(zoo.load('user/repo').num_classes)"
        proc = subprocess.run(
            [sys.executable, "-c", fill, str(path)], capture_output=True, text=True, timeout=300, env=env
        )
        assert proc.returncode == 0 and proc.stdout.strip() == "3", proc.stderr
    proc = subprocess.run(
        [sys.executable, "-c", LOAD_TWICE, "user/repo", "user/other"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )  # same endpoint, nothing listens there now
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["user/repo"]["num_classes"] == 3 and result["user/repo"]["seconds"] < 3.0
    assert "cannot be reached" in result["user/other"]["error"] and result["user/other"]["seconds"] < 3.0
    assert "Retrying" not in proc.stderr
