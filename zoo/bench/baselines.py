"""The loops zoo is measured against, written the way their sources write them.

- ``tutorial_linear_probe``: the seed tutorials' transfer loop. torchvision transforms on PIL images in a
  DataLoader, the backbone frozen by ``requires_grad=False`` but still run on every image in every epoch,
  only the final linear layer trained, ``model.train()`` during training as the tutorials do. Two switches
  remove one cause of its accuracy gap each, so each is measured alone: ``bn_eval`` (frozen BatchNorm kept
  in eval mode, as zoo does) and ``preprocessing="zoo"`` (zoo's own eval transform instead of Resize).
- ``hf_finetune``: the conventional Hugging Face path, as in transformers'
  ``examples/pytorch/image-classification/run_image_classification_no_trainer.py``: a ``datasets`` split
  with ``with_transform`` per-sample torchvision transforms, a DataLoader with a collate function, and a
  plain Accelerate loop.

Both use the same zoo backbone module as the zoo run they are compared with, so the model's own compute is
identical and only the pipeline and the loop differ. Each returns per-epoch (elapsed seconds, accuracy) so
"time to the same accuracy" can be read off.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from zoo.data.transforms import build_transform
from zoo.registry import create_model


@dataclass
class BaselineResult:
    name: str
    seconds: float  # wall clock, model creation to last evaluation
    train_seconds: float  # time spent in training steps
    images_per_sec: float  # training images per second of train_seconds
    final_top1: float
    curve: list[tuple[float, float]] = field(default_factory=list)  # (elapsed seconds, accuracy) per epoch


def _tv_transform(data_config: dict[str, Any], train: bool) -> Any:
    """The tutorials' torchvision pipeline: Resize + (flip) + ToTensor + Normalize."""
    from torchvision import transforms as T

    size = data_config["input_size"][-1]
    steps: list[Any] = [T.Resize((size, size))]
    if train:
        steps.append(T.RandomHorizontalFlip())
    steps += [T.ToTensor(), T.Normalize(data_config["mean"], data_config["std"])]
    return T.Compose(steps)


class _PILSplit(Dataset):
    """A tutorial-style Dataset: decode and transform one PIL image per __getitem__."""

    def __init__(self, split: Any, transform: Any) -> None:
        self.split, self.transform = split, transform

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        row = self.split[i]
        return self.transform(row["image"].convert("RGB")), int(row["label"])


@torch.no_grad()
def _accuracy(model: nn.Module, loader: DataLoader) -> float:
    model.eval()
    correct = total = 0
    for x, y in loader:
        correct += int((model(x).argmax(1) == y).sum())
        total += len(y)
    return correct / max(total, 1)


def _backbone(model_name: str, num_classes: int, image_size: int | None) -> Any:
    model = create_model(model_name, pretrained=True)
    model.reset_classifier(num_classes)
    if image_size:
        model.data_config["input_size"] = (3, image_size, image_size)
    return model


def probe_variant_name(bn_eval: bool, preprocessing: str) -> str:
    if not bn_eval and preprocessing == "tutorial":
        return "tutorial loop (linear probe)"
    fixes = (["BatchNorm eval"] if bn_eval else []) + (["zoo preprocessing"] if preprocessing == "zoo" else [])
    return "tutorial loop + " + " + ".join(fixes)


