"""The data paths on real photos (tests/photo_corpus.py): mixed sizes, modes and EXIF rotations, stores of
several sizes, every augmentation preset and interpolation, the fast path against the PIL reference, the
parallel store build, and the train loader's full batches."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zoo.backbones.base import make_data_config
from zoo.data import load_dataset
from zoo.data.decode import decode_image
from zoo.data.fast import BatchTransform, TensorStore, store_size
from zoo.data.loaders import build_loaders
from zoo.data.resample import FILTERS
from zoo.data.transforms import PRESETS, build_transform
from zoo.errors import ConfigError, DataError
from zoo.train.run import train
from zoo.train.schema import DataConfig


@pytest.fixture(scope="module")
def photos(photo_corpus):
    return load_dataset(photo_corpus, val_size=0.2, progress=False)


def _levels(a: torch.Tensor, b: torch.Tensor, cfg: dict) -> torch.Tensor:
    """|a - b| in 8-bit levels, both outputs unnormalised and rounded as PIL rounds (half up)."""
    std, mean = (torch.tensor(cfg[k]).view(1, 3, 1, 1) for k in ("std", "mean"))
    return (torch.floor((a * std + mean) * 255 + 0.5) - torch.floor((b * std + mean) * 255 + 0.5)).abs()


def _within_one_level(diff: torch.Tensor) -> bool:
    """8-bit outputs equal to within one level; two levels allowed on 1 value in 10,000 (PIL's fixed-point
    weights can tip a tie in its 8-bit intermediate, which the next pass then scales)."""
    return bool(diff.max() <= 2 and (diff > 1).float().mean() <= 1e-4)


def _mapped_from(t: torch.Tensor) -> Path | None:
    """The file whose memory mapping holds the tensor's first byte (Linux /proc/self/maps), or None."""
    address = t.data_ptr()
    for line in Path("/proc/self/maps").read_text().splitlines():
        parts = line.split(maxsplit=5)
        path = parts[5] if len(parts) == 6 else ""
        start, end = (int(x, 16) for x in parts[0].split("-"))
        if start <= address < end and path.startswith("/"):
            return Path(path)
    return None


def test_corpus_is_photos_of_every_kind(photo_corpus, photos):
    files = sorted(Path(photo_corpus).glob("*/*.*"))
    kinds = {(Image.open(f).format, Image.open(f).mode, Image.open(f).getexif().get(0x0112)) for f in files}
    assert {m for _, m, _ in kinds} >= {"RGB", "L", "CMYK", "RGBA", "P"}
    assert {o for *_, o in kinds} >= {3, 6, 8} and {f for f, *_ in kinds} == {"JPEG", "PNG"}
    assert photos.num_classes == 10 and len(photos["train"]) + len(photos["validation"]) == len(files)
    sizes = np.array([Image.open(f).size for f in files])
    assert sizes.min() >= 150 and sizes.max() <= 600 and len({tuple(s) for s in sizes}) > len(files) // 2
    aspect = sizes[:, 0] / sizes[:, 1]
    assert aspect.min() < 0.7 and aspect.max() > 1.4
    # an EXIF-rotated file is stored sideways and loads upright, as RGB
    f = next(f for f in files if Image.open(f).getexif().get(0x0112) == 6)
    img = decode_image({"path": str(f), "bytes": None}, None)
    assert img.shape[1:] == Image.open(f).size  # (h, w) of the upright photo = (w, h) as stored


def test_parallel_store_build_is_bit_exact_and_streams_to_disk(photos, tmp_path):
    split = photos["train"]
    one = TensorStore.from_split(split, size=64, progress=False, num_proc=1)
    two = TensorStore.from_split(split, size=64, cache_dir=tmp_path, progress=False, num_proc=2)
    assert one.images.shape == (len(split), 3, 64, 64) and torch.equal(one.images, two.images)
    assert torch.equal(two.labels, torch.tensor(split["label"]))
    [stored] = tmp_path.glob("store-*/images.npy")
    assert not list(tmp_path.glob("store-*/*.tmp"))
    # streamed to disk: the store's pixels are the file's pages mapped into memory, not a copy in RAM
    assert _mapped_from(two.images) == stored.resolve()
    assert _mapped_from(two.images.clone()) is None  # what a copy in RAM would look like
    # each stored image is the photo exactly as the per-sample path decodes it (upright, RGB), shorter
    # side resized and center-cropped
    from zoo.data.decode import shorter_side_resize

    for i in range(len(split)):
        ref = np.asarray(shorter_side_resize(split[i]["image"], 64)).transpose(2, 0, 1)
        assert np.array_equal(one.images[i].numpy(), ref), i


