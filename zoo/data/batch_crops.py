"""Train crops of small images (CIFAR's 32 px, MNIST's 28) cut, resized and normalised for the whole batch at
once on the training device, the output written once.

Why not per sample, as crops.py does for photos: a 32-px crop upsampled to 224 is 49x the source's bytes. Cut
per sample in the workers, every batch of 256 crossed to the trainer as 38 MB of uint8 at the input size and
was made float there in another pass over 154 MB; on a 2-core CPU that held the path to 1.17x the reference's
speed (benchmarks/README.md). Here the workers send the stored images themselves (3 KB each) with each one's
crop box and flip, drawn by ``SampleCrop.draw`` under the same per-position seed (so the crops are the
per-sample path's), and the device resizes the batch as two batched matrix products, separable per sample:
``out = Wy @ src @ Wx^T``, ``Wy``/``Wx`` holding PIL's resampling weights for that sample's box (its
Resample.c ``precompute_coeffs``; torchvision's antialiased kernels use the same). The cost is out x in per
row, which is why crops.py only sends stores of small images here (every crop upsampled).

Agreement with PIL (the reference path): the horizontal pass runs first and is rounded and clipped to PIL's
8-bit intermediate image (``rows_8bit``); the vertical pass is not rounded and is clipped to the 8-bit range
after normalising, as PIL clips (bicubic overshoots). So the output is within half an 8-bit level of PIL's,
but where float32 rounds an intermediate value the other way (a few in 10,000; then within 2 levels).
Normalising between the passes is exact: each row of weights sums to one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn

# PIL's filters (Resample.c): the support (in source pixels, when upsampling) and the kernel
SUPPORT = {"bilinear": 1.0, "bicubic": 2.0}


def _kernel(interpolation: str, t: torch.Tensor) -> torch.Tensor:
    t = t.abs()
    if interpolation == "bilinear":
        return (1 - t).clamp(min=0)
    a = -0.5  # PIL's bicubic (and torchvision's antialiased one); F.interpolate's plain bicubic uses -0.75
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = (((t - 5) * t + 8) * t - 4) * a
    return torch.where(t < 1, near, torch.where(t < 2, far, torch.zeros_like(t)))


CHUNK = 4  # images per step of the vertical pass and its clip: 2.4 MB of output at 224 px, in two cores' L2
PRECISION_BITS = 22  # Resample.c: 8-bit images are resampled with weights in fixed point, 32 - 8 - 2 bits


def box_taps(
    start: torch.Tensor, length: torch.Tensor, n_in: int, n_out: int, interpolation: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """PIL's resampling weights (its Resample.c ``precompute_coeffs``, in double as PIL computes them) when the
    source's pixels ``start .. start + length - 1`` (one box per sample) are resized to ``n_out``: float64
    weights [B, n_out, T] and the source column of each [B, n_out, T] (taps past the box weigh 0). Written out
    because neither torch nor torchvision exposes the weights, only kernels that apply them to one image."""
    dev = start.device
    start, length = start.to(torch.float64), length.to(torch.float64)
    scale = length / n_out  # PIL: in / out
    filter_scale = scale.clamp(min=1.0)  # the support widens when shrinking (antialiasing)
    support = SUPPORT[interpolation] * filter_scale
    center = (torch.arange(n_out, device=dev, dtype=torch.float64) + 0.5)[None] * scale[:, None]  # [B, out]
    first = (center - support[:, None] + 0.5).trunc().clamp(min=0)  # PIL's xmin = int(center - support + 0.5)
    taps = math.ceil(2 * SUPPORT[interpolation] * max(n_in / n_out, 1.0)) + 1  # an upper bound: no device sync
    x = first[..., None] + torch.arange(taps, device=dev, dtype=torch.float64)  # crop-relative source pixels
    w = _kernel(interpolation, (x - center[..., None] + 0.5) / filter_scale[:, None, None])
    w = w * (x < length[:, None, None])  # PIL's xmax = min(..., in): nothing past the box
    return w / w.sum(-1, keepdim=True), (x + start[:, None, None]).clamp(max=n_in - 1).long()


def dense(weights: torch.Tensor, cols: torch.Tensor, n_in: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """float32 [B, n_out, n_in] from ``box_taps``: the resampling as a matrix, for a batched product (into
    ``out`` when given)."""
    out = torch.zeros(*cols.shape[:2], n_in, device=cols.device) if out is None else out.zero_()
    return out.scatter_add_(2, cols, weights.float())


def rows_8bit(
    images: torch.Tensor, weights: torch.Tensor, cols: torch.Tensor, scratch: Scratch | None = None
) -> torch.Tensor:
    """uint8 images [B, 3, h, w] -> float32 [B, 3, h, W] holding whole numbers 0..255: the horizontal pass of
    PIL's resize of each image to W columns (``box_taps``), PIL's 8-bit intermediate image. PIL's own weights
    (22-bit fixed point, ``normalize_coeffs_8bpc``; exact in float32) and its rounding (half up, clipped), in
    one float32 product: a sum that lands within about 1e-4 of a half can round the other way than PIL's
    integer sum (a few values in 10,000, one level; tests/test_batch_crops.py). Redoing PIL's integer
    arithmetic exactly (weights split in two halves, each sum exact in float32) took a quarter of the batch
    rate away on a 2-core CPU in a throwaway measurement, so it is not done."""
    b, _, h, w = images.shape
    out_w, scratch = cols.shape[1], scratch or Scratch()
    fixed = weights.sign() * (weights.abs() * 2**PRECISION_BITS + 0.5).floor() / 2**PRECISION_BITS
    matrix = dense(fixed, cols, w, scratch.get("wx", (b, out_w, w), images.device))
    rows = scratch.get("rows", (b, 3 * h, out_w), images.device)
    torch.bmm(images.float().reshape(b, 3 * h, w), matrix.transpose(1, 2), out=rows)
    return rows.add_(0.5).floor_().clamp_(0, 255).view(b, 3, h, out_w)


class Scratch:
    """float32 buffers kept from batch to batch for the intermediate results of one module (never handed
    out): a batch's 7-22 MB intermediates would otherwise come from fresh memory whenever glibc's adaptive
    thresholds hand them to mmap, page-faulted in each batch."""

    def __init__(self) -> None:
        self.buffers: dict[str, torch.Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        buf = self.buffers.get(name)
        if buf is None or tuple(buf.shape) != shape or buf.device != device:
            buf = self.buffers[name] = torch.empty(shape, device=device)
        return buf


@dataclass
class SourceBatch:
    """What the workers send for small sources: the stored images and, per image, its crop box and flip."""

    images: torch.Tensor  # uint8 [B, 3, h, w]
    boxes: torch.Tensor  # int64 [B, 5]: top, left, height, width, flip (0/1)

    def to(self, device: Any, non_blocking: bool = False) -> SourceBatch:  # accelerate's send_to_device calls it
        return SourceBatch(
            self.images.to(device, non_blocking=non_blocking), self.boxes.to(device, non_blocking=non_blocking)
        )

    def pin_memory(self) -> SourceBatch:  # DataLoader(pin_memory=True) calls it
        return SourceBatch(self.images.pin_memory(), self.boxes.pin_memory())

    def __len__(self) -> int:
        return len(self.images)


def collate_sources(items: list[tuple[torch.Tensor, torch.Tensor, int]]) -> tuple[SourceBatch, torch.Tensor]:
    images, boxes, labels = zip(*items)
    return SourceBatch(torch.stack(images), torch.stack(boxes)), torch.tensor(labels)


class _ReusedOutput:
    """The float output of the last batch, reused for the next while nothing holds it any more (CPU).

    Why: a batch of 256 at 224 is 154 MB, above glibc's largest mmap threshold (32 MiB), so every fresh one is
    mapped and page-faulted in, zeroed, and unmapped when freed: longer than computing it. The trainer
    drops each batch after its step, so one buffer serves every batch; a batch still held anywhere (a view, an
    autograd graph, a caller's list) keeps its storage's use count above one, and a new buffer is made."""

    def __init__(self) -> None:
        self.storage: torch.UntypedStorage | None = None

    def empty(self, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        count = getattr(torch._C, "_storage_Use_Count", None)
        if device.type != "cpu" or count is None:  # CUDA's caching allocator already reuses memory
            return torch.empty(shape, device=device)
        spare = self.storage
        if spare is not None and spare.nbytes() == math.prod(shape) * 4 and count(spare._cdata) == 1:
            strides = [math.prod(shape[i + 1 :]) for i in range(len(shape))]
            return torch.empty(0).set_(spare, 0, shape, strides)  # a new tensor on the free storage
        out = torch.empty(shape)
        self.storage = out.untyped_storage()
        return out


class BoxTaps:
    """``box_taps`` for every box an axis of ``n_in`` pixels has (each start and length), computed once and
    looked up per batch: a batch of 256 draws repeats its boxes, and recomputing them costs about as much as
    the horizontal pass. Only for short axes (the table grows with n_in**2); longer ones compute per batch."""

    MAX_ENTRIES = 2**21  # taps in the table, 16 bytes each (weight, column): 32 MiB; 32 px to 224 needs 1.2 M

    def __init__(self, n_in: int, n_out: int, interpolation: str) -> None:
        self.n_in, self.n_out, self.interpolation = n_in, n_out, interpolation
        self.table: tuple[torch.Tensor, torch.Tensor] | None = None

    def __call__(self, start: torch.Tensor, length: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.n_in
        taps = math.ceil(2 * SUPPORT[self.interpolation] * max(n / self.n_out, 1.0)) + 1
        if n * (n + 1) * self.n_out * taps > self.MAX_ENTRIES:
            return box_taps(start, length, n, self.n_out, self.interpolation)
        if self.table is None or self.table[0].device != start.device:
            starts, lengths = torch.arange(n, device=start.device), torch.arange(n + 1, device=start.device)
            every = torch.cartesian_prod(starts, lengths)  # (start, length) at start * (n + 1) + length
            usable = every[:, 1].clamp(min=1)  # length 0 never comes; any weights will do there
            self.table = box_taps(every[:, 0], usable, n, self.n_out, self.interpolation)
        index = start * (n + 1) + length
        return self.table[0][index], self.table[1][index]


class BatchResizedCrop(nn.Module):
    """SourceBatch -> float32 [B, 3, H, W]: each image's box resized to the input size (``interpolation``,
    bilinear or bicubic as PIL computes them), flipped where drawn, normalised as ToTensor + Normalize."""

    def __init__(self, size: tuple[int, int], interpolation: str, mean: Any, std: Any) -> None:
        super().__init__()
        if interpolation not in SUPPORT:
            raise ValueError(f"BatchResizedCrop resamples bilinear or bicubic, not {interpolation!r}")
        self.size, self.interpolation = size, interpolation
        mean64 = torch.tensor(mean, dtype=torch.float64).view(1, 3, 1, 1)
        std64 = torch.tensor(std, dtype=torch.float64).view(1, 3, 1, 1)
        self.register_buffer("scale", (1 / (255 * std64)).float(), persistent=False)
        self.register_buffer("shift", (mean64 / std64).float(), persistent=False)
        # each channel's normalised 0 and 255, as numbers: a clamp to scalars is vectorised, to tensors is not
        self.bounds = [(-m / s, (1 - m) / s) for m, s in zip(mean, std)]
        self._output, self._scratch = _ReusedOutput(), Scratch()
        self._taps: dict[tuple[int, int], BoxTaps] = {}

    def _box_taps(
        self, start: torch.Tensor, length: torch.Tensor, n_in: int, n_out: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        key = (n_in, n_out)
        if key not in self._taps:
            self._taps[key] = BoxTaps(n_in, n_out, self.interpolation)
        return self._taps[key](start, length)

    def forward(self, batch: SourceBatch) -> torch.Tensor:
        images, boxes = batch.images, batch.boxes.to(batch.images.device)
        b, _, h, w = images.shape
        out_h, out_w = self.size
        top, left, height, width, flip = boxes.unbind(1)
        y_weights, y_cols = self._box_taps(top, height, h, out_h)
        wy = dense(y_weights, y_cols, h, self._scratch.get("wy", (b, out_h, h), images.device))  # [B, H, h]
        wx, cols = self._box_taps(left, width, w, out_w)  # [B, W, taps]
        flipped = flip.bool()[:, None, None]  # a flipped crop: its output columns reversed
        wx, cols = torch.where(flipped, wx.flip(1), wx), torch.where(flipped, cols.flip(1), cols)
        scale, shift = cast(torch.Tensor, self.scale), cast(torch.Tensor, self.shift)  # buffers
        with torch.autocast(device_type=images.device.type, enabled=False):
            rows = rows_8bit(images, wx, cols, self._scratch).mul_(scale).sub_(shift)  # [B, 3, h, W], normalised
            # vertical, per channel ([3k, H, h] @ [3k, h, W]) straight into the output, CHUNK images at a time,
            # each chunk clipped while it is still in cache (a separate pass over 154 MB cost as much again)
            out = self._output.empty((b, 3, out_h, out_w), images.device)
            for i in range(0, b, CHUNK):
                k = min(CHUNK, b - i)
                per_channel = wy[i : i + k].unsqueeze(1).expand(k, 3, out_h, h).reshape(3 * k, out_h, h)
                chunk = out[i : i + k]
                torch.bmm(per_channel, rows[i : i + k].reshape(3 * k, h, out_w), out=chunk.view(3 * k, out_h, out_w))
                if self.interpolation == "bicubic":  # its negative lobes overshoot; PIL clips to 0..255
                    for c, (low, high) in enumerate(self.bounds):
                        chunk[:, c].clamp_(low, high)
        return out
