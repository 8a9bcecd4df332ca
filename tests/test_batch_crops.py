"""Small images' train crops cut for the whole batch on the device (zoo.data.batch_crops): the crops are the
per-sample path's (same boxes, same flips, same seeds), the pixels PIL's (the reference path's), the loader
chooses the batched way only where it applies, a held batch is never overwritten, and a resumed epoch replays
its batches."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from zoo.backbones.base import make_data_config
from zoo.data.batch_crops import BatchResizedCrop, SourceBatch, box_taps, rows_8bit
from zoo.data.crops import Normalize, SampleCrop, TrainInput, crops_in_batches, train_loader
from zoo.data.fast import TensorStore
from zoo.data.order import seeded_rng

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
PIL_FILTERS = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}


def _photos(n: int, side: int = 32) -> torch.Tensor:
    """uint8 [n, 3, side, side]: crops of scikit-image's photos (real edges, where bicubic overshoots)."""
    photos = [skimage.data.astronaut(), skimage.data.chelsea(), skimage.data.coffee(), skimage.data.rocket()]
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        src = photos[i % len(photos)]
        h, w = src.shape[:2]
        size = int(rng.integers(min(h, w) // 4, min(h, w)))
        top, left = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
        crop = Image.fromarray(src[top : top + size, left : left + size]).resize((side, side), Image.BICUBIC)
        out.append(torch.from_numpy(np.asarray(crop).copy()).permute(2, 0, 1))
    return torch.stack(out)


def _pil_crop(img: torch.Tensor, box: list[int], size: tuple[int, int], interpolation: str) -> torch.Tensor:
    """The reference path's crop: PIL crop + resize (+ flip), as torchvision's RandomResizedCrop on a PIL image."""
    top, left, height, width, flip = box
    pil = Image.fromarray(img.permute(1, 2, 0).numpy()).crop((left, top, left + width, top + height))
    pil = pil.resize((size[1], size[0]), PIL_FILTERS[interpolation])
    if flip:
        pil = pil.transpose(Image.FLIP_LEFT_RIGHT)
    return torch.from_numpy(np.asarray(pil).copy()).permute(2, 0, 1)


def _levels(normalised: torch.Tensor) -> torch.Tensor:
    """float [B, 3, H, W] normalised -> 8-bit levels (float), to compare with PIL."""
    return (normalised * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1)) * 255


def _random_boxes(n: int, side: int) -> torch.Tensor:
    torch.manual_seed(3)
    return torch.tensor([[*SampleCrop.draw(side, side)[0], i % 2] for i in range(n)])


@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
def test_batch_crops_are_pils_resize_of_the_drawn_boxes(interpolation):
    """Every crop of the batch (boxes from RandomResizedCrop's draw, half of them flipped) is PIL's crop + resize
    to within half an 8-bit level, but where float32 rounds PIL's 8-bit intermediate the other way: a few
    values in 10,000, and then within 2 levels."""
    images, size = _photos(48), (224, 160)  # a non-square input: the two axes apart
    boxes = _random_boxes(48, 32)
    crop = BatchResizedCrop(size, interpolation, MEAN, STD)
    out = _levels(crop(SourceBatch(images, boxes)))
    ref = torch.stack([_pil_crop(im, b.tolist(), size, interpolation) for im, b in zip(images, boxes)]).float()
    diff = (out - ref).abs()
    assert out.shape == (48, 3, *size)
    assert diff.max() < 2
    assert (diff > 0.501).float().mean() < 1e-3
    assert diff.mean() < 0.3  # and not a blur that happens to stay close: half a level is rounding alone


def test_the_horizontal_pass_is_pils_intermediate_image():
    """PIL resizes 8-bit images horizontally first into an 8-bit image; ``rows_8bit`` is that image, value for
    value but for a few in 10,000 (float32 rounding a sum within 1e-4 of a half), off by one level then."""
    images, boxes = _photos(32), _random_boxes(32, 32)
    weights, cols = box_taps(boxes[:, 1], boxes[:, 3], 32, 224, "bicubic")
    rows = rows_8bit(images, weights, cols)
    ref = []
    for im, (_, left, _, width, _) in zip(images, boxes.tolist()):
        pil = Image.fromarray(im.permute(1, 2, 0).numpy()).crop((left, 0, left + width, 32))
        ref.append(torch.from_numpy(np.asarray(pil.resize((224, 32), Image.BICUBIC)).copy()).permute(2, 0, 1))
    diff = (rows - torch.stack(ref).float()).abs()
    assert diff.max() <= 1 and (diff > 0).float().mean() < 1e-3


def test_box_taps_for_shrinking_boxes_are_pils_antialiased_weights():
    """The weights are PIL's in general, not only when upsampling: a box shrunk to fewer pixels widens the
    filter (antialiasing) as PIL does, so a row resized through them is PIL's resize of the row."""
    row = torch.from_numpy(np.array(Image.fromarray(skimage.data.camera()).resize((64, 1)))).float()[0]
    start, length = torch.tensor([5]), torch.tensor([50])
    weights, cols = box_taps(start, length, 64, 12, "bicubic")
    ours = (weights[0] * row[cols[0]]).sum(-1)
    pil = Image.fromarray(row[None].numpy().astype(np.uint8)).crop((5, 0, 55, 1)).resize((12, 1), Image.BICUBIC)
    assert (ours - torch.from_numpy(np.asarray(pil, dtype=np.float32))[0]).abs().max() <= 0.51


def test_batched_crops_are_the_per_sample_paths_crops():
    """Same seeds, same crops: the batched loader's batch equals the per-sample path's crops of the same
    positions (SampleCrop under each position's seed, then Normalize), to the two paths' rounding."""
    images = _photos(24)
    store = TensorStore.from_images(images, torch.arange(24) % 3)
    cfg = make_data_config(96, interpolation="bicubic")
    loader = train_loader(store, cfg, 8, num_workers=0, shuffle=True, seed=5)
    assert crops_in_batches(store, SampleCrop(cfg, train=True))
    keys = list(loader.sampler)
    x, y = next(iter(loader))
    assert (
        isinstance(x, SourceBatch)
        and x.images.shape == (8, 3, 32, 32)
        and y.tolist() == [int(store.labels[i]) for i, _ in keys[:8]]
    )
    batched = TrainInput(cfg)(x)
    crop = SampleCrop(cfg, train=True)
    per_sample = []
    for i, seed in keys[:8]:
        with seeded_rng(seed):
            per_sample.append(crop(store.image(i)))
    expected = Normalize(cfg)(torch.stack(per_sample))
    assert (_levels(batched) - _levels(expected)).abs().max() < 3  # torchvision's uint8 kernel vs PIL's weights


@pytest.mark.parametrize(
    ("why", "side", "cfg", "preset", "upsample"),
    [
        ("photos larger than the input", 128, make_data_config(96), "flip-crop", True),
        ("a preset that augments the 8-bit crop", 32, make_data_config(96), "randaugment", True),
        ("an interpolation PIL alone has", 32, make_data_config(96, interpolation="lanczos"), "flip-crop", True),
        ("native size (no upsampling)", 32, make_data_config(96), "flip-crop", False),
        ("no augmentation (eval geometry)", 32, make_data_config(96), "none", True),
    ],
)
def test_other_stores_and_presets_stay_per_sample(why, side, cfg, preset, upsample):
    store = TensorStore.from_images(_photos(8, side), torch.zeros(8, dtype=torch.long))
    loader = train_loader(store, cfg, 4, preset=preset, upsample=upsample, num_workers=0)
    x, _ = next(iter(loader))
    assert isinstance(x, torch.Tensor) and x.dtype == torch.uint8, why
    assert torch.isfinite(TrainInput(cfg)(x)).all()


def test_images_of_different_sizes_stay_per_sample():
    small = TensorStore.from_images(_photos(4, 32), torch.zeros(4, dtype=torch.long))
    mixed = TensorStore(
        np.concatenate([small.data, _photos(1, 24).permute(0, 2, 3, 1).reshape(-1).numpy()]),
        np.concatenate([small.index, [[len(small.data), 24, 24]]]),
        np.zeros(5),
    )
    assert not crops_in_batches(mixed, SampleCrop(make_data_config(96), train=True))
    assert crops_in_batches(small, SampleCrop(make_data_config(96), train=True))


def test_workers_send_the_batches_the_main_process_would_make():
    store = TensorStore.from_images(_photos(32), torch.arange(32) % 4)
    cfg = make_data_config(64)

    def epoch(workers: int) -> list[SourceBatch]:
        loader = train_loader(store, cfg, 8, num_workers=workers, shuffle=True, seed=1)
        return [x for x, _ in loader]

    main, workers = epoch(0), epoch(2)
    assert len(main) == 4 and all(
        torch.equal(a.images, b.images) and torch.equal(a.boxes, b.boxes) for a, b in zip(main, workers)
    )


def test_a_held_batch_is_never_overwritten_and_a_dropped_one_is_reused():
    """The CPU output buffer is reused only when nothing holds the last batch (its storage's use count)."""
    images, crop = _photos(4), BatchResizedCrop((64, 64), "bicubic", MEAN, STD)
    first = crop(SourceBatch(images, _random_boxes(4, 32)))
    kept, view = first.clone(), first[1:]
    second = crop(SourceBatch(images.flip(0), _random_boxes(4, 32).flip(0)))
    assert torch.equal(first, kept) and first.data_ptr() != second.data_ptr()
    del first
    third = crop(SourceBatch(images, _random_boxes(4, 32)))
    assert third.untyped_storage().data_ptr() != view.untyped_storage().data_ptr()  # the view still holds it
    assert torch.equal(view, kept[1:])
    address = third.data_ptr()
    del third
    fourth = crop(SourceBatch(images, _random_boxes(4, 32)))
    assert fourth.data_ptr() == address  # nothing held the third: its buffer serves the fourth


def test_resumed_epoch_replays_the_batched_crops():
    from accelerate.data_loader import prepare_data_loader, skip_first_batches

    store = TensorStore.from_images(_photos(32), torch.arange(32) % 4)

    def loader(workers: int):
        made = train_loader(store, make_data_config(64), 4, num_workers=workers, shuffle=True, seed=7, drop_last=True)
        return prepare_data_loader(made, num_processes=1, process_index=0, put_on_device=False)

    def epoch(batches) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(x.images.clone(), x.boxes.clone()) for x, _ in batches]

    ref = loader(2)
    ref.set_epoch(1)
    full = epoch(ref)
    resumed = loader(2)
    resumed.set_epoch(1)
    tail = epoch(skip_first_batches(resumed, 3))
    assert len(full) == 8 and len(tail) == 5
    assert all(torch.equal(a, c) and torch.equal(b, d) for (a, b), (c, d) in zip(full[3:], tail))
