"""The data paths on real photos (tests/photo_corpus.py): mixed sizes, modes and EXIF rotations, stores of
several sizes, every augmentation preset and interpolation, the fast path's crops against the PIL reference,
the parallel store build, and the train loader's full batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zoo.backbones.base import make_data_config
from zoo.data import load_dataset
from zoo.data.batch_crops import SourceBatch
from zoo.data.crops import INTERPOLATIONS, Normalize, SampleCrop, TrainInput, train_loader
from zoo.data.decode import bounded_size, decode_image
from zoo.data.fast import TensorStore, store_size
from zoo.data.loaders import build_loaders
from zoo.data.transforms import PRESETS, build_transform
from zoo.errors import ConfigError
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
    assert img.shape[:2] == Image.open(f).size  # (h, w) of the upright photo = (w, h) as stored


def test_parallel_store_build_is_bit_exact_and_streams_to_disk(photos, tmp_path):
    split = photos["train"]
    one = TensorStore.from_split(split, size=64, progress=False, num_proc=1)
    two = TensorStore.from_split(split, size=64, cache_dir=tmp_path, progress=False, num_proc=2)
    assert len(one) == len(split) and np.array_equal(one.index, two.index)
    assert np.array_equal(np.asarray(one.data), np.asarray(two.data))
    assert torch.equal(two.labels, torch.tensor(split["label"])) and isinstance(two.data, np.memmap)
    assert len(list(tmp_path.glob("store-*/records.bin"))) == 1 and not list(tmp_path.glob("store-*/*.tmp"))
    # each stored image is the photo exactly as the per-sample path decodes it (upright, RGB), its shorter
    # side resized to 64, its aspect ratio kept
    from zoo.data.decode import bounded_resize

    for i in range(len(split)):
        img = split[i]["image"]
        ref = np.asarray(bounded_resize(img, 64)).transpose(2, 0, 1)
        assert np.array_equal(one.image(i).numpy(), ref), i
        h, w = one.sizes[i]
        assert min(h, w) == 64 and abs(w / h - img.width / img.height) < 2 / 64, (i, (h, w), img.size)


def test_store_keeps_each_photos_aspect_and_judges_every_image(photos):
    """Small and large photos in one folder, the first one small: each large photo is resized once so its
    shorter side is the model's resize size (floor(input / crop_pct)), each small one is kept as it is, and
    every one keeps its aspect ratio. (The store used to judge the folder by its first image and store every
    photo as a center-cropped square, so RandomResizedCrop never saw a 4:3 photo's outer quarter.)"""
    from zoo.data.loaders import _store

    split = photos["train"]
    sizes = [(im.height, im.width) for im in split["image"]]
    first_small = sorted(range(len(split)), key=lambda i: min(sizes[i]))
    split = split.select(first_small)
    cfg = make_data_config(160, crop_pct=0.8)  # resize size 200: the corpus has photos on both sides of it
    store = _store(split, cfg, None)
    assert store_size(cfg) == 200
    small = [i for i, i0 in enumerate(first_small) if min(sizes[i0]) <= 200]
    assert 0 < len(small) < len(split) and small[0] == 0
    for i, i0 in enumerate(first_small):
        h0, w0 = sizes[i0]
        h, w = (int(v) for v in store.sizes[i])
        assert (w, h) == bounded_size(w0, h0, 200), (i, (h0, w0), (h, w))
        assert min(h, w) == min(h0, w0, 200) and abs(w / h - w0 / h0) < 2 / min(h, w), (i, (h0, w0), (h, w))


def test_aspect_cap_keeps_the_centre_of_very_long_images():
    from zoo.data.decode import MAX_ASPECT, bounded_resize

    img = Image.fromarray(np.tile(np.arange(1000, dtype=np.uint8)[None, :, None] % 251, (100, 1, 3)))
    out = bounded_resize(img, 50)  # 1000 x 100 -> 500 x 50, capped at 4:1 -> the central 200 x 50
    assert out.size == (int(MAX_ASPECT * 50), 50)
    full = np.asarray(img.resize((500, 50), Image.BICUBIC))
    assert np.array_equal(np.asarray(out), full[:, 150:350])


def _source_images(photos, n: int = 24) -> list[Image.Image]:
    return list(photos["train"].select(range(n))["image"])


def _stores(photos) -> dict[str, TensorStore]:
    """Stores as the fast path builds them: 32-px (CIFAR-like), photos bounded at 256 px (a 224 model's
    store, every size and aspect ratio), and a folder of same-size 4:3 photos kept at their own size."""
    split = photos["train"].select(range(24))
    small = split.map(lambda r: {"image": r["image"].resize((32, 32), Image.BICUBIC)})
    wide = split.map(lambda r: {"image": r["image"].resize((160, 120), Image.BICUBIC)})
    return {
        "32px": TensorStore.from_split(small, progress=False),
        "256px": TensorStore.from_split(split, size=256, progress=False),
        "160x120": TensorStore.from_split(wide, progress=False),
    }


def test_fast_train_batches_for_every_preset_on_every_store(photos):
    """Train-mode batches for every preset and store, made floats at the input size by the trainer's device
    transform (TrainInput): uint8 crops, or for the 32-px store and the plain flip-crop the stored images with
    their boxes (batch_crops.py); the 256-px store really holds photos of many shapes."""
    cfg = make_data_config(64, interpolation="bicubic", crop_pct=0.25)  # photos are stored at 256 px
    stores = _stores(photos)
    shorter = stores["256px"].sizes.min(1)
    assert len({tuple(s) for s in stores["256px"].sizes}) > 10 and shorter.max() == 256 and shorter.min() < 256
    assert stores["160x120"].images.shape[-2:] == (120, 160)
    for name, store in stores.items():
        for preset in PRESETS:
            loader = train_loader(store, cfg, 8, preset=preset, num_workers=0, shuffle=True, drop_last=True)
            for k, (x, y) in enumerate(loader):
                if name == "32px" and preset == "flip-crop":
                    assert isinstance(x, SourceBatch) and x.images.shape == (8, 3, 32, 32)
                else:
                    assert x.shape == (8, 3, 64, 64) and x.dtype == torch.uint8, (name, preset)
                out = TrainInput(cfg)(x)
                assert out.shape == (8, 3, 64, 64) and y.shape == (8,), (name, preset)
                assert out.dtype == torch.float32 and torch.isfinite(out).all(), (name, preset)
                if k == 1:
                    break


def test_crop_boxes_are_torchvisions_on_wide_and_tall_photos(photos, monkeypatch):
    """On a wide (2:1) and a tall (1:2) photo, the stored image keeps the shape, and the train crops' boxes are
    torchvision's RandomResizedCrop boxes drawn on it: the same generator gives the same boxes as
    ``RandomResizedCrop.get_params`` (then the flip as RandomHorizontalFlip draws it); their sizes and spread
    are those torchvision draws on the original photo; they reach both ends of the long side."""
    import torchvision.transforms as T

    from zoo.data import crops
    from zoo.data.transforms import TRAIN_RATIO, TRAIN_SCALE

    src = photos["train"][0]["image"]
    wide, tall = src.resize((480, 240), Image.BICUBIC), src.resize((240, 480), Image.BICUBIC)
    real = crops.resized_crop
    for photo in (wide, tall):
        split = photos["train"].select([0]).map(lambda r, im=photo: {"image": im})
        store = TensorStore.from_split(split, size=128, progress=False)
        h, w = (int(v) for v in store.sizes[0])
        assert (w, h) == ((256, 128) if photo is wide else (128, 256))
        crop = SampleCrop(make_data_config(64), train=True)
        boxes: list = []
        monkeypatch.setattr(
            crops,
            "resized_crop",
            lambda img, box, size, i, boxes=boxes: (boxes.append(box), real(img, box, size, i))[1],
        )
        torch.manual_seed(7)
        for _ in range(1000):
            crop(store.image(0))
        torch.manual_seed(7)
        expected = []
        for _ in range(1000):
            expected.append(T.RandomResizedCrop.get_params(torch.empty(3, h, w), list(TRAIN_SCALE), list(TRAIN_RATIO)))
            torch.rand(1)  # the flip
        assert boxes == expected
        # the draw on the stored image vs torchvision's on the original photo, one seed per sample: the same
        # box sizes up to each size's rounding, and the same spread of positions over the whole photo
        stored, on_photo = [], []
        for k in range(2000):
            torch.manual_seed(k)
            stored.append(crop.draw(h, w)[0])
            torch.manual_seed(k)
            on_photo.append(T.RandomResizedCrop.get_params(photo, list(TRAIN_SCALE), list(TRAIN_RATIO)))
        b = torch.tensor(stored, dtype=torch.float64) / torch.tensor([h, w, h, w])
        p = torch.tensor(on_photo, dtype=torch.float64) / torch.tensor([photo.height, photo.width] * 2)
        same_size = ((b[:, 2:] - p[:, 2:]).abs() < 2 / min(h, w)).all(1).float().mean()
        assert same_size > 0.97, float(same_size)
        q = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)
        for centre_b, centre_p in (
            (b[:, 0] + b[:, 2] / 2, p[:, 0] + p[:, 2] / 2),
            (b[:, 1] + b[:, 3] / 2, p[:, 1] + p[:, 3] / 2),
        ):
            assert (centre_b.quantile(q) - centre_p.quantile(q)).abs().max() < 0.03
        top, left, bh, bw = torch.tensor(boxes).T
        long_start, long_len, long_side = (left, bw, w) if w > h else (top, bh, h)
        assert (long_start == 0).any() and (long_start + long_len == long_side).any()
        # each outer eighth of the long side (outside the old center-cropped square) is in many crops
        eighth = long_side // 8
        reach = ((long_start < eighth).float().mean(), (long_start + long_len > long_side - eighth).float().mean())
        assert min(reach) > 0.2, reach
        assert (bw / bh).min() >= 0.5 and (bw / bh).max() <= 1.5  # ratio bounds 3/4..4/3, rounded


