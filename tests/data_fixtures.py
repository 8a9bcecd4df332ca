"""Builders for the data tests: image folders with every kind of bad input (written with PIL, offline)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


def _noise(size=(40, 40), seed=0, colour=None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    if colour is not None:
        arr = (arr // 4 + np.array(colour, dtype=np.int64) * 3 // 4).astype(np.uint8)
    return arr


def good_folder(root: Path, classes=("cat", "dog"), n=6, splits=("train",)) -> Path:
    for s, split in enumerate(splits):
        for c, name in enumerate(classes):
            d = root / split / name if splits != ("",) else root / name
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                image = _noise(seed=100 * s + 10 * c + i, colour=((80 * c) % 256, 50, 100))
                Image.fromarray(image).save(d / f"{i}.png")
    return root


def bad_folder(root: Path) -> dict[str, Path]:
    """A single folder of class subfolders (cat, dog, bird, empty) with one of each bad/odd file.

    Returns the bad paths by kind. Readable odd modes (grayscale, RGBA, CMYK, 16-bit, palette, tiny)
    must load as RGB; truncated/text/non-image files must be reported; 'empty' is an empty class."""
    for name in ("cat", "dog", "bird"):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(4):
            Image.fromarray(_noise(seed=i + len(name))).save(root / name / f"ok{i}.png")
    (root / "empty").mkdir()
    paths = {}
    # truncated JPEG: cut a valid file in half
    buf = io.BytesIO()
    Image.fromarray(_noise((64, 64), seed=9)).save(buf, format="JPEG", quality=95)
    paths["truncated"] = root / "cat" / "truncated.jpg"
    paths["truncated"].write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    paths["text"] = root / "dog" / "x.jpg"
    paths["text"].write_text("this is not an image\n")
    paths["notes"] = root / "bird" / "notes.txt"
    paths["notes"].write_text("a stray file\n")
    paths["empty"] = root / "empty"
    # readable odd modes, all must come out RGB
    paths["cmyk"] = root / "cat" / "cmyk.jpg"
    Image.fromarray(_noise((48, 40), seed=3)).convert("CMYK").save(paths["cmyk"], format="JPEG")
    paths["gray"] = root / "dog" / "gray.png"
    Image.fromarray(_noise(seed=4)[..., 0]).save(paths["gray"])
    paths["rgba"] = root / "dog" / "rgba.png"
    Image.fromarray(np.dstack([_noise(seed=5), np.full((40, 40), 128, np.uint8)])).save(paths["rgba"])
    paths["palette"] = root / "bird" / "palette.png"
    Image.fromarray(_noise(seed=6)).convert("P").save(paths["palette"], transparency=0)
    paths["16bit"] = root / "bird" / "deep.png"
    Image.fromarray((np.linspace(0, 65535, 40 * 40).reshape(40, 40)).astype(np.uint16)).save(paths["16bit"])
    paths["tiny"] = root / "cat" / "tiny.png"
    Image.fromarray(_noise((3, 5), seed=7)).save(paths["tiny"])
    return paths