def test_parallel_store_build_reports_mixed_sizes(photos):
    with pytest.raises(DataError, match=r"images of different sizes need TensorStore.from_split\(split, size=S\)"):
        TensorStore.from_split(photos["train"], size=None, progress=False, num_proc=2)


def _stores(photos) -> dict[str, torch.Tensor]:
    """uint8 batches as the fast path stores them: 32-px (CIFAR-like), 256-px (a 224 model's store from
    photos), and a non-square one (a folder of same-size 4:3 photos, kept at its own size)."""
    split = photos["train"].select(range(24))
    small = split.map(lambda r: {"image": r["image"].resize((32, 32), Image.BICUBIC)})
    wide = split.map(lambda r: {"image": r["image"].resize((160, 120), Image.BICUBIC)})
    return {"32px": TensorStore.from_split(small, progress=False).images,
            "256px": TensorStore.from_split(split, size=256, progress=False).images,
            "160x120": TensorStore.from_split(wide, progress=False).images}


def test_fast_train_transform_every_preset_on_every_store(photos, monkeypatch):
    """Train-mode batches keep coming, for every preset and store size. Photo stores used to fail within a
    few batches with a KeyError: the box-weight cache was cleared under the batch being built once it
    passed its size limit (lowered here so that it fills within two batches, as 64 MB does in an epoch)."""
    cfg = make_data_config(128, interpolation="bicubic", crop_pct=0.5)  # photos are stored at 256 px
    monkeypatch.setattr(BatchTransform, "box_cache_bytes", 4 * 128 * 256 * 4)
    stores = _stores(photos)
    assert stores["256px"].shape[-2:] == (256, 256) == (store_size(cfg),) * 2
    assert stores["160x120"].shape[-2:] == (120, 160)
    for name, images in stores.items():
        for preset in PRESETS:
            bt = BatchTransform(cfg, train=True, preset=preset, generator=torch.Generator().manual_seed(0))
            batches = 8 if preset == "flip-crop" else 1
            for k in range(batches):
                out = bt(images[(torch.arange(8) + 5 * k) % len(images)])
                assert out.shape == (8, 3, 128, 128) and torch.isfinite(out).all(), (name, preset)
            held = sum(len(c) * key[1] * key[2] * 4 for key, c in bt._box_cache.items())
            assert held <= bt.box_cache_bytes + 2 * 8 * 128 * 256 * 4, (name, preset)  # bounded


@pytest.mark.parametrize("preset", PRESETS)
def test_fast_path_trains_every_preset_on_photos_in_bf16(photo_corpus, tmp_path, preset):
    """The fruits recipe's failure, replayed small: photos, a shipped preset, bf16 as the recipes ship."""
    [s] = train({"name": "p", "model": {"name": "timm:test_resnet", "pretrained": False},
                 "data": {"spec": f"imagefolder:{photo_corpus}", "image_size": 48, "batch_size": 8, "limit": 16,
                          "augment": preset, "val_size": 0.2},
                 "train": {"epochs": 1, "mixed_precision": "bf16"}, "output": {"dir": str(tmp_path)},
                 "resume": "never"})
    assert np.isfinite(s.final_top1) and s.epochs_run == 1


