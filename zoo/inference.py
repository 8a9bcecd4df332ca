"""Inference on a ready classifier: images in, label names and probabilities out; and evaluation on a split.

Preprocessing is one transform everywhere: the data layer's evaluation transform built from the model's own
``data_config`` (resize to input/crop_pct, center crop, normalise, as timm's eval transform does), used by
``zoo predict``, ``zoo eval``, ``zoo serve`` and the final evaluation of every training run. Test-time
augmentation (``tta``) builds its views from that same transform, and the logits are averaged over views.

Probabilities are calibrated: softmax(logits / T) with the temperature a training run fitted on its
validation split (``model.calibration``, saved in zoo.json and ONNX metadata); ``calibrated=False`` gives the
raw softmax. A model without a temperature (a registry model, an old artifact) uses T = 1.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from zoo.artifact.files import HUB_ID
from zoo.artifact.load import load
from zoo.backbones.base import Backbone
from zoo.data.transforms import build_transform
from zoo.data.validate import read_image
from zoo.errors import ConfigError, DataError
from zoo.metrics import calibration_report, classification_metrics
from zoo.registry import create_model

ImageInput = Image.Image | np.ndarray | torch.Tensor | str | os.PathLike[str]
Prediction = list[tuple[str, float]]


def to_pil(image: ImageInput) -> Image.Image:
    """An RGB PIL image from a PIL image, a file path, an HWC/HW numpy array or a CHW tensor in [0, 1]."""
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise DataError(f"image file not found: {path}")
        return read_image(path)  # the data layer's checks: bombs, truncation, non-images, 16-bit
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
        if image.ndim == 3 and image.shape[0] in (1, 3):  # CHW -> HWC
            image = image.transpose(1, 2, 0)
    if isinstance(image, np.ndarray):
        arr = image.squeeze(-1) if image.ndim == 3 and image.shape[-1] == 1 else image
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
            raise DataError(f"image array has shape {image.shape}; expected HxW, HxWx3 or HxWx4")
        if arr.dtype != np.uint8:
            arr = np.asarray(arr, dtype=np.float64)
            if arr.max(initial=0) <= 1.0:  # floats in [0, 1], as ToTensor produces
                arr = arr * 255.0
            arr = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return Image.fromarray(arr).convert("RGB")
    raise DataError(f"cannot use {type(image).__name__} as an image; pass a PIL image, a numpy array or a file path")


def as_list(images: ImageInput | Sequence[ImageInput]) -> list[ImageInput]:
    """One image or many: a single path/PIL/array becomes a list of one."""
    if isinstance(images, (str, os.PathLike, Image.Image, np.ndarray, torch.Tensor)):
        if isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 4:
            return list(images)  # a batch array
        return [images]
    return list(images)


# zoo eval's default batch and the final evaluation's (the same batches, the same float sums), by device. On a
# CPU, float32 inference is faster in small batches: the photo job's Lite0 evaluated 47.5 images/s at 16 and
# 30.7 at 64 (benchmarks/results/cpu_memory_cpu-2core.csv; ConvNeXt-T and ResNet-50 went the same way in a
# throwaway measurement), as a batch of 64's activations page-fault in afresh. GPUs want the larger batch.
EVAL_BATCH_SIZE = 64
CPU_EVAL_BATCH_SIZE = 16


def eval_batch_size(model: torch.nn.Module, batch_size: int | None = None) -> int:
    """``batch_size`` when given, else the default for the device the model is on."""
    if batch_size:
        return batch_size
    device = next(model.parameters()).device
    return CPU_EVAL_BATCH_SIZE if device.type == "cpu" else EVAL_BATCH_SIZE


def eval_transform(data_config: Mapping[str, Any]) -> Callable[[Image.Image], torch.Tensor]:
    """The evaluation transform for this data config (the model's own preprocessing)."""
    return build_transform(dict(data_config), train=False)


def preprocess(images: ImageInput | Sequence[ImageInput], data_config: Mapping[str, Any]) -> torch.Tensor:
    """A normalised ``[B, C, H, W]`` batch."""
    transform = eval_transform(data_config)
    return torch.stack([transform(to_pil(img)) for img in as_list(images)])


TTA_MODES = ("none", "flip", "five_crop", "ten_crop")


def tta_views(data_config: Mapping[str, Any], mode: str = "none") -> Callable[[Image.Image], torch.Tensor]:
    """callable(PIL) -> the views ``[V, C, H, W]`` test-time augmentation averages, built on the eval transform:
    ``flip`` is the eval crop and its mirror (V=2); ``five_crop`` the four corners and the centre of the image
    the eval transform resizes to (input/crop_pct) before it center-crops (V=5); ``ten_crop`` those and their
    mirrors (V=10). ``none`` is the eval crop alone (V=1)."""
    if mode not in TTA_MODES:
        raise ConfigError(f"tta {mode!r} is not one of {', '.join(TTA_MODES)}")
    plain = eval_transform(data_config)
    if mode in ("none", "flip"):

        def views(img: Image.Image) -> torch.Tensor:
            x = plain(img)
            return torch.stack([x, x.flip(-1)]) if mode == "flip" else x[None]

        return views
    from torchvision.transforms.v2.functional import five_crop

    from zoo.data.transforms import eval_scale_size, resolve_config

    cfg = resolve_config(dict(data_config))
    _, h, w = cfg["input_size"]
    # the same eval transform, asked for the whole resized image (crop_pct 1 at the resize size)
    whole = eval_transform({**data_config, "input_size": (3, *eval_scale_size(cfg)), "crop_pct": 1.0})

    def crops(img: Image.Image) -> torch.Tensor:
        big = whole(img)
        if big.shape[-2] < h or big.shape[-1] < w:  # data.upsample=false kept a small image small: one view
            x = plain(img)[None]
        else:
            x = torch.stack(five_crop(big, [h, w]))
        return torch.cat([x, x.flip(-1)]) if mode == "ten_crop" else x

    return crops


def tta_logits(
    model: Any, images: Sequence[Image.Image], views: Callable[[Image.Image], torch.Tensor], device: torch.device
) -> torch.Tensor:
    """Logits ``[B, C]`` averaged over each image's views (one forward pass for the whole batch)."""
    stacks = [views(img) for img in images]
    out = model(torch.cat(stacks).to(device)).float().cpu()
    return torch.stack([chunk.mean(0) for chunk in out.split([len(s) for s in stacks])])


def temperature_of(model: Any) -> float:
    """The temperature calibrated probabilities divide logits by: fitted by the training run (zoo.json's
    ``calibration``, an ONNX file's metadata), else 1 (the raw softmax)."""
    cal = getattr(model, "calibration", None) or (getattr(model, "zoo_metadata", None) or {}).get("calibration")
    t = (cal or {}).get("temperature") if isinstance(cal, Mapping) else None
    return float(t) if t and float(t) > 0 else 1.0


def label_names_of(model: Backbone) -> list[str]:
    return list(model.label_names) if model.label_names else [str(i) for i in range(model.num_classes)]


@torch.no_grad()
def predict(
    model: Backbone,
    images: ImageInput | Sequence[ImageInput],
    top_k: int = 5,
    batch_size: int | None = None,
    calibrated: bool = True,
) -> list[Prediction]:
    """For each image, the ``top_k`` (label name, probability) pairs, most likely first; calibrated
    probabilities (the model's temperature) unless ``calibrated=False``."""
    if top_k < 1:
        raise ConfigError(f"top_k must be >= 1, got {top_k}")
    if model.num_classes < 1:
        raise ConfigError(f"{model.name} has no classifier head (num_classes=0); nothing to predict")
    items = as_list(images)
    names = label_names_of(model)
    k = min(top_k, model.num_classes)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    transform = eval_transform(model.data_config)
    temperature = temperature_of(model) if calibrated else 1.0
    out: list[Prediction] = []
    batch_size = eval_batch_size(model, batch_size)
    try:
        for start in range(0, len(items), batch_size):
            batch = torch.stack([transform(to_pil(img)) for img in items[start : start + batch_size]])
            probs = (model(batch.to(device)).float() / temperature).softmax(dim=-1).cpu()
            values, indices = probs.topk(k, dim=-1)
            out += [[(names[i], float(p)) for p, i in zip(vs.tolist(), ix.tolist())] for vs, ix in zip(values, indices)]
    finally:
        model.train(was_training)
    return out


# ---- evaluation ---------------------------------------------------------------------------------
def dataset_label_names(dataset: Any) -> list[str] | None:
    """ClassLabel names of a datasets.Dataset's 'label' column (or the data layer's ``label_names``)."""
    names = getattr(dataset, "label_names", None)
    if names:
        return list(names)
    feature = getattr(dataset, "features", {}).get("label") if hasattr(dataset, "features") else None
    return list(feature.names) if feature is not None and getattr(feature, "names", None) else None


def label_mapping(model_names: Sequence[str] | None, data_names: Sequence[str] | None) -> list[int] | None:
    """Index map dataset label -> model output, when both have names and the order differs; an error when
    the dataset has a class the model does not know (evaluating would silently score it as wrong)."""
    if not model_names or not data_names or list(model_names) == list(data_names):
        return None
    unknown = [n for n in data_names if n not in model_names]
    if unknown:
        raise DataError(
            f"the dataset has labels the model was not trained on: {unknown[:5]}; model labels: "
            f"{list(model_names)[:10]}. Evaluate on data with the model's classes."
        )
    index = {n: i for i, n in enumerate(model_names)}
    return [index[n] for n in data_names]


@torch.no_grad()
def evaluate(
    model: Backbone,
    dataset: Any,
    transform: Callable[[Image.Image], torch.Tensor] | None = None,
    batch_size: int | None = None,
    label_names: Sequence[str] | None = None,
    progress: bool = True,
    tta: str = "none",
) -> dict[str, Any]:
    """top-1/top-5, loss, per-class accuracy and the confusion matrix of ``model`` on a dataset with
    ``image`` (PIL/array/path) and ``label`` (int) columns, e.g. a ``datasets.Dataset`` split; with
    ``calibration`` (ECE, NLL, Brier before and after the model's temperature) and the ``tta`` used."""
    logits, labels = dataset_logits(model, dataset, transform, batch_size, label_names, progress, tta)
    return logits_metrics(model, logits, labels, tta)


def logits_metrics(model: Backbone, logits: torch.Tensor, labels: torch.Tensor, tta: str = "none") -> dict[str, Any]:
    """What :func:`evaluate` returns, from logits already computed by :func:`dataset_logits` (the trainer's
    final evaluation reuses the validation logits its calibration computed, rather than a second pass)."""
    result = classification_metrics(logits, labels, model.num_classes)
    result["calibration"] = calibration_report(logits, labels, temperature_of(model))
    result["tta"] = tta
    result["label_names"] = label_names_of(model)
    return result


@torch.no_grad()
def dataset_logits(
    model: Backbone,
    dataset: Any,
    transform: Callable[[Image.Image], torch.Tensor] | None = None,
    batch_size: int | None = None,
    label_names: Sequence[str] | None = None,
    progress: bool = True,
    tta: str = "none",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw logits ``[N, C]`` (averaged over the TTA views) and labels ``[N]`` in the model's class order."""
    columns = getattr(dataset, "column_names", None)
    if columns is not None and not {"image", "label"} <= set(columns):
        raise DataError(f"evaluation needs 'image' and 'label' columns, the dataset has {columns}")
    views = tta_views(model.data_config, tta) if tta != "none" else None
    transform = transform or eval_transform(model.data_config)
    mapping = label_mapping(model.label_names, label_names or dataset_label_names(dataset))
    device = next(model.parameters()).device
    model.eval()
    logits, labels = [], []
    n, batch_size = len(dataset), eval_batch_size(model, batch_size)
    with tqdm(total=n, desc="eval", unit="img", disable=not progress) as bar:
        for start in range(0, n, batch_size):
            rows = dataset[start : start + batch_size]
            if views is not None:
                logits.append(tta_logits(model, [to_pil(img) for img in rows["image"]], views, device))
            else:
                x = torch.stack([transform(to_pil(img)) for img in rows["image"]])
                logits.append(model(x.to(device)).float().cpu())
            y = [int(v) for v in rows["label"]]
            labels.append(torch.tensor([mapping[v] for v in y] if mapping else y))
            bar.update(len(y))
    all_labels = torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long)
    if len(all_labels) and int(all_labels.max()) >= model.num_classes:
        raise DataError(
            f"the dataset has label {int(all_labels.max())} but {model.name} has only {model.num_classes} classes"
        )
    return torch.cat(logits) if logits else torch.zeros(0, model.num_classes), all_labels


def open_model(spec: str, revision: str | None = None) -> Backbone:
    """What the CLI's MODEL argument names: an artifact folder, a Hub repo id, or a registry 'source:id'
    (pretrained weights)."""
    if Path(spec).expanduser().exists() or HUB_ID.match(spec) or spec.startswith(("hf-hub:", "hf_hub:")):
        return load(spec, revision=revision)
    model = create_model(spec, pretrained=True)
    model.eval()
    return model
