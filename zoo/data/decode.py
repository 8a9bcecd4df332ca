"""Decoding a split into the store's record file: in worker processes, each image at its own aspect ratio.

Each image is decoded as a datasets ``Image(mode="RGB")`` column decodes it (open, EXIF orientation, RGB), so
the store holds what the per-sample path sees, then, if its shorter side is above the store's bound, resized
once (PIL, antialiased bicubic) so that the shorter side equals the bound; the aspect ratio is kept (the longer
side is capped at ``MAX_ASPECT`` times the shorter: beyond 4:1 the central 4:1 part is kept). Records are
height x width x 3 uint8 runs, one after the other, in one file; an index holds each one's offset, height and
width (the layout FFCV uses for variable-size images). Workers decode runs of ``CHUNK`` images and hand them
back in order; the parent appends them to the file, so no process holds more than a few runs of images: peak
memory does not grow with the folder. (JPEG draft mode, decoding at 1/2 to 1/8 scale, was measured and left
out: on the test photos it moved stored pixels by 4 levels on average and 21 at worst.)
"""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path
from typing import Any

import numpy as np

from zoo.data.validate import _open, to_rgb
from zoo.env import cpu_cores
from zoo.errors import DataError

CHUNK = 32  # images per task: small enough to bound memory, large enough to amortise the hand-off
PARALLEL_FROM = 512  # below this many images, starting processes costs more than it saves
MAX_ASPECT = 4.0  # a stored image's longer side is at most this many times its shorter side


def default_workers() -> int:
    """The cores this process may use (cgroup/affinity aware where the OS says)."""
    return cpu_cores()


def bounded_size(w: int, h: int, short: int | None) -> tuple[int, int]:
    """(width, height) after the store's resize: shorter side down to ``short`` when above it (torchvision
    ``Resize(short)``'s rounding), never up; then the longer side capped at ``MAX_ASPECT`` x the shorter."""
    if short is not None and min(w, h) > short:
        w, h = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)
    cap = int(MAX_ASPECT * min(w, h))
    return min(w, cap), min(h, cap)


def bounded_resize(img: Any, short: int | None) -> Any:
    """The store's resize of a PIL image: see ``bounded_size``; the cap keeps the centre of the longer side."""
    from PIL import Image

    w, h = img.size
    if short is not None and min(w, h) > short:
        img = img.resize(
            (short, int(short * h / w)) if w <= h else (int(short * w / h), short), Image.Resampling.BICUBIC
        )
        w, h = img.size
    cw, ch = bounded_size(w, h, None)
    if (cw, ch) != (w, h):
        left, top = (w - cw) // 2, (h - ch) // 2
        img = img.crop((left, top, left + cw, top + ch))
    return img


def decode_image(value: Any, short: int | None) -> np.ndarray:
    """A datasets image cell ({"bytes", "path"}, undecoded) -> uint8 [h, w, 3]; ``short``: see
    ``bounded_size`` (None keeps the image's own size, the aspect cap still applies)."""
    from PIL import ExifTags, ImageOps

    img = _open(value)
    img.load()
    if img.getexif().get(ExifTags.Base.Orientation) is not None:
        img = ImageOps.exif_transpose(img)
    return np.asarray(bounded_resize(to_rgb(img), short))


# ---- the worker side: state set once per process by the pool initializer ------------------------------
_job: dict[str, Any] = {}


def _init(raw: Any, short: int | None) -> None:
    _job.update(raw=raw, short=short)


def _decode_range(bounds: tuple[int, int]) -> tuple[bytes, list[tuple[int, int]]]:
    """Images ``start..end`` as one byte run and their (height, width)."""
    start, end = bounds
    arrays = [decode_image(v, _job["short"]) for v in _job["raw"][start:end]["image"]]
    return b"".join(a.tobytes() for a in arrays), [a.shape[:2] for a in arrays]


def decode_split(
    split: Any, short: int | None, path: Path, num_proc: int | None = None, progress: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Decode the ``image`` column of ``split`` into the record file ``path`` and return (records as a
    copy-on-write memory map of uint8, index [N, 3] int64 of offset, height, width). ``num_proc``: worker
    processes (default: every core for splits of 512 images or more, else 1; 1 decodes in this process)."""
    import datasets
    from tqdm.auto import tqdm

    n = len(split)
    if n == 0:
        raise DataError("cannot build a TensorStore from an empty split")
    raw = split.select_columns(["image"]).cast_column("image", datasets.Image(decode=False))
    workers = num_proc if num_proc is not None else (default_workers() if n >= PARALLEL_FROM else 1)
    workers = max(1, min(workers, -(-n // CHUNK)))
    ranges = [(s, min(n, s + CHUNK)) for s in range(0, n, CHUNK)]
    index = np.zeros((n, 3), dtype=np.int64)
    done, offset = 0, 0
    with (
        open(path, "wb") as f,
        tqdm(total=n, desc="decoding images", unit="img", disable=not progress or n < 5000) as bar,
    ):

        def take(run: tuple[bytes, list[tuple[int, int]]]) -> None:
            nonlocal done, offset
            data, shapes = run
            f.write(data)
            for h, w in shapes:
                index[done] = (offset, h, w)
                offset += h * w * 3
                done += 1
            bar.update(len(shapes))

        if workers == 1:
            _init(raw, short)
            try:
                for r in ranges:
                    take(_decode_range(r))
            finally:
                _job.clear()
        else:
            # fork shares the (memory-mapped) dataset with the workers without pickling it; elsewhere
            # the dataset is pickled to each worker once (arrow-backed datasets pickle as file references)
            method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
            with mp.get_context(method).Pool(workers, initializer=_init, initargs=(raw, short)) as pool:
                for run in pool.imap(_decode_range, ranges):  # in order: records follow the split's order
                    take(run)
    return np.memmap(path, dtype=np.uint8, mode="c", shape=(max(offset, 1),)), index