def _fix_pil_random(transform, box: tuple[int, int, int, int], flip: bool, monkeypatch) -> None:
    """Make the PIL path's random crop ``box`` (top, left, height, width) and its flip ``flip``."""
    import torchvision.transforms as T
    from timm.data.transforms import RandomResizedCropAndInterpolation

    monkeypatch.setattr(RandomResizedCropAndInterpolation, "get_params", staticmethod(lambda img, s, r: box))
    primary = transform.full.transforms[0]
    for i, t in enumerate(primary.transforms):
        if isinstance(t, T.RandomHorizontalFlip):  # deterministic and drawing no random number
            primary.transforms[i] = (
                (lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)) if flip else (lambda im: im))


@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
def test_fast_train_matches_pil_for_a_fixed_crop_box(photos, monkeypatch, interpolation):
    """The random crop and flip fixed, the fast train transform is PIL's to within one 8-bit level (see
    _within_one_level), for a downscaling box, an upscaling box and a box touching the border, flipped
    and not."""
    src = TensorStore.from_split(photos["train"].select(range(6)), size=256, progress=False).images
    cfg = make_data_config(96, interpolation=interpolation, mean=(0.5,) * 3, std=(0.5,) * 3)
    for box in [(20, 31, 150, 190), (100, 7, 40, 64), (0, 0, 256, 200)]:
        for flip in (False, True):
            ref_t = build_transform(cfg, train=True, preset="flip-crop")
            _fix_pil_random(ref_t, box, flip, monkeypatch)
            ref = torch.stack([ref_t(Image.fromarray(x.permute(1, 2, 0).numpy())) for x in src])
            bt = BatchTransform(cfg, train=True, preset="flip-crop")
            bt._draw = lambda b, h, w, box=box, flip=flip: (torch.tensor([box] * b), torch.full((b,), flip))
            diff = _levels(bt(src), ref, cfg)
            assert _within_one_level(diff), (box, flip, float(diff.max()), float((diff > 1).float().mean()))


@pytest.mark.parametrize("preset", ["randaugment", "trivialaugment"])
def test_augment_presets_are_one_augmentation_on_both_paths(photos, monkeypatch, preset):
    """``randaugment``/``trivialaugment`` are the same code on the same 8-bit crop on both paths: with the
    crop box fixed (at the input size, so no resampling differs) and the same random state, the outputs
    are equal."""
    src = TensorStore.from_split(photos["train"].select(range(8)), size=128, progress=False).images
    cfg = make_data_config(96, mean=(0.5,) * 3, std=(0.5,) * 3)
    box = (10, 20, 96, 96)
    ref_t = build_transform(cfg, train=True, preset=preset)
    _fix_pil_random(ref_t, box, True, monkeypatch)
    bt = BatchTransform(cfg, train=True, preset=preset)
    bt._draw = lambda b, h, w: (torch.tensor([box] * b), torch.ones(b, dtype=torch.bool))
    changed = 0
    for i, x in enumerate(src):
        torch.manual_seed(i)
        ref = ref_t(Image.fromarray(x.permute(1, 2, 0).numpy()))
        torch.manual_seed(i)
        fast = bt(x[None])[0]
        assert torch.allclose(fast, ref, atol=1e-5), (i, float((fast - ref).abs().max()))
        plain = x[:, 10:106, 20:116].flip(-1).float() / 127.5 - 1
        changed += not torch.allclose(fast, plain, atol=1e-5)
    assert changed >= 4  # and it does augment


@pytest.mark.parametrize("interpolation", list(FILTERS))
def test_every_interpolation_matches_pil(photos, interpolation):
    """Each interpolation a data config can name (hf backbones report ``hamming``) is PIL's, not bilinear."""
    split = photos["train"].select(range(8))
    cfg = make_data_config(64, interpolation=interpolation, crop_pct=0.9)
    store = TensorStore.from_split(split, size=200, progress=False)  # downscaled ~3x: the filters differ
    fast = BatchTransform(cfg, train=False)(store.images)
    ref = torch.stack([build_transform(cfg, train=False)(Image.fromarray(x.permute(1, 2, 0).numpy()))
                       for x in store.images])
    diff = _levels(fast, ref, cfg)
    assert _within_one_level(diff) and diff.mean() < 0.3, (interpolation, float(diff.max()), float(diff.mean()))


