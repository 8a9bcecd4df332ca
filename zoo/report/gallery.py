"""The top losses (fastai's ``plot_top_losses``): the validation images the model got most confidently
wrong, and the right ones it was least sure of.

Computed from the saved model (``RUN_DIR/model``) on the run's validation split, reloaded from the recipe's
data spec with the recipe's seed, so the split is the one the run used (checked against the fingerprint the
model recorded). Why not per-sample predictions saved by the trainer: this works on any finished run folder
(also runs trained before the report existed, or on another machine), it scores the artifact users will
deploy (after best-epoch selection and EMA), with exactly ``zoo predict``'s preprocessing, and the trainer
stays untouched; the cost is one pass over the validation split (a few seconds for the quickstart).
"""

from __future__ import annotations

import base64
import io
import logging
import random
from typing import Any

import torch
from PIL import Image
from tqdm.auto import tqdm

from zoo.artifact.load import load
from zoo.backbones.base import Backbone
from zoo.data import load_dataset
from zoo.explain import data_uri, explain
from zoo.inference import eval_batch_size, predict
from zoo.report.run import RunData

log = logging.getLogger("zoo.report")

THUMB = 112  # px, the longer side of a gallery image


def validation_split(run: RunData) -> Any:
    """The run's data set, loaded again as the recipe says (same spec, columns, seed, validation carving)."""
    d = run.recipe.get("data") or {}
    spec = d.get("spec") or run.dataset.get("spec")
    if not spec:
        raise ValueError("the run records no data spec")
    return load_dataset(
        spec,
        val_size=d.get("val_size", 0.1),
        seed=d.get("seed", 0),
        image_column=d.get("image_column"),
        label_column=d.get("label_column"),
        on_bad_image=d.get("on_bad_image", "error"),
        progress=False,
    )


def thumbnail(image: Image.Image) -> str:
    """A PNG data URI; small images (digits are 8x8) are enlarged with nearest neighbours so pixels stay sharp."""
    image = image.convert("RGB")
    scale = THUMB / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    image = image.resize(size, Image.Resampling.NEAREST if scale > 1 else Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


@torch.no_grad()
def score_split(
    model: Backbone, split: Any, batch_size: int | None = None, progress: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Probabilities [N, C] (model's class order) and labels [N] for a split, through ``zoo.predict``."""
    batch_size = eval_batch_size(model, batch_size)
    names = list(model.label_names or [str(i) for i in range(model.num_classes)])
    column = {n: i for i, n in enumerate(names)}
    probs, labels = [], []
    for start in tqdm(range(0, len(split), batch_size), desc="report: top losses", disable=not progress, leave=False):
        rows = split[start : start + batch_size]
        for ranked in predict(model, list(rows["image"]), top_k=model.num_classes, batch_size=batch_size):
            p = torch.zeros(len(names))
            for label, prob in ranked:
                p[column[label]] = prob
            probs.append(p)
        labels += [int(v) for v in rows["label"]]
    return torch.stack(probs), torch.tensor(labels)


def top_losses(
    run: RunData, n: int = 12, dataset: Any = None, max_images: int = 5000, progress: bool = True
) -> dict[str, Any]:
    """``{"wrong": [...], "unsure": [...], "scored": N, "note": str}``; each item has the image as a data
    URI, the true and predicted label, the predicted probability and the probability of the true label."""
    model = load(run.path / "model")
    if torch.cuda.is_available():
        model = model.to("cuda")
    ds = dataset if dataset is not None else validation_split(run)
    notes = []
    recorded = run.dataset.get("fingerprint")
    if recorded and getattr(ds, "fingerprint", recorded) != recorded:
        notes.append(
            "the data set changed since the run (fingerprint differs): the images below are scored "
            "on today's validation split"
        )
    split = ds["validation"]
    data_names = list(getattr(ds, "label_names", None) or run.label_names)
    model_names = list(model.label_names or data_names)
    if sorted(data_names) != sorted(model_names):
        raise ValueError(f"the model's labels {model_names[:5]} are not the data's {data_names[:5]}")
    if len(split) > max_images:
        sampler = random.Random(0)  # noqa: S311 - a seeded sample of images, not a secret
        keep = sorted(sampler.sample(range(len(split)), max_images))
        split = split.select(keep)
        notes.append(f"scored a seeded sample of {max_images} of the {len(ds['validation'])} validation images")
    else:
        keep = list(range(len(split)))
    probs, labels = score_split(model, split, progress=progress)
    to_model = torch.tensor([model_names.index(name) for name in data_names])
    labels = to_model[labels]
    p_true = probs[torch.arange(len(labels)), labels]
    p_pred, pred = probs.max(1)
    loss = -p_true.clamp_min(1e-12).log()
    wrong = (pred != labels).nonzero().flatten().tolist()
    right = (pred == labels).nonzero().flatten().tolist()
    wrong.sort(key=lambda i: -float(loss[i]))
    right.sort(key=lambda i: float(p_true[i]))

    shown = wrong[:n] + right[:n]
    # where the model looked, for the predicted class (zoo.explain: Grad-CAM through the backbone contract)
    try:
        maps = dict(zip(shown, explain(model, [split[i]["image"] for i in shown]))) if shown else {}
        cam_error = None
    except Exception as exc:  # noqa: BLE001 - the gallery is still worth showing without its maps
        maps, cam_error = {}, f"{type(exc).__name__}: {exc}"

    def item(i: int) -> dict[str, Any]:
        return {
            "index": keep[i],
            "image": thumbnail(split[i]["image"]),
            "true": model_names[int(labels[i])],
            "predicted": model_names[int(pred[i])],
            "probability": float(p_pred[i]),
            "p_true": float(p_true[i]),
            "loss": float(loss[i]),
            "cam": data_uri(maps[i]["overlay"]) if i in maps else None,
        }

    method = next(iter(maps.values()))["method"] if maps else None
    return {
        "wrong": [item(i) for i in wrong[:n]],
        "unsure": [item(i) for i in right[:n]],
        "scored": len(labels),
        "errors": len(wrong),
        "top1": len(right) / max(len(labels), 1),
        "note": "; ".join(notes),
        "cam_method": method,
        "cam_error": cam_error,
    }
