"""The two sanity checks a saliency map must pass, as Adebayo et al. (NeurIPS 2018) propose: both fail for a
map that ignores the model (a constant map, an edge detector on the input alone).

* randomisation: re-initialise the weights and the map must change (Spearman rank correlation with the
  trained model's map below ``MAX_RANDOM_CORRELATION``);
* quadrant: a real photo pasted into one quadrant of a blank canvas must draw most of the map's mass
  (over ``MIN_QUADRANT_MASS``) into that quadrant.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from PIL import Image

MAX_RANDOM_CORRELATION = 0.5
MIN_QUADRANT_MASS = 0.5


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Rank correlation of two maps: 1.0 when both are constant (a map that cannot change did not change),
    0.0 when only one is (one map has structure, the other none: they differ)."""
    a, b = a.flatten().double(), b.flatten().double()
    flat_a, flat_b = float(a.std()) == 0, float(b.std()) == 0
    if flat_a or flat_b:
        return 1.0 if flat_a and flat_b else 0.0
    ra, rb = a.argsort().argsort().double(), b.argsort().argsort().double()
    return float(torch.corrcoef(torch.stack([ra, rb]))[0, 1])


def randomised(model: Any, seed: int = 1) -> Any:
    """A copy with every weight re-initialised (the modules' own reset_parameters, seeded)."""
    twin = copy.deepcopy(model)
    torch.manual_seed(seed)
    for module in twin.modules():
        if module is not twin and hasattr(module, "reset_parameters"):
            module.reset_parameters()
    for name, p in twin.named_parameters():  # parameters no module resets (pos. embeddings, CLS tokens)
        if not any(name.endswith(s) for s in (".weight", ".bias")):
            with torch.no_grad():
                p.normal_(0, 0.02)
    return twin.eval()


def quadrant_canvas(photo: Image.Image, size: int, quadrant: int, background: int = 255) -> Image.Image:
    """A blank ``size`` x ``size`` canvas with ``photo`` fitted into quadrant 0 (top left), 1 (top right),
    2 (bottom left) or 3 (bottom right)."""
    half = size // 2
    canvas = Image.new("RGB", (size, size), (background,) * 3)
    canvas.paste(
        photo.convert("RGB").resize((half, half), Image.Resampling.BICUBIC),
        ((quadrant % 2) * half, (quadrant // 2) * half),
    )
    return canvas


def quadrant_mass(heat: torch.Tensor, quadrant: int) -> float:
    """The share of the map's mass inside the quadrant."""
    h, w = heat.shape[-2:]
    rows = slice(0, h // 2) if quadrant < 2 else slice(h // 2, h)
    cols = slice(0, w // 2) if quadrant % 2 == 0 else slice(w // 2, w)
    total = float(heat.sum())
    return float(heat[rows, cols].sum()) / total if total > 0 else 0.25


def randomisation_check(map_fn: Any, model: Any, x: torch.Tensor) -> dict[str, Any]:
    """Maps of ``model`` and of its randomised copy on ``x``: their mean rank correlation and whether it passes."""
    trained, random_ = map_fn(model, x), map_fn(randomised(model), x)
    rhos = [spearman(a, b) for a, b in zip(trained, random_)]
    rho = float(np.mean(rhos))
    return {"check": "randomisation", "spearman": rho, "passed": rho < MAX_RANDOM_CORRELATION}


def quadrant_check(map_fn: Any, model: Any, photo: Image.Image, transform: Any) -> dict[str, Any]:
    """The photo in each of the four quadrants; the mean mass in the right quadrant and whether it passes."""
    side = max(model.data_config["input_size"][1:])
    # the canvas at the size the eval transform crops to, so no part of it is cut off
    canvases = [quadrant_canvas(photo, side, q) for q in range(4)]
    x = torch.stack([transform(c) for c in canvases])
    maps = map_fn(model, x)
    masses = [quadrant_mass(m, q) for q, m in enumerate(maps)]
    return {
        "check": "quadrant",
        "masses": masses,
        "mean_mass": float(np.mean(masses)),
        "passed": min(masses) > MIN_QUADRANT_MASS,
    }
