"""Near-duplicates within and across splits, by feature cosine and by a pixel thumbnail.

Two views, because each misses what the other sees: a pretrained backbone's pooled features (centred, so the
cosine measures what sets images apart) are nearly identical for an exact copy, but a JPEG re-encode of a small
image moves them a lot (measured: cosine 0.45..0.94 for re-encoded 8x8 digits, while two different digits
reach 0.95). A 16x16 grayscale thumbnail, centred and normalised (its normalised cross-correlation, a perceptual
hash without the quantisation: dHash on the same digits put hundreds of different pairs within 4 bits), is
what a re-encode or a slight resize leaves unchanged: re-encoded digits correlate at >= 0.998 with their
original, the most similar different digits at <= 0.996. A pair is a duplicate when its feature cosine is at
least ``cosine`` or its thumbnail correlation at least ``pixel``. A duplicate pair with one image in train
and the other in validation or test is a leak.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from PIL import Image

COSINE = 0.97
PIXEL = 0.997
THUMB = 16
BLOCK = 2048  # rows per similarity block: 2048 x 10,000 float32 is 80 MB


def thumbnail_vector(image: Image.Image, size: int = THUMB) -> np.ndarray:
    """The image as a centred, unit-norm ``size`` x ``size`` grayscale vector."""
    g = np.asarray(image.convert("L").resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32).reshape(-1)
    g = g - g.mean()
    return g / max(float(np.linalg.norm(g)), 1e-6)


def thumbnails(images: Iterable[Image.Image], size: int = THUMB) -> np.ndarray:
    rows = [thumbnail_vector(im, size) for im in images]
    return np.stack(rows) if rows else np.zeros((0, size * size), np.float32)


def _pairs(feats: np.ndarray, thumbs: np.ndarray, cosine: float, pixel: float) -> list[tuple[int, int, float, float]]:
    """(i, j, feature cosine, thumbnail correlation) for i < j, blockwise: 10,000 images never build N x N."""
    n = len(feats)
    out = []
    for start in range(0, n, BLOCK):
        stop = min(start + BLOCK, n)
        sim = feats[start:stop] @ feats.T
        pix = thumbs[start:stop] @ thumbs.T
        rows, cols = np.nonzero((sim >= cosine) | (pix >= pixel))
        keep = cols > rows + start
        for r, c in zip(rows[keep], cols[keep]):
            out.append((int(r + start), int(c), float(sim[r, c]), float(pix[r, c])))
    return out


def find_duplicates(
    feats: np.ndarray, thumbs: np.ndarray, splits: list[str], *, cosine: float = COSINE, pixel: float = PIXEL
) -> dict[str, Any]:
    """Pairs and groups over the pooled rows of every split (``splits[i]`` names row i's split).

    Returns {"pairs": [{a, b, cosine, pixel, kind}], "groups": [[rows]]}; kind is "leak" for a
    train/validation or train/test pair, "duplicate" otherwise."""
    pairs: list[dict[str, Any]] = []
    for i, j, sim, pix in _pairs(feats, thumbs, cosine, pixel):
        leak = (splits[i] == "train") != (splits[j] == "train")
        pairs.append(
            {"a": i, "b": j, "cosine": round(sim, 4), "pixel": round(pix, 4), "kind": "leak" if leak else "duplicate"}
        )
    parent = list(range(len(feats)))

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for p in pairs:
        parent[root(p["a"])] = root(p["b"])
    groups: dict[int, list[int]] = {}
    for p in pairs:
        for x in (p["a"], p["b"]):
            groups.setdefault(root(x), [])
            if x not in groups[root(x)]:
                groups[root(x)].append(x)
    return {"pairs": pairs, "groups": [sorted(g) for g in groups.values()]}
