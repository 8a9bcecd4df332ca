"""Where the model looked: class-activation maps for every backbone, chosen through the backbone contract.

The layer is the last stage of ``Backbone.layer_groups()`` (the group before the head), so timm, Hugging Face,
torchvision and PyPI backbones, and plugins, all work without model-specific code:

* a convolutional stage (output ``[B, C, h, w]``): Grad-CAM (Selvaraju et al. 2017), the ReLU of the
  activation maps weighted by their spatially averaged gradients of the class logit;
* a transformer block (output ``[B, N, D]`` tokens): the same Grad-CAM on the *patch tokens entering* the last
  block (prefix tokens such as CLS and registers dropped, the rest laid out on the patch grid); its input,
  because a CLS-pooled head sees the block's output patch tokens not at all, while the block's attention
  carries the input patch tokens into CLS (pytorch-grad-cam's ``blocks[-1].norm1`` choice). Not attention
  rollout: the gradient makes the map class-specific, and it needs no attention weights (fused SDPA hides them).

Maps are upsampled to the model's input, normalised to [0, 1], and drawn over the exact crop the model saw.
``sanity`` holds the two checks that can fail (Adebayo et al. 2018).
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from zoo.inference import ImageInput, as_list, eval_transform, to_pil

METHOD_CNN = "Grad-CAM on the last stage's feature maps"
METHOD_TOKENS = "Grad-CAM on the patch tokens entering the last transformer block"


def target_layer(model: Any) -> tuple[str, torch.nn.Module]:
    """The last stage before the head (``layer_groups()[-2]``), as (name, module of the source model)."""
    groups = [g for g in model.layer_groups() if g.name != "head"]
    if not groups:
        raise ValueError(f"{model.name} has no stage before its head to explain")
    name = groups[-1].name
    try:
        return name, model.model.get_submodule(name)
    except AttributeError:
        from zoo.backbones.base import common_prefix_name

        prefix = common_prefix_name(list(groups[-1].names))
        return prefix, model.model.get_submodule(prefix)


def _tokens_to_grid(t: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """``[B, N, D]`` tokens -> ``[B, D, gh, gw]``: the patch tokens on their grid, prefix tokens dropped."""
    n = t.shape[1]
    aspect = hw[0] / hw[1]
    for prefix in range(0, min(n, 9)):
        patches = n - prefix
        gw = round(math.sqrt(patches / aspect))
        if gw > 0 and patches % gw == 0 and abs(patches // gw / gw - aspect) < 1e-6:
            return t[:, prefix:].transpose(1, 2).reshape(t.shape[0], t.shape[2], patches // gw, gw)
    raise ValueError(f"cannot lay {n} tokens on a patch grid for a {hw[0]}x{hw[1]} input")


def cam(model: Any, x: torch.Tensor, target: Sequence[int] | None = None) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Maps ``[B, H, W]`` in [0, 1] for a normalised batch ``x``, the class explained per image (``target``,
    default the top-1) and the method used."""
    _, layer = target_layer(model)
    store: dict[str, torch.Tensor] = {}

    def keep(key: str, value: Any) -> None:
        value = value[0] if isinstance(value, (tuple, list)) else getattr(value, "last_hidden_state", value)
        if isinstance(value, torch.Tensor) and value.requires_grad:
            value.retain_grad()
            store[key] = value

    def before(_m: Any, args: Any, kwargs: Any) -> None:
        keep("input", args[0] if args else next(iter(kwargs.values()), None))

    handles = [
        layer.register_forward_pre_hook(before, with_kwargs=True),
        layer.register_forward_hook(lambda _m, _i, out: keep("output", out)),
    ]
    was = model.training
    model.eval()
    try:
        with torch.enable_grad():
            x = x.detach().clone().requires_grad_(True)  # frozen weights still give activation gradients
            logits = model(x)
            classes = torch.as_tensor(target) if target is not None else logits.argmax(1)
            logits.gather(1, classes.view(-1, 1).to(logits.device)).sum().backward()
    finally:
        for handle in handles:
            handle.remove()
        model.train(was)
    # a transformer block's output tokens reach a CLS-pooled head only through the CLS token, so its patch
    # tokens get no gradient: use the tokens entering the last block, whose attention mixes them into CLS
    key = "input" if store["output"].dim() == 3 else "output"
    act, raw_grad = store[key].detach(), store[key].grad
    if raw_grad is None:
        raise RuntimeError("the explained layer got no gradient: its output does not reach the logits")
    grad = raw_grad.detach()
    if act.dim() == 3:
        size = (int(x.shape[-2]), int(x.shape[-1]))
        act, grad = _tokens_to_grid(act, size), _tokens_to_grid(grad, size)
        method = METHOD_TOKENS
    else:
        method = METHOD_CNN
    weights = grad.mean(dim=(2, 3), keepdim=True)
    maps = torch.relu((weights * act).sum(1, keepdim=True)).float()
    maps = torch.nn.functional.interpolate(maps, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    flat = maps.flatten(1)
    lo, hi = flat.min(1).values[:, None, None], flat.max(1).values[:, None, None]
    return ((maps - lo) / (hi - lo).clamp_min(1e-12)).cpu(), classes.cpu(), method


def seen_image(x: torch.Tensor, data_config: dict[str, Any]) -> Image.Image:
    """The normalised crop ``[3, H, W]`` back as the RGB picture the model saw."""
    mean = torch.tensor(data_config.get("mean", (0.5,) * 3)).view(3, 1, 1)
    std = torch.tensor(data_config.get("std", (0.5,) * 3)).view(3, 1, 1)
    arr = ((x.detach().cpu() * std + mean).clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    return Image.fromarray(arr)


def overlay(image: Image.Image, heat: torch.Tensor, alpha: float = 0.45) -> Image.Image:
    """The map in the 'jet' colours blended over the image (same size)."""
    from matplotlib import colormaps

    colours = (colormaps["jet"](heat.numpy())[..., :3] * 255).astype(np.uint8)
    return Image.blend(image.convert("RGB"), Image.fromarray(colours).resize(image.size), alpha)


def data_uri(image: Image.Image, side: int = 112) -> str:
    scale = side / max(image.size)
    if scale != 1:
        image = image.resize(
            (max(1, round(image.width * scale)), max(1, round(image.height * scale))),
            Image.Resampling.NEAREST if scale > 1 else Image.Resampling.LANCZOS,
        )
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def explain(model: Any, images: ImageInput | Sequence[ImageInput], batch_size: int = 16) -> list[dict[str, Any]]:
    """For each image: the map, the explained label, the method and the overlay on the crop the model saw."""
    items = as_list(images)
    transform = eval_transform(model.data_config)
    device = next(model.parameters()).device
    names = list(model.label_names or [str(i) for i in range(model.num_classes)])
    out = []
    for start in range(0, len(items), batch_size):
        x = torch.stack([transform(to_pil(img)) for img in items[start : start + batch_size]])
        maps, classes, method = cam(model, x.to(device))
        for xi, m, c in zip(x, maps, classes.tolist()):
            out.append(
                {
                    "map": m,
                    "label": names[c],
                    "method": method,
                    "overlay": overlay(seen_image(xi, model.data_config), m),
                }
            )
    return out
