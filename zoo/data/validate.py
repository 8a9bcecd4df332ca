"""Check every image once, up front, so a truncated JPEG is reported before training rather than
crashing an epoch halfway. Collects the size and mode distribution on the way (for ``zoo data inspect``).

PIL does the decoding; we only add what it lacks: a full decode with truncation treated as an error, and
16-bit images rescaled to 8 bits (PIL's ``convert('RGB')`` clips them to white).
"""

from __future__ import annotations

import io
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from zoo.env import cpu_cores
from zoo.errors import DataError

Source = str | os.PathLike[str] | bytes | dict  # a path, encoded bytes, or datasets' {"bytes": ..., "path": ...}
HIGH_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
ON_BAD_IMAGE = ("error", "skip")  # an unreadable image: stop with the list of them, or leave it out


def _decode_errors() -> tuple[type[BaseException], ...]:
    """What PIL raises on a bad file: UnidentifiedImageError and truncation are OSErrors, some decoders raise
    SyntaxError or ValueError, and DecompressionBombError derives from Exception alone."""
    from PIL import Image

    return (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


@dataclass
class ScanResult:
    """What a scan found: bad items (where, reason), the size/mode counts of the good ones, and 8-bit
    PNG replacements for 16-bit images keyed by item index."""

    bad: list[tuple[str, str]] = field(default_factory=list)
    bad_index: list[int] = field(default_factory=list)
    sizes: Counter = field(default_factory=Counter)
    modes: Counter = field(default_factory=Counter)
    replacements: dict[int, bytes] = field(default_factory=dict)


def to_rgb(img: Any) -> Any:
    """Any PIL image as RGB: 16-bit/float images are rescaled to 0..255 first, transparency is dropped."""
    from PIL import Image

    if img.mode in HIGH_BIT_MODES:
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        if img.mode == "I" and arr.max() <= 255:
            top = 255.0
        arr = np.clip(arr / top * 255.0, 0, 255).round().astype(np.uint8)
        img = Image.fromarray(arr, mode="L") if arr.ndim == 2 else Image.fromarray(arr)
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")  # PIL warns when converting such palettes straight to RGB
    return img if img.mode == "RGB" else img.convert("RGB")


def _open(src: Source) -> Any:
    from PIL import Image

    data: Any = (src.get("bytes") or src.get("path")) if isinstance(src, dict) else src
    if isinstance(data, (bytes, bytearray)):
        return Image.open(io.BytesIO(data))
    return Image.open(data)


def check_image(src: Source) -> tuple[str | None, str | None, tuple[int, int] | None, bytes | None]:
    """(reason it is unusable or None, mode, (width, height), 8-bit PNG replacement for 16-bit images)."""
    try:
        with _open(src) as img:
            mode, size = img.mode, img.size
            if img.format == "JPEG" and mode in ("RGB", "L", "CMYK"):
                img.draft(mode, (max(1, size[0] // 8), max(1, size[1] // 8)))  # reads all data, decodes cheaply
            img.load()
            replacement = None
            if mode in HIGH_BIT_MODES:
                buf = io.BytesIO()
                to_rgb(img).save(buf, format="PNG")
                replacement = buf.getvalue()
        if size[0] < 1 or size[1] < 1:
            return f"empty image {size}", mode, size, None
        return None, mode, size, replacement
    except _decode_errors() as exc:
        return decode_failure(exc), None, None, None


def decode_failure(exc: BaseException) -> str:
    """Why PIL could not decode an image, in the words every input path uses."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(exc, UnidentifiedImageError):
        return "not an image PIL can read"
    if isinstance(exc, Image.DecompressionBombError):
        return f"too large: {exc}"
    return f"corrupt or truncated: {exc}"  # truncated/corrupt data, missing file


def read_image(src: Source) -> Any:
    """Decode one image fully, as RGB, with the same checks as :func:`scan` (truncation is an error,
    16-bit images are rescaled, decompression bombs are refused). Raises DataError naming the reason."""
    from PIL import ImageFile

    where = os.fspath(src) if isinstance(src, (str, os.PathLike)) else "image"
    saved = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file must be reported, not silently padded
    try:
        with _open(src) as img:
            img.load()
            rgb = to_rgb(img)
    except _decode_errors() as exc:
        raise DataError(f"cannot read image {where}: {decode_failure(exc)}") from None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = saved
    if rgb.size[0] < 1 or rgb.size[1] < 1:
        raise DataError(f"cannot read image {where}: empty image {rgb.size}")
    return rgb


def scan(
    sources: Sequence[Source], names: Sequence[str], desc: str = "checking images", progress: bool = True
) -> ScanResult:
    """Decode every source once (threads: PIL releases the GIL while decoding)."""
    from PIL import ImageFile
    from tqdm.auto import tqdm

    result = ScanResult()
    saved = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file must be reported, not silently padded
    try:
        workers = min(8, cpu_cores())
        with ThreadPoolExecutor(workers) as pool:
            checks = pool.map(check_image, sources, chunksize=64)
            bar = tqdm(checks, total=len(sources), desc=desc, disable=not progress or len(sources) < 2000, unit="img")
            for i, (reason, mode, size, replacement) in enumerate(bar):
                if reason is not None:
                    result.bad.append((names[i], reason))
                    result.bad_index.append(i)
                    continue
                result.modes[mode] += 1
                result.sizes[size] += 1
                if replacement is not None:
                    result.replacements[i] = replacement
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = saved
    return result


def scan_split(ds: Any, split: str, progress: bool = True) -> ScanResult:
    """Scan the ``image`` column of a datasets split without decoding it through datasets."""
    import datasets

    raw = ds.cast_column("image", datasets.Image(decode=False))
    items: list[dict] = []
    for batch in raw.iter(batch_size=1000):
        items.extend(batch["image"])
    names = [f"{split}[{i}]" + (f" ({it['path']})" if it.get("path") else "") for i, it in enumerate(items)]
    return scan(items, names, desc=f"checking {split} images", progress=progress)


def apply_replacements(ds: Any, replacements: dict[int, bytes]) -> Any:
    """Swap in 8-bit PNGs for the rows holding 16-bit images (a no-op when there are none)."""
    import datasets

    if not replacements:
        return ds
    feature = ds.features["image"]
    raw = ds.cast_column("image", datasets.Image(decode=False))

    def fix(batch: dict, idx: list[int]) -> dict:
        return {
            "image": [
                {"bytes": replacements[i], "path": None} if i in replacements else im
                for im, i in zip(batch["image"], idx)
            ]
        }

    raw = raw.map(fix, with_indices=True, batched=True, desc="rescaling 16-bit images")
    return raw.cast_column("image", feature)


def format_bad(bad: Iterable[tuple[str, str]], limit: int | None = None) -> str:
    lines = [f"  {where}: {reason}" for where, reason in bad]
    if limit is not None and len(lines) > limit:
        lines = lines[:limit] + [f"  ... and {len(lines) - limit} more"]
    return "\n".join(lines)