@pytest.mark.parametrize("preset", PRESETS)
def test_fast_path_trains_every_preset_on_photos_in_bf16(photo_corpus, tmp_path, preset):
    """The fruits recipe's failure, replayed small: photos, a shipped preset, bf16 as the recipes ship."""
    [s] = train(
        {
            "name": "p",
            "model": {"name": "timm:test_resnet", "pretrained": False},
            "data": {
                "spec": f"imagefolder:{photo_corpus}",
                "image_size": 48,
                "batch_size": 8,
                "limit": 16,
                "augment": preset,
                "val_size": 0.2,
            },
            "train": {"epochs": 1, "mixed_precision": "bf16"},
            "output": {"dir": str(tmp_path)},
            "resume": "never",
        }
    )
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
                (lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)) if flip else (lambda im: im)
            )


def _as_tensor(img: Image.Image) -> torch.Tensor:
    """A decoded RGB photo as the store holds it: uint8 [3, h, w] over h x w x 3 memory."""
    return torch.from_numpy(np.asarray(img.convert("RGB")).copy()).permute(2, 0, 1)


def _fast_crops(cfg: dict, images: list, box, flip: bool, preset: str = "flip-crop") -> torch.Tensor:
    crop = SampleCrop(cfg, train=True, preset=preset)
    crop.draw = lambda h, w: (box(h, w), flip)
    return Normalize(cfg)(torch.stack([crop(_as_tensor(im)) for im in images]))


