"""Transforms from the model's data config: the PIL reference path, the fast tensor path, and mixing."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from synthetic_data import make_cifar_like

import zoo
from zoo.backbones.base import make_data_config
from zoo.data import load_dataset
from zoo.data.fast import BatchTransform, TensorStore, store_size
from zoo.data.mixing import build_mixup
from zoo.data.transforms import PRESETS, batch_fn, build_transform, collate
from zoo.errors import ConfigError, DataError
from zoo.train.losses import build_loss


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    return load_dataset(make_cifar_like(tmp_path_factory.mktemp("c") / "d", n_per_class=4, fmt="disk"),
                        progress=False)


def _configs(tiny_hf_dir=None):
    cfgs = {name: zoo.create_model(f"timm:{name}", pretrained=False).data_config
            for name in ("test_resnet", "test_vit")}
    cfgs["bilinear-0.9"] = make_data_config(224, interpolation="bilinear", crop_pct=0.9)
    cfgs["nonsquare"] = make_data_config((160, 192), mean=(0.5,) * 3, std=(0.5,) * 3, crop_pct=1.0)
    return cfgs


@pytest.mark.parametrize("preset", PRESETS)
def test_reference_sizes_follow_each_model(cifar, preset, tiny_hf_dir):
    cfgs = _configs()
    cfgs["hf-vit"] = zoo.create_model(f"hf:{tiny_hf_dir('vit')}", pretrained=False).data_config
    img = cifar["train"][0]["image"]
    for name, cfg in cfgs.items():
        for train in (False, True):
            out = build_transform(cfg, train=train, preset=preset)(img)
            assert out.dtype == torch.float32 and tuple(out.shape) == tuple(cfg["input_size"]), (name, train)


def test_reference_normalises_with_the_models_mean_std(cifar):
    img = cifar["train"][0]["image"]
    a = build_transform(make_data_config(64, mean=(0.5,) * 3, std=(0.5,) * 3), train=False)(img)
    b = build_transform(make_data_config(64), train=False)(img)  # ImageNet mean/std
    raw = a * 0.5 + 0.5
    assert torch.allclose(b, (raw - torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1))
                          / torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1), atol=1e-5)


def test_upsample_false_keeps_low_res(cifar):
    img = cifar["train"][0]["image"]
    cfg = make_data_config(224)
    for train in (False, True):
        assert build_transform(cfg, train=train, upsample=False)(img).shape == (3, 32, 32)
        assert BatchTransform(cfg, train=train, upsample=False)(
            torch.zeros(2, 3, 32, 32, dtype=torch.uint8)).shape == (2, 3, 32, 32)
    big = img.resize((300, 300))
    assert build_transform(cfg, train=False, upsample=False)(big).shape == (3, 224, 224)


def test_bad_preset_message():
    with pytest.raises(ConfigError, match=r"unknown augmentation preset 'flip'; use one of none, flip-crop, "
                                          r"randaugment, trivialaugment"):
        build_transform(make_data_config(32), train=True, preset="flip")


@pytest.mark.parametrize("name", ["test_resnet", "test_vit", "bilinear-0.9", "nonsquare"])
def test_fast_eval_matches_reference(cifar, name):
    cfg = _configs()[name]
    store = TensorStore.from_split(cifar["train"], progress=False)
    fast = BatchTransform(cfg, train=False)(store.images[:12])
    ref = torch.stack([build_transform(cfg, train=False)(cifar["train"][i]["image"]) for i in range(12)])
    assert fast.shape == ref.shape == (12, *cfg["input_size"])
    std = torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    diff = ((fast - ref) * std * 255).abs()  # in 8-bit levels
    assert diff.max() <= 2.0 and diff.mean() < 0.5  # PIL rounds each pass to 8 bits; we round once


def test_fast_eval_matches_reference_on_large_non_square_photos(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        for i in range(3):
            small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)  # smooth-ish: upscaled noise
            Image.fromarray(small).resize((400, 300), Image.BILINEAR).save(tmp_path / c / f"{i}.png")
    ds = load_dataset(str(tmp_path), val_size=2, progress=False)
    cfg = make_data_config(64, crop_pct=0.875)
    store = TensorStore.from_split(ds["train"], size=store_size(cfg), progress=False)
    assert store.images.shape[-2:] == (73, 73)
    fast = BatchTransform(cfg, train=False)(store.images)
    ref = torch.stack([build_transform(cfg, train=False)(ex["image"]) for ex in ds["train"]])
    diff = ((fast - ref) * torch.tensor(cfg["std"]).view(1, 3, 1, 1) * 255).abs()
    assert diff.mean() < 2.0  # two resizes (store, then model) vs one: within resize tolerance


def test_fast_train_presets_shapes_randomness_and_seed(cifar):
    x = TensorStore.from_split(cifar["train"], progress=False).images[:8]
    cfg = make_data_config(48)
    for preset in PRESETS:
        out = BatchTransform(cfg, train=True, preset=preset)(x)
        assert out.shape == (8, 3, 48, 48) and out.dtype == torch.float32 and torch.isfinite(out).all()
    a = BatchTransform(cfg, train=True, generator=torch.Generator().manual_seed(1))(x)
    b = BatchTransform(cfg, train=True, generator=torch.Generator().manual_seed(1))(x)
    c = BatchTransform(cfg, train=True, generator=torch.Generator().manual_seed(2))(x)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a, BatchTransform(cfg, train=False)(x))  # it augments


def test_fast_flip_is_a_mirror():
    """With the crop forced to the whole image, a flipped output is the mirror of an unflipped one."""
    from zoo.data.resample import apply_weights, resample_weights

    x = torch.randint(0, 256, (2, 3, 10, 10), dtype=torch.uint8)
    x[1] = x[0]
    zero, full = torch.zeros(2), torch.full((2,), 10.0)
    wy = resample_weights(10, zero, full, 20, "bicubic")
    wx = resample_weights(10, zero, full, 20, "bicubic", flip=torch.tensor([False, True]))
    out = apply_weights(x, wy, wx)
    assert torch.allclose(out[0], out[1].flip(-1), atol=1e-4)


def test_batch_transform_rejects_float_input():
    with pytest.raises(DataError, match=r"BatchTransform wants uint8 \[B, 3, h, w\], got torch.float32 \(2, 3, 8, 8\)"):
        BatchTransform(make_data_config(8), train=False)(torch.zeros(2, 3, 8, 8))


def test_tensor_store_and_disk_cache(cifar, tmp_path):
    store = TensorStore.from_split(cifar["train"], progress=False)
    assert store.images.dtype == torch.uint8 and store.images.shape == (len(cifar["train"]), 3, 32, 32)
    assert store.labels.tolist() == cifar["train"]["label"]
    img, label = store[3]
    assert np.array_equal(img.permute(1, 2, 0).numpy(), np.asarray(cifar["train"][3]["image"]))
    assert label == cifar["train"][3]["label"]
    x, y = next(iter(store.loader(batch_size=5)))
    assert x.shape == (5, 3, 32, 32) and y.tolist() == store.labels[:5].tolist()

    a = TensorStore.from_split(cifar["train"], size=40, cache_dir=tmp_path, progress=False)
    files = list(tmp_path.glob("store-*/images.npy"))
    assert len(files) == 1 and a.images.shape[-2:] == (40, 40)
    b = TensorStore.from_split(cifar["train"], size=40, cache_dir=tmp_path, progress=False)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels) and a.fingerprint == b.fingerprint
    TensorStore.from_split(cifar["train"], size=24, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("store-*/images.npy"))) == 2  # keyed by the resize setting


def test_tensor_store_mixed_sizes_needs_size(tmp_path):
    from PIL import Image

    for i, s in enumerate((20, 30)):
        for c in ("a", "b"):  # two classes: one is an error since a classifier cannot learn from it
            (tmp_path / c).mkdir(exist_ok=True)
            Image.new("RGB", (s, s)).save(tmp_path / c / f"{i}.png")
            Image.new("RGB", (s, s)).save(tmp_path / c / f"{i}b.png")
    ds = load_dataset(str(tmp_path), val_size=1, progress=False)
    with pytest.raises(DataError, match=r"images of different sizes need TensorStore.from_split\(split, size=S\)"):
        TensorStore.from_split(ds["train"], progress=False)
    assert TensorStore.from_split(ds["train"], size=16, progress=False).images.shape[-2:] == (16, 16)


def test_reference_path_through_with_transform(cifar):
    split = cifar["train"].with_transform(batch_fn(build_transform(make_data_config(40), train=True)))
    x, y = next(iter(torch.utils.data.DataLoader(split, batch_size=4, collate_fn=collate)))
    assert x.shape == (4, 3, 40, 40) and y.dtype == torch.long


def test_mixup_hooks():
    assert build_mixup(0, 0, 0.1, 10) is None
    assert isinstance(build_loss(None, 0.1), torch.nn.CrossEntropyLoss)
    mix = build_mixup(0.8, 1.0, 0.1, 10)
    x, y = mix(torch.randn(4, 3, 8, 8), torch.arange(4))
    assert y.shape == (4, 10) and torch.allclose(y.sum(1), torch.ones(4)) and (y.max(1).values < 1).all()
    loss = build_loss(mix)(torch.randn(4, 10), y)
    assert loss.ndim == 0 and loss > 0
    # the ranges are checked once, by the recipe schema, before anything is built
    from zoo.train.recipe import load_recipe

    with pytest.raises(ConfigError, match=r"'train.mixup' must be >= 0"):
        load_recipe(Path(__file__).resolve().parents[1] / "recipes/quickstart.yaml", ["train.mixup=-1"])
    with pytest.raises(ConfigError, match=r"'train.label_smoothing' must be in \[0, 1\)"):
        load_recipe(Path(__file__).resolve().parents[1] / "recipes/quickstart.yaml", ["train.label_smoothing=1.5"])


def test_train_batch_weights_cache_is_exact():
    """The per-box weight cache must give exactly what building every sample's weights would."""
    import torch

    from zoo.data.fast import BatchTransform
    from zoo.data.resample import apply_weights, resample_weights, rrc_boxes
    from zoo.data.transforms import TRAIN_RATIO, TRAIN_SCALE

    cfg = {"input_size": (3, 64, 64), "interpolation": "bicubic", "mean": (0.5,) * 3, "std": (0.5,) * 3,
           "crop_pct": 0.875, "crop_mode": "center"}
    x = torch.randint(0, 255, (64, 3, 16, 16), dtype=torch.uint8)
    bt = BatchTransform(cfg, train=True, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    for _ in range(3):  # later batches hit the cache
        out = bt(x)
        boxes = rrc_boxes(64, 16, 16, TRAIN_SCALE, TRAIN_RATIO, g)
        flip = torch.rand(64, generator=g) < 0.5
        wy = resample_weights(16, boxes[:, 0], boxes[:, 2], 64, "bicubic")
        wx = resample_weights(16, boxes[:, 1], boxes[:, 3], 64, "bicubic", flip=flip)
        assert torch.equal(out, apply_weights(x, wy, wx, bt.scale, bt.shift))
    assert bt._box_cache
