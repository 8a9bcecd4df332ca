"""Feature extraction for the linear probe: run the frozen backbone once, train the head on the cache.

The tutorials run the frozen backbone on every image in every epoch; its output never changes, so that is
the same computation repeated once per epoch. Extracting once (one augmentation-free pass) makes each probe
epoch cost a matrix multiply.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

from zoo.backbones.base import Backbone


@torch.no_grad()
def extract_features(
    model: Backbone,
    loader: Iterable[Any],
    accelerator: Accelerator | None = None,
    batch_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    desc: str = "features",
    leave: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled features and labels of every example, gathered from all processes, on the CPU.
    Without an accelerator (``zoo rank``): one process, the model's own device, full precision."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    feats, labels = [], []
    show = accelerator is None or accelerator.is_local_main_process
    for x, y in tqdm(loader, desc=desc, disable=not show, leave=leave, unit="batch"):
        if accelerator is None:
            f = model.forward_features(batch_transform(x.to(device)) if batch_transform is not None else x.to(device))
            feats.append(f.float().cpu())
            labels.append(y.cpu())
            continue
        if batch_transform is not None:
            x = batch_transform(x)
        with accelerator.autocast():
            f = model.forward_features(x)
        f, y = accelerator.gather_for_metrics((f.float().contiguous(), y))
        feats.append(f.cpu())
        labels.append(y.cpu())
    model.train(was_training)
    return torch.cat(feats), torch.cat(labels)
