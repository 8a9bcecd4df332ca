"""Transforms from the model's data config: the PIL reference path, the fast path's store and crops, and mixing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from synthetic_data import make_cifar_like

import zoo
from zoo.backbones.base import make_data_config
from zoo.data import load_dataset
from zoo.data.crops import Normalize, SampleCrop
from zoo.data.fast import TensorStore
from zoo.data.mixing import build_mixup
from zoo.data.transforms import PRESETS, batch_fn, build_transform, collate
from zoo.errors import ConfigError, DataError
from zoo.train.losses import build_loss


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    return load_dataset(make_cifar_like(tmp_path_factory.mktemp("c") / "d", n_per_class=4, fmt="disk"), progress=False)


def _configs(tiny_hf_dir=None):
    cfgs = {
        name: zoo.create_model(f"timm:{name}", pretrained=False).data_config for name in ("test_resnet", "test_vit")
    }
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
    assert torch.allclose(
        b,
        (raw - torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1),
        atol=1e-5,
    )


def test_upsample_false_keeps_low_res(cifar):
    img = cifar["train"][0]["image"]
    cfg = make_data_config(224)
    for train in (False, True):
        assert build_transform(cfg, train=train, upsample=False)(img).shape == (3, 32, 32)
        assert SampleCrop(cfg, train=train, upsample=False)(torch.zeros(3, 32, 32, dtype=torch.uint8)).shape == (
            3,
            32,
            32,
        )
    big = img.resize((300, 300))
    assert build_transform(cfg, train=False, upsample=False)(big).shape == (3, 224, 224)


def test_bad_preset_message():
    with pytest.raises(
        ConfigError,
        match=r"unknown augmentation preset 'flip'; use one of none, flip-crop, "
        r"randaugment, trivialaugment",
    ):
        build_transform(make_data_config(32), train=True, preset="flip")


@pytest.mark.parametrize("name", ["test_resnet", "test_vit", "bilinear-0.9", "nonsquare"])
def test_fast_preset_none_is_the_eval_geometry(cifar, name):
    """Training with augment=none on the fast path sees what the reference's eval transform makes (resize to
    input / crop_pct, center crop), upsampled from 32 px here, for square and non-square inputs."""
    cfg = _configs()[name]
    store = TensorStore.from_split(cifar["train"], progress=False)
    crop = SampleCrop(cfg, train=True, preset="none")
    fast = Normalize(cfg)(torch.stack([crop(store.image(i)) for i in range(12)]))
    ref = torch.stack([build_transform(cfg, train=False)(cifar["train"][i]["image"]) for i in range(12)])
    assert fast.shape == ref.shape == (12, *cfg["input_size"])
    std = torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    diff = ((fast - ref) * std * 255).abs()  # in 8-bit levels
    assert diff.max() <= 2.0 and diff.mean() < 0.5


def test_fast_train_crops_random_and_seeded(cifar):
    x = TensorStore.from_split(cifar["train"], progress=False).image(0)
    cfg = make_data_config(48)
    for preset in PRESETS:
        out = SampleCrop(cfg, train=True, preset=preset)(x)
        assert out.shape == (3, 48, 48) and out.dtype == torch.uint8
    crop = SampleCrop(cfg, train=True)

    def draw(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        return torch.stack([crop(x) for _ in range(4)])

    assert torch.equal(draw(1), draw(1)) and not torch.equal(draw(1), draw(2))
    assert not torch.equal(draw(1)[0], SampleCrop(cfg, train=False)(x))  # it augments


def test_fast_flip_is_a_mirror():
    """With the crop forced to the whole image, a flipped crop is the mirror of an unflipped one."""
    x = torch.randint(0, 256, (3, 10, 14), dtype=torch.uint8)
    crop = SampleCrop(make_data_config(20), train=True)
    crop.draw = lambda h, w: ((0, 0, h, w), False)
    plain = crop(x)
    crop.draw = lambda h, w: ((0, 0, h, w), True)
    assert torch.equal(plain, crop(x).flip(-1))


def test_normalize_is_the_references_to_float_rounding():
    """uint8 -> float as ToTensor + Normalize compute it (to float rounding), and only from uint8."""
    import torchvision.transforms as T

    cfg = make_data_config(8)
    x = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    ref = torch.stack([T.Normalize(cfg["mean"], cfg["std"])(T.ToTensor()(im.permute(1, 2, 0).numpy())) for im in x])
    assert torch.allclose(Normalize(cfg)(x), ref, rtol=0, atol=1e-6)
    with pytest.raises(DataError, match=r"Normalize wants uint8 \[B, 3, H, W\], got torch.float32 \(2, 3, 8, 8\)"):
        Normalize(cfg)(torch.zeros(2, 3, 8, 8))


def test_tensor_store_and_disk_cache(cifar, tmp_path):
    store = TensorStore.from_split(cifar["train"], progress=False)
    assert store.images.dtype == torch.uint8 and store.images.shape == (len(cifar["train"]), 3, 32, 32)
    assert store.labels.tolist() == cifar["train"]["label"]
    img, label = store[3]
    assert np.array_equal(img.permute(1, 2, 0).numpy(), np.asarray(cifar["train"][3]["image"]))
    assert label == cifar["train"][3]["label"]

    a = TensorStore.from_split(cifar["train"], size=24, cache_dir=tmp_path, progress=False)
    files = list(tmp_path.glob("store-*/records.bin"))
    assert len(files) == 1 and a.images.shape[-2:] == (24, 24)
    b = TensorStore.from_split(cifar["train"], size=24, cache_dir=tmp_path, progress=False)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels) and a.fingerprint == b.fingerprint
    TensorStore.from_split(cifar["train"], size=16, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("store-*/records.bin"))) == 2  # keyed by the resize setting
    assert TensorStore.from_split(cifar["train"], size=64, progress=False).images.shape[-2:] == (32, 32)  # never up


def test_tensor_store_keeps_mixed_sizes(tmp_path):
    from PIL import Image

    for i, s in enumerate((20, 30)):
        for c in ("a", "b"):  # two classes: one is an error since a classifier cannot learn from it
            (tmp_path / c).mkdir(exist_ok=True)
            Image.new("RGB", (s, s + 4)).save(tmp_path / c / f"{i}.png")
            Image.new("RGB", (s, s + 4)).save(tmp_path / c / f"{i}b.png")
    ds = load_dataset(str(tmp_path), val_size=1, progress=False)
    store = TensorStore.from_split(ds["train"], progress=False)
    assert sorted({tuple(int(v) for v in hw) for hw in store.sizes}) == [(24, 20), (34, 30)]
    with pytest.raises(DataError, match=r"images of different sizes have no \[N, 3, h, w\] view"):
        _ = store.images


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