def _boxes(h: int, w: int) -> list[tuple[int, int, int, int]]:
    """A downscaling box, an upscaling box, and the whole photo (touching every border)."""
    return [(h // 10, w // 7, h * 6 // 10, w * 5 // 10), (h // 2, 7, 40, 64), (0, 0, h, w)]


@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_fast_train_matches_pil_for_fixed_crop_boxes(photos, monkeypatch, interpolation):
    """The random crop and flip fixed, the fast train crop is PIL's for every interpolation a data config can
    name (hf backbones report ``hamming``), on photos of every shape, for a downscaling box, an upscaling box
    and the whole photo, flipped and not: bilinear (torchvision's uint8 kernel) to within one 8-bit level
    (see _within_one_level); bicubic (the same) to within one level on 99.9% of values; the rest (PIL) equal."""
    images = _source_images(photos, 6)
    cfg = make_data_config(96, interpolation=interpolation, mean=(0.5,) * 3, std=(0.5,) * 3)
    for k in range(3):
        for flip in (False, True):
            fast, ref = [], []
            for im in images:
                box = _boxes(im.height, im.width)[k]
                ref_t = build_transform(cfg, train=True, preset="flip-crop")
                _fix_pil_random(ref_t, box, flip, monkeypatch)
                ref.append(ref_t(im))
                fast.append(_fast_crops(cfg, [im], lambda h, w, box=box: box, flip)[0])
            diff = _levels(torch.stack(fast), torch.stack(ref), cfg)
            info = (k, flip, float(diff.max()), float((diff > 1).float().mean()), float(diff.mean()))
            if interpolation == "bicubic":
                # torchvision goes horizontally first, Pillow 13 picks the order of its two passes itself
                # (not by scale alone: measured); bicubic's overshoot is clipped to 8 bits between the passes,
                # so a few pixels on strong edges differ by more than one level
                assert (diff > 1).float().mean() <= 1e-3 and diff.max() <= 10 and diff.mean() < 0.05, info
            else:
                assert _within_one_level(diff), info
            if interpolation not in ("bilinear", "bicubic"):  # the same PIL calls: equal
                assert diff.max() == 0, info


@pytest.mark.parametrize("preset", ["randaugment", "trivialaugment"])
def test_augment_presets_are_one_augmentation_on_both_paths(photos, monkeypatch, preset):
    """``randaugment``/``trivialaugment`` are the same code on the same 8-bit crop on both paths: with the
    crop box fixed (at the input size, so no resampling differs) and the same random state, the outputs
    are equal."""
    images = _source_images(photos, 8)
    cfg = make_data_config(96, mean=(0.5,) * 3, std=(0.5,) * 3)
    box = (10, 20, 96, 96)
    ref_t = build_transform(cfg, train=True, preset=preset)
    _fix_pil_random(ref_t, box, True, monkeypatch)
    changed = 0
    for i, im in enumerate(images):
        torch.manual_seed(i)
        ref = ref_t(im)
        torch.manual_seed(i)
        fast = _fast_crops(cfg, [im], lambda h, w: box, True, preset)[0]
        assert torch.allclose(fast, ref, atol=1e-5), (i, float((fast - ref).abs().max()))
        plain = _as_tensor(im)[:, 10:106, 20:116].flip(-1).float() / 127.5 - 1
        changed += not torch.allclose(fast, plain, atol=1e-5)
    assert changed >= 4  # and it does augment


def test_unknown_interpolation_is_an_error_naming_it():
    with pytest.raises(ConfigError, match=r"interpolation 'random' is not supported by the fast path.*hamming"):
        SampleCrop(make_data_config(32, interpolation="random"), train=True)


class _DS:
    def __init__(self, splits: dict) -> None:
        self.splits = splits

    def __getitem__(self, k: str):
        return self.splits[k]


def _data_cfg(**kw) -> DataConfig:
    return DataConfig(**{"batch_size": 8, "augment": "flip-crop", "num_workers": 0, **kw})


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


def test_fast_path_crops_in_workers_and_evaluates_as_zoo_eval(photos):
    """data.num_workers is used by the fast path's train loader (crops are cut in the workers); evaluation
    batches on the fast path are zoo eval's own preprocessing, equal to the last bit."""
    from zoo.inference import eval_transform, to_pil

    ds = _DS({"train": photos["train"].select(range(16)), "validation": photos["validation"]})
    cfg = make_data_config(48)
    loaders = build_loaders(ds, cfg, _data_cfg(num_workers=2), warn=pytest.fail)
    assert loaders.train.num_workers == 2 and loaders.train.persistent_workers
    x, _ = next(iter(loaders.train))
    assert x.dtype == torch.uint8 and loaders.train_transform(x).dtype == torch.float32
    fast_eval = build_loaders(ds, cfg, _data_cfg(), warn=pytest.fail)
    x, y = next(iter(fast_eval.eval["validation"]))
    t = eval_transform(cfg)
    ref = torch.stack([t(to_pil(im)) for im in photos["validation"]["image"][: len(y)]])
    assert torch.equal(fast_eval.eval_transform(x), ref)


@pytest.mark.parametrize("fast", [True, False])
def test_mixup_on_an_odd_sized_dataset(photo_corpus, tmp_path, fast):
    """21 training photos in batches of 8: mixup/cutmix see two full, even batches; no fallback needed."""
    [s] = train(
        {
            "name": "m",
            "model": {"name": "timm:test_resnet", "pretrained": False},
            "data": {
                "spec": f"imagefolder:{photo_corpus}",
                "image_size": 32,
                "batch_size": 8,
                "limit": 21,
                "augment": "flip-crop",
                "val_size": 0.2,
                "fast": fast,
                "num_workers": 0,
            },
            "train": {"epochs": 1, "mixup": 0.2, "cutmix": 1.0, "label_smoothing": 0.1},
            "output": {"dir": str(tmp_path)},
            "resume": "never",
        }
    )
    assert s.epochs_run == 1 and np.isfinite(s.final_top1)
    with pytest.raises(ConfigError, match=r"train.mixup/train.cutmix need an even data.batch_size, got 7"):
        train(
            {
                "name": "m",
                "model": {"name": "timm:test_resnet", "pretrained": False},
                "data": {"spec": f"imagefolder:{photo_corpus}", "image_size": 32, "batch_size": 7, "limit": 21},
                "train": {"epochs": 1, "mixup": 0.2},
                "output": {"dir": str(tmp_path)},
                "resume": "never",
            }
        )


def test_best_epoch_validation_is_what_zoo_eval_reports(photo_corpus, tmp_path, capsys):
    """A real (short) run on photos: the best epoch's validation figures, as the run printed and recorded
    them, are what `zoo eval` reports for the saved model on that split: the same top-1 and the same loss
    (to float rounding: the batches differ). On the fast path the per-epoch validation used to run on the
    store's pre-resized squares, so its loss differed from zoo eval's."""
    import json

    from zoo.cli import main as zoo_main
    from zoo.metrics import read_metrics

    spec = f"imagefolder:{photo_corpus}"
    [s] = train(
        {
            "name": "v",
            "model": {"name": "timm:test_resnet", "pretrained": False},
            "data": {"spec": spec, "image_size": 48, "batch_size": 16, "val_size": 0.2, "fast": True},
            "train": {"epochs": 2, "mixed_precision": "no", "select_best": True},
            "optim": {"lr": 0.01},
            "output": {"dir": str(tmp_path)},
            "resume": "never",
        }
    )
    run = Path(s.run_dir)
    epochs = [m for m in read_metrics(run / "metrics.jsonl") if m["kind"] == "epoch"]
    best = epochs[s.best_epoch]
    assert best["val_top1"] == s.val_top1
    capsys.readouterr()
    assert (
        zoo_main(
            [
                "eval",
                str(run / "model"),
                "--data",
                spec,
                "--split",
                "validation",
                "--json",
                "--out",
                str(tmp_path / "eval"),
            ]
        )
        == 0
    )
    reported = json.loads(capsys.readouterr().out)
    assert reported["n"] == len(load_dataset(photo_corpus, val_size=0.2, progress=False)["validation"])
    assert reported["top1"] == best["val_top1"]
    assert reported["loss"] == pytest.approx(best["val_loss"], rel=1e-5, abs=1e-6)
