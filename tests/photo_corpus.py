"""A folder of real photos for tests, generated offline: what users feed zoo, not 32-px arrays.

Ten classes, each cut from one of scikit-image's bundled sample photos (or scikit-learn's handwritten
digits, upsampled): random crops, scaled to mixed sizes (``min_side`` .. ``max_side`` px, aspect ratios
1:2 to 2:1), with a per-image colour cast, saved as JPEG and PNG. Among them, by position in each class:
EXIF-rotated JPEGs (the pixels stored sideways, the orientation tag saying how to turn them), grayscale,
CMYK JPEG, RGBA PNG and palette PNG. Layout: ``root/<class>/<i>.<ext>`` (one folder of class folders;
``zoo.load_dataset`` carves the validation split).

    python tests/photo_corpus.py /tmp/photos --per-class 30 --max-side 1600   # the full corpus by hand
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

VERSION = 1  # bump when the images change (the pytest cache is keyed by it)

# class name -> scikit-image sample (all bundled with the package: no download)
PHOTOS = {
    "astronaut": "astronaut",
    "coffee": "coffee",
    "cat": "chelsea",
    "rocket": "rocket",
    "galaxies": "hubble_deep_field",
    "retina": "retina",
    "tissue": "immunohistochemistry",
    "motorcycle": "stereo_motorcycle",
    "camera": "camera",
}
CLASSES = (*PHOTOS, "digits")
# what the i-th image of every class is (cycled): format, mode, EXIF orientation
KINDS = (
    ("JPEG", "RGB", None),
    ("PNG", "RGB", None),
    ("JPEG", "RGB", 6),
    ("JPEG", "L", None),
    ("PNG", "RGBA", None),
    ("JPEG", "CMYK", None),
    ("PNG", "P", None),
    ("JPEG", "RGB", 8),
    ("PNG", "L", None),
    ("JPEG", "RGB", 3),
)


def _source(name: str) -> np.ndarray:
    """An RGB uint8 array of the class's source content."""
    if name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits().images  # 1,797 8x8 digits in 0..16: a 6x6 sheet of them, upsampled
        sheet = np.block([[d[r * 6 + c] for c in range(6)] for r in range(6)]) / 16.0 * 255.0
        img = Image.fromarray(sheet.astype(np.uint8)).resize((480, 480), Image.BICUBIC)
        return np.stack([np.asarray(img)] * 3, -1)
    import skimage.data

    a = getattr(skimage.data, PHOTOS[name])()
    a = a[0] if isinstance(a, tuple) else a  # stereo_motorcycle: (left, right, disparity)
    return np.stack([a] * 3, -1) if a.ndim == 2 else a[..., :3]


def _photo(src: np.ndarray, rng: np.random.Generator, min_side: int, max_side: int) -> Image.Image:
    """A random crop of ``src`` with a colour cast, scaled to a random size and aspect ratio."""
    h, w = src.shape[:2]
    ch, cw = int(h * rng.uniform(0.5, 1.0)), int(w * rng.uniform(0.5, 1.0))
    top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    crop = src[top : top + ch, left : left + cw].astype(np.float32)
    mix = np.eye(3) * rng.uniform(0.7, 1.0, 3) + rng.uniform(0.0, 0.2, (3, 3))  # colour cast
    crop = np.clip(crop @ mix.T + rng.uniform(-20, 20, 3), 0, 255).astype(np.uint8)
    aspect = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))  # width / height, 1:2 .. 2:1
    long_side = int(rng.uniform(max(min_side, min_side * max(aspect, 1 / aspect)), max_side))
    out_w, out_h = (long_side, round(long_side / aspect)) if aspect >= 1 else (round(long_side * aspect), long_side)
    return Image.fromarray(crop).resize((max(out_w, 1), max(out_h, 1)), Image.BICUBIC)


def _save(img: Image.Image, path: Path, fmt: str, mode: str, orientation: int | None) -> Path:
    if mode == "RGBA":
        alpha = Image.linear_gradient("L").resize(img.size)
        img = img.convert("RGBA")
        img.putalpha(alpha)
    elif mode == "P":
        img = img.convert("P", palette=Image.ADAPTIVE, colors=64)
    elif mode != "RGB":
        img = img.convert(mode)
    kwargs: dict = {"quality": 90} if fmt == "JPEG" else {}
    if orientation is not None:
        # store the pixels as a camera would: turned so that applying the tag gives back the photo
        undo = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}
        img = img.transpose(undo[orientation])
        exif = Image.Exif()
        exif[0x0112] = orientation
        kwargs["exif"] = exif.tobytes()
    path = path.with_suffix(".jpg" if fmt == "JPEG" else ".png")
    img.save(path, format=fmt, **kwargs)
    return path


def make_photo_corpus(
    root: str | Path,
    per_class: int = 30,
    min_side: int = 150,
    max_side: int = 1600,
    classes: int = len(CLASSES),
    seed: int = 0,
) -> Path:
    """Write the corpus under ``root`` (created) and return it. Deterministic for given arguments."""
    root = Path(root)
    for c, name in enumerate(CLASSES[:classes]):
        src = _source(name)
        rng = np.random.default_rng([seed, c])
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            fmt, mode, orientation = KINDS[i % len(KINDS)]
            _save(_photo(src, rng, min_side, max_side), root / name / f"{i:03d}", fmt, mode, orientation)
    return root


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("root")
    p.add_argument("--per-class", type=int, default=30)
    p.add_argument("--min-side", type=int, default=150)
    p.add_argument("--max-side", type=int, default=1600)
    a = p.parse_args()
    print(make_photo_corpus(a.root, a.per_class, a.min_side, a.max_side))
