"""Crop + resize + flip of a whole batch as two small matrix products, one per axis.

torchvision resizes a batch to ONE output size from ONE box; a RandomResizedCrop needs a different box per
sample, which would mean a Python loop over the batch. Instead each sample gets a [out, in] weight matrix
per axis holding PIL's antialiased resampling weights for its box (the same formula as PIL's
``ImagingResample``), and ``torch.matmul`` applies them all at once, on any device. A horizontal flip is
the x-matrix with its rows reversed. The eval resize + center crop is the same thing with a fixed box.
"""
from __future__ import annotations

import math

import torch

from zoo.errors import ConfigError

# PIL's filters (Pillow's src/libImaging/Resample.c): (support, kernel)


def _bilinear(x: torch.Tensor) -> torch.Tensor:
    return (1 - x.abs()).clamp(min=0)


def _bicubic(x: torch.Tensor, a: float = -0.5) -> torch.Tensor:
    x = x.abs()
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return torch.where(x < 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


def _lanczos(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x.abs() < 3, torch.sinc(x) * torch.sinc(x / 3), torch.zeros_like(x))


def _box(x: torch.Tensor) -> torch.Tensor:
    return ((x >= -0.5) & (x < 0.5)).to(x.dtype)


def _hamming(x: torch.Tensor) -> torch.Tensor:
    """PIL's hamming_filter: sinc windowed by 0.54 + 0.46 cos(pi x) (float constants, as in Pillow)."""
    return torch.where(x.abs() < 1, torch.sinc(x) * (0.54 + 0.46 * torch.cos(math.pi * x)), torch.zeros_like(x))


FILTERS = {"bilinear": (1.0, _bilinear), "bicubic": (2.0, _bicubic), "lanczos": (3.0, _lanczos),
           "box": (0.5, _box), "hamming": (1.0, _hamming), "nearest": (0.5, _box)}


def check_interpolation(name: str) -> str:
    """Every interpolation a timm/PIL data config can name has a filter here; anything else is an error
    (it used to become bilinear without a word)."""
    if name not in FILTERS:
        raise ConfigError(f"interpolation {name!r} is not supported by the fast path (data.fast); use one of "
                          f"{', '.join(FILTERS)}, or data.fast=false for the per-sample PIL path")
    return name


def resample_weights(in_size: int, start: torch.Tensor, length: torch.Tensor, out_size: int,
                     interpolation: str = "bicubic", out_offset: int = 0, out_full: int | None = None,
                     flip: torch.Tensor | None = None) -> torch.Tensor:
    """[B, out_size, in_size] weights that resize the pixel box ``[start, start + length)`` of each sample
    to ``out_full`` (default ``out_size``) pixels and keep outputs ``out_offset .. out_offset + out_size``
    (a center crop after the resize). Pixels outside the box get no weight, as when PIL crops then resizes."""
    support, kernel = FILTERS[check_interpolation(interpolation)]
    out_full = out_size if out_full is None else out_full
    dev = start.device
    start = start.to(torch.float32)[:, None, None]
    length = length.to(torch.float32)[:, None, None]
    scale = length / out_full
    filterscale = scale.clamp(min=1.0)
    i = torch.arange(out_offset, out_offset + out_size, device=dev, dtype=torch.float32)[None, :, None]
    j = torch.arange(in_size, device=dev, dtype=torch.float32)[None, None, :]
    center = start + (i + 0.5) * scale
    if interpolation == "nearest":  # PIL's NEAREST picks the source pixel under the output pixel's center
        src = torch.floor(center).clamp(max=start + length - 1)
        w = (j == src).to(torch.float32)
    else:
        w = kernel((j + 0.5 - center) / filterscale)
        reach = (j - center + 0.5).abs() < support * filterscale + 0.5  # PIL's xmin/xmax window
        w = w * reach * ((j >= start) & (j < start + length))
        w = w / w.sum(-1, keepdim=True).clamp(min=1e-12)
    if flip is not None:
        w = torch.where(flip.to(dev)[:, None, None], w.flip(1), w)
    return w.to(torch.float32)


def apply_weights(x: torch.Tensor, wy: torch.Tensor, wx: torch.Tensor, scale: torch.Tensor | None = None,
                  shift: torch.Tensor | None = None, chunk: int | None = None) -> torch.Tensor:
    """x [B, C, h, w] (uint8 or float in 0..255), wy [B or 1, H, h], wx [B or 1, W, w] ->
    ``clip(resized, 0, 255) * scale - shift`` as float32 [B, C, H, W] (scale/shift broadcast per channel).

    Horizontal pass first, rounded and clipped to 0..255 like PIL's 8-bit intermediate (this matters for
    bicubic upsampling, whose overshoot PIL clips between the passes), then the vertical pass. The
    normalisation is applied to the small intermediate (the rows of ``wy`` sum to one) and the clip is
    done in normalised units, so the large output is written once. On CPU the batch is processed in
    chunks whose output fits in cache: memory bandwidth, not arithmetic, is the limit there.

    Always float32, also inside an autocast region (bf16/fp16 training evaluates through it): the 8-bit
    agreement with PIL needs float32, and ``matmul(out=float32)`` under autocast fails."""
    with torch.autocast(device_type=x.device.type, enabled=False):
        return _apply_weights(x, wy, wx, scale, shift, chunk)


def _apply_weights(x: torch.Tensor, wy: torch.Tensor, wx: torch.Tensor, scale: torch.Tensor | None,
                   shift: torch.Tensor | None, chunk: int | None) -> torch.Tensor:
    b, c, h, w = x.shape
    H, W = wy.shape[1], wx.shape[1]
    dev = x.device
    scale = torch.ones(1, c, 1, 1, device=dev) if scale is None else scale.to(dev).view(1, -1, 1, 1)
    shift = torch.zeros(1, c, 1, 1, device=dev) if shift is None else shift.to(dev).view(1, -1, 1, 1)
    bounds = [(float(-shift.flatten()[k]), float((255 * scale - shift).flatten()[k])) for k in range(c)]
    if chunk is None:
        chunk = b if dev.type != "cpu" else max(1, (4 << 20) // (c * H * W * 4))
    out = torch.empty(b, c, H, W, device=dev, dtype=torch.float32)
    for s in range(0, b, chunk):
        e = min(b, s + chunk)
        wxs = wx if wx.shape[0] == 1 else wx[s:e]
        wys = wy if wy.shape[0] == 1 else wy[s:e]
        t = torch.matmul(x[s:e].float(), wxs.transpose(1, 2)[:, None])  # [b, C, h, W]
        t = t.add_(0.5).floor_().clamp_(0, 255).mul_(scale).sub_(shift)  # PIL rounds half up
        o = out[s:e]
        torch.matmul(wys[:, None], t, out=o)
        for k, (lo, hi) in enumerate(bounds):  # scalar bounds: a tensor-bound clamp is 3x slower
            o[:, k].clamp_(lo, hi)
    return out


def rrc_boxes(batch: int, h: int, w: int, scale: tuple[float, float], ratio: tuple[float, float],
              generator: torch.Generator | None = None, attempts: int = 10) -> torch.Tensor:
    """[B, 4] integer boxes (top, left, height, width) drawn as torchvision's RandomResizedCrop draws them:
    up to ten tries of area x aspect ratio, else the largest center crop within the ratio bounds."""
    area = h * w
    u = torch.rand(batch, attempts, 4, generator=generator, dtype=torch.float32)
    target = area * (scale[0] + (scale[1] - scale[0]) * u[..., 0])
    log_r = (math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * u[..., 1])
    aspect = torch.exp(log_r)
    cw = torch.round(torch.sqrt(target * aspect))
    ch = torch.round(torch.sqrt(target / aspect))
    ok = (cw > 0) & (cw <= w) & (ch > 0) & (ch <= h)
    first = torch.where(ok.any(1), ok.float().argmax(1), torch.full((batch,), -1))
    rows = torch.arange(batch)
    pick = first.clamp(min=0)
    ch, cw = ch[rows, pick], cw[rows, pick]
    top = torch.floor(u[rows, pick, 2] * (h - ch + 1))
    left = torch.floor(u[rows, pick, 3] * (w - cw + 1))
    # fallback (no try fitted): whole image, clamped to the ratio bounds, centered
    in_ratio = w / h
    if in_ratio < ratio[0]:
        fw, fh = w, int(round(w / ratio[0]))
    elif in_ratio > ratio[1]:
        fh, fw = h, int(round(h * ratio[1]))
    else:
        fw, fh = w, h
    miss = first < 0
    ch = torch.where(miss, torch.full_like(ch, fh), ch)
    cw = torch.where(miss, torch.full_like(cw, fw), cw)
    top = torch.where(miss, torch.full_like(top, (h - fh) // 2), top)
    left = torch.where(miss, torch.full_like(left, (w - fw) // 2), left)
    return torch.stack([top, left, ch, cw], 1).long()