def test_unknown_interpolation_is_an_error_naming_it():
    with pytest.raises(ConfigError, match=r"interpolation 'random' is not supported by the fast path.*hamming"):
        BatchTransform(make_data_config(32, interpolation="random"), train=False)


class _DS:
    def __init__(self, splits: dict) -> None:
        self.splits = splits

    def __getitem__(self, k: str):
        return self.splits[k]


def _data_cfg(**kw) -> DataConfig:
    # the PIL path without worker processes (quicker here); the fast path with the default setting
    workers = DataConfig().num_workers if kw.get("fast", True) else 0
    return DataConfig(**{"batch_size": 8, "augment": "flip-crop", "num_workers": workers, **kw})


@pytest.mark.parametrize("fast", [True, False])
def test_train_loader_gives_only_full_batches(photos, fast):
    ds = _DS({"train": photos["train"].select(range(21)), "validation": photos["validation"]})
    notes: list[str] = []
    loaders = build_loaders(ds, make_data_config(32), _data_cfg(fast=fast), warn=notes.append)
    sizes = [len(y) for _, y in loaders.train]
    assert sizes == [8, 8] and not notes  # 21 = 8 + 8 + 5: the short batch is dropped, as timm does
    assert sum(len(y) for _, y in loaders.eval["validation"]) == len(photos["validation"])  # eval keeps all

    small = _DS({"train": photos["train"].select(range(5)), "validation": photos["validation"]})
    loaders = build_loaders(small, make_data_config(32), _data_cfg(fast=fast), warn=notes.append)
    assert [len(y) for _, y in loaders.train] == [4]
    assert len(notes) == 1 and "5 images, fewer than data.batch_size=8: training on batches of 4" in notes[0]


def test_ignored_num_workers_warns_once_on_the_fast_path(photos):
    ds = _DS({"train": photos["train"].select(range(16)), "validation": photos["validation"]})
    notes: list[str] = []
    build_loaders(ds, make_data_config(32), _data_cfg(num_workers=8), warn=notes.append)
    assert len(notes) == 1 and "data.num_workers=8 is ignored on the fast path" in notes[0]
    notes.clear()
    build_loaders(ds, make_data_config(32), _data_cfg(num_workers=DataConfig().num_workers), warn=notes.append)
    build_loaders(ds, make_data_config(32), _data_cfg(num_workers=0), warn=notes.append)  # what it does anyway
    build_loaders(ds, make_data_config(32), _data_cfg(num_workers=1, fast=False), warn=notes.append)  # used
    assert notes == []
    with warnings.catch_warnings(record=True) as caught:  # without a warn hook: one UserWarning
        warnings.simplefilter("always")
        build_loaders(ds, make_data_config(32), _data_cfg(num_workers=8))
    assert [str(w.message)[:24] for w in caught] == ["data.num_workers=8 is ig"]


@pytest.mark.parametrize("fast", [True, False])
def test_mixup_on_an_odd_sized_dataset(photo_corpus, tmp_path, fast):
    """21 training photos in batches of 8: mixup/cutmix see two full, even batches; no fallback needed."""
    [s] = train({"name": "m", "model": {"name": "timm:test_resnet", "pretrained": False},
                 "data": {"spec": f"imagefolder:{photo_corpus}", "image_size": 32, "batch_size": 8, "limit": 21,
                          "augment": "flip-crop", "val_size": 0.2, "fast": fast, "num_workers": 0},
                 "train": {"epochs": 1, "mixup": 0.2, "cutmix": 1.0, "label_smoothing": 0.1},
                 "output": {"dir": str(tmp_path)}, "resume": "never"})
    assert s.epochs_run == 1 and np.isfinite(s.final_top1)
    with pytest.raises(ConfigError, match=r"train.mixup/train.cutmix need an even data.batch_size, got 7"):
        train({"name": "m", "model": {"name": "timm:test_resnet", "pretrained": False},
               "data": {"spec": f"imagefolder:{photo_corpus}", "image_size": 32, "batch_size": 7, "limit": 21},
               "train": {"epochs": 1, "mixup": 0.2}, "output": {"dir": str(tmp_path)}, "resume": "never"})
