"""Tests run offline and on CPU: no Hub, no download.pytorch.org, no GPU.

huggingface_hub reads HF_HUB_OFFLINE at import time, so it is set here before anything imports it.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))


def free_port() -> int:
    """A free local port: two accelerate launches in one session must not share torchrun's default 29500."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# ---- in CI a missing browser or anchor script is a failure, not a skip --------------------------------------
# marker -> the variable .ci/run sets: a test so marked that skips (no Chromium, no ../shared/third_party, no
# Playwright) fails instead, so a broken install cannot turn the browser or timm-anchor checks into silent holes
REQUIRED = {"browser": "ZOO_REQUIRE_BROWSER", "anchors": "ZOO_REQUIRE_ANCHORS"}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = (yield).get_result()
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    for marker, env in REQUIRED.items():
        if item.get_closest_marker(marker) and os.environ.get(env) == "1":
            reason = str(report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr)
            report.outcome = "failed"
            report.longrepr = f"{env}=1 (CI) but this {marker} test would skip: {reason.removeprefix('Skipped: ')}"


# ---- tiny Hugging Face models written to disk (no downloads) ---------------------------------
def write_tiny_hf(path: str | os.PathLike, kind: str = "vit", num_labels: int = 5, with_weights: bool = True) -> str:
    """A tiny transformers image classifier saved with save_pretrained, plus its image processor."""
    import transformers as tf

    configs = {
        "vit": lambda: tf.ViTConfig(
            image_size=32,
            patch_size=8,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
        ),
        "dinov2": lambda: tf.Dinov2Config(
            image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2
        ),
        "resnet": lambda: tf.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic"),
        "convnext": lambda: tf.ConvNextConfig(num_stages=2, hidden_sizes=[8, 16], depths=[1, 1], image_size=32),
    }
    config = configs[kind]()
    config.num_labels = num_labels
    config.id2label = {i: f"class_{i}" for i in range(num_labels)}
    config.label2id = {v: k for k, v in config.id2label.items()}
    torch.manual_seed(0)
    model = tf.AutoModelForImageClassification.from_config(config)
    if with_weights:
        model.save_pretrained(path)
    else:
        config.save_pretrained(path)
    processor = tf.ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    processor.save_pretrained(path)
    return str(path)


@pytest.fixture
def tiny_hf_dir(tmp_path):
    """Factory: tiny_hf_dir('vit') -> path of a saved tiny HF classifier."""

    def make(kind: str = "vit", **kwargs) -> str:
        return write_tiny_hf(tmp_path / f"hf-{kind}", kind, **kwargs)

    return make


# ---- a folder of real photos (tests/photo_corpus.py), generated once and kept in pytest's cache ------
# (.pytest_cache/d/photo-corpus-*, reused by later sessions)
PHOTO_CORPORA = {
    # the default suite: 10 classes x 10 photos, 150-600 px (generated in a few seconds)
    "small": dict(per_class=10, min_side=150, max_side=600),
    # the full corpus: 10 classes x 30 photos, 150-1,600 px (about half a minute to generate)
    "full": dict(per_class=30, min_side=150, max_side=1600),
}


def _photo_corpus(config: pytest.Config, factory: pytest.TempPathFactory, kind: str) -> str:
    import shutil

    from photo_corpus import VERSION, make_photo_corpus

    params = PHOTO_CORPORA[kind]
    key = f"photo-corpus-v{VERSION}-{kind}-" + "-".join(f"{v}" for v in params.values())
    cache = getattr(config, "cache", None)  # absent under -p no:cacheprovider: this session's tmp dir then
    root = (cache.mkdir(key) if cache else factory.mktemp(key)) / "photos"
    done = root.with_name("done")  # beside the folder, not in it: it is an image folder
    if not done.is_file():
        tmp = root.with_name("partial")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
        make_photo_corpus(tmp, **params)
        tmp.rename(root)
        done.write_text("ok\n")
    return str(root)


@pytest.fixture(scope="session")
def photo_corpus(pytestconfig, tmp_path_factory) -> str:
    """Path of the small photo corpus: ``root/<class>/<i>.jpg|png``, mixed sizes, modes and EXIF rotations."""
    return _photo_corpus(pytestconfig, tmp_path_factory, "small")


@pytest.fixture(scope="session")
def photo_corpus_full(pytestconfig, tmp_path_factory) -> str:
    """Path of the full photo corpus (30 photos per class, up to 1,600 px)."""
    return _photo_corpus(pytestconfig, tmp_path_factory, "full")