def tutorial_linear_probe(
    model_name: str,
    ds: Any,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    image_size: int | None = None,
    num_workers: int = 0,
    eval_split: str = "validation",
    seed: int = 0,
    bn_eval: bool = False,
    preprocessing: str = "tutorial",
) -> BaselineResult:
    if preprocessing not in ("tutorial", "zoo"):
        raise ValueError(f"preprocessing={preprocessing!r}: use 'tutorial' or 'zoo'")
    torch.manual_seed(seed)
    start = time.perf_counter()
    model = _backbone(model_name, ds.num_classes, image_size)
    for p in model.parameters():  # "freeze everything but fc"
        p.requires_grad = False
    for p in model.get_classifier().parameters():
        p.requires_grad = True
    cfg = model.data_config
    # zoo's probe extracts features with its eval transform (resize to input/crop_pct, center crop)
    tf = _tv_transform(cfg, train=False) if preprocessing == "tutorial" else build_transform(cfg, train=False)
    train = DataLoader(_PILSplit(ds["train"], tf), batch_size=batch_size, shuffle=True, num_workers=num_workers)
    held_out = DataLoader(_PILSplit(ds[eval_split], tf), batch_size=batch_size, num_workers=num_workers)
    optimizer = torch.optim.AdamW(model.get_classifier().parameters(), lr=lr, weight_decay=0.0)
    criterion = nn.CrossEntropyLoss()
    curve, train_seconds, seen = [], 0.0, 0
    for _ in range(epochs):
        # nn.Module.train, as the tutorials call it: BatchNorm of the frozen backbone updates its statistics
        nn.Module.train(model, True)
        if bn_eval:  # the fix: frozen BatchNorm keeps its pretrained running statistics
            for m in model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        t0 = time.perf_counter()
        for x, y in train:
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            seen += len(y)
        train_seconds += time.perf_counter() - t0
        curve.append((time.perf_counter() - start, _accuracy(model, held_out)))
    return BaselineResult(
        probe_variant_name(bn_eval, preprocessing),
        time.perf_counter() - start,
        train_seconds,
        seen / max(train_seconds, 1e-9),
        curve[-1][1],
        curve,
    )


def hf_finetune(
    model_name: str,
    ds: Any,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    image_size: int | None = None,
    num_workers: int = 0,
    eval_split: str = "validation",
    seed: int = 0,
) -> BaselineResult:
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from torchvision import transforms as T

    set_seed(seed)
    start = time.perf_counter()
    model = _backbone(model_name, ds.num_classes, image_size)
    cfg = model.data_config
    size = cfg["input_size"][-1]
    normalize = T.Normalize(cfg["mean"], cfg["std"])
    # the example's transforms: RandomResizedCrop + flip for training, Resize + CenterCrop for evaluation
    train_tf = T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(), T.ToTensor(), normalize])
    eval_tf = T.Compose([T.Resize(size), T.CenterCrop(size), T.ToTensor(), normalize])

    def preprocess(transform: Any) -> Any:
        def apply(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
            batch["pixel_values"] = [transform(img.convert("RGB")) for img in batch["image"]]
            return batch

        return apply

    def collate(examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return {
            "pixel_values": torch.stack([e["pixel_values"] for e in examples]),
            "labels": torch.tensor([e["label"] for e in examples]),
        }

    train = DataLoader(
        ds["train"].with_transform(preprocess(train_tf)),
        shuffle=True,
        collate_fn=collate,
        batch_size=batch_size,
        num_workers=num_workers,
    )
    held_out = DataLoader(
        ds[eval_split].with_transform(preprocess(eval_tf)),
        collate_fn=collate,
        batch_size=batch_size,
        num_workers=num_workers,
    )
    accelerator = Accelerator()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    total = epochs * len(train)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: max(0.0, 1 - s / max(total, 1)))
    model, optimizer, train, held_out, scheduler = accelerator.prepare(model, optimizer, train, held_out, scheduler)
    curve, train_seconds, seen = [], 0.0, 0
    for _ in range(epochs):
        model.train()
        t0 = time.perf_counter()
        for batch in train:
            loss = nn.functional.cross_entropy(model(batch["pixel_values"]), batch["labels"])
            accelerator.backward(loss)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            seen += len(batch["labels"])
        train_seconds += time.perf_counter() - t0
        model.eval()
        correct = count = 0
        with torch.no_grad():
            for batch in held_out:
                pred = model(batch["pixel_values"]).argmax(1)
                pred, labels = accelerator.gather_for_metrics((pred, batch["labels"]))
                correct += int((pred == labels).sum())
                count += len(labels)
        curve.append((time.perf_counter() - start, correct / max(count, 1)))
    return BaselineResult(
        "HF with_transform + Accelerate (fine-tune)",
        time.perf_counter() - start,
        train_seconds,
        seen / max(train_seconds, 1e-9),
        curve[-1][1],
        curve,
    )


def time_to_accuracy(curve: list[tuple[float, float]], target: float) -> float | None:
    """Elapsed seconds at the first epoch whose accuracy reaches ``target`` (None if never)."""
    return next((t for t, a in curve if a >= target - 1e-9), None)
