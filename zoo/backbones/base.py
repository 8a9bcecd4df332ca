"""The backbone contract: one interface over timm, Hugging Face and torchvision models.

Every source wraps its own module (kept as ``self.model``, never re-implemented) in a :class:`Backbone`
subclass, so freezing, partial unfreezing, layer-wise learning rates, checkpoints and benchmarks are
written once against this class and work on every backbone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from zoo.errors import UnknownGroupError

# The keys of a data config, with timm's names (timm.data.resolve_data_config uses the same ones).
DATA_CONFIG_KEYS = ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The files of a saved layout that every source writes: the weights and a config naming what to rebuild.
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
GENERIC_LAYOUT = "zoo"  # the layout of a source that defines none of its own


def make_data_config(
    size: int | Sequence[int] = 224,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    interpolation: str = "bicubic",
    crop_pct: float = 0.875,
    crop_mode: str = "center",
) -> dict[str, Any]:
    """A timm-style data config: what the model expects its input to look like."""
    if isinstance(size, int):
        size = (size, size)
    h, w = (int(s) for s in size[-2:])
    return {
        "input_size": (3, h, w),
        "interpolation": str(interpolation),
        "mean": tuple(float(m) for m in mean),
        "std": tuple(float(s) for s in std),
        "crop_pct": float(crop_pct),
        "crop_mode": str(crop_mode),
    }


@dataclass(frozen=True)
class LayerGroup:
    """An ordered slice of a backbone: the stem, one stage, or the head.

    ``names`` are parameter names relative to the source module (``Backbone.model``), so they match
    the keys of a state dict that timm, transformers or torchvision would load.
    """

    name: str
    names: tuple[str, ...]
    params: tuple[nn.Parameter, ...] = field(repr=False, compare=False)

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.params)

    def requires_grad_(self, flag: bool) -> None:
        for p in self.params:
            p.requires_grad_(flag)

    @property
    def trainable(self) -> bool:
        return any(p.requires_grad for p in self.params)


class Backbone(nn.Module):
    """A classifier over a source's own module with a source-independent interface.

    Subclasses set ``self.model`` and implement ``forward_features``, ``forward_head``,
    ``get_classifier``, ``_set_classifier`` and ``_layer_group_names``.
    """

    source: str = ""
    # set after construction: by zoo.load (the saved zoo.json) and by a run's calibration (zoo.train.calibration)
    zoo_metadata: dict[str, Any]
    calibration: dict[str, Any] | None

    def __init__(
        self,
        name: str,
        model: nn.Module,
        data_config: dict[str, Any],
        num_features: int,
        num_classes: int,
        pretrained_tag: str | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.name = name
        self.data_config = dict(data_config)
        self.num_features = int(num_features)
        self.num_classes = int(num_classes)
        self.pretrained_tag = pretrained_tag
        self.label_names: list[str] | None = None

    # ---- forward ---------------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features ``[B, num_features]``: what the head sees."""
        raise NotImplementedError

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Logits from pooled features (a linear probe trains exactly this)."""
        logits: torch.Tensor = self.get_classifier()(features)
        return logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    # ---- head ------------------------------------------------------------------------------
    def get_classifier(self) -> nn.Module:
        raise NotImplementedError

    def _set_classifier(self, num_classes: int) -> None:
        raise NotImplementedError

    def reset_classifier(self, num_classes: int, label_names: Sequence[str] | None = None) -> None:
        """Replace the head with a fresh one for ``num_classes`` (0 gives an identity head)."""
        if label_names is not None and len(label_names) != num_classes:
            raise ValueError(f"{len(label_names)} label names given for num_classes={num_classes}")
        self._set_classifier(int(num_classes))
        self.num_classes = int(num_classes)
        self.label_names = list(label_names) if label_names is not None else None

    def head_param_names(self) -> set[str]:
        """Names (relative to ``self.model``) of the parameters that belong to the classifier."""
        head_ids = {id(p) for p in self.get_classifier().parameters()}
        return {n for n, p in self.model.named_parameters() if id(p) in head_ids}

    # ---- layer groups ----------------------------------------------------------------------
    def _layer_group_names(self) -> list[tuple[str, list[str]]]:
        """Ordered ``(group name, parameter names)`` pairs, stem first and head last."""
        raise NotImplementedError

    def layer_groups(self) -> list[LayerGroup]:
        """Ordered groups stem -> stages -> head that together hold every parameter exactly once."""
        params = dict(self.model.named_parameters())
        return [
            LayerGroup(name, tuple(names), tuple(params[n] for n in names))
            for name, names in self._layer_group_names()
            if names
        ]

    # ---- freezing ----------------------------------------------------------------------------
    def freeze(self, keep_trainable: Iterable[str] = ("head",)) -> None:
        """Freeze every group except those named; frozen BatchNorm layers stay in eval mode."""
        keep = set(keep_trainable)
        groups = self.layer_groups()
        unknown = keep - {g.name for g in groups}
        if unknown:
            raise UnknownGroupError(f"no layer group named {sorted(unknown)}; groups: {[g.name for g in groups]}")
        for g in groups:
            g.requires_grad_(g.name in keep)
        self.train(self.training)

    def unfreeze(self) -> None:
        for p in self.parameters():
            p.requires_grad_(True)
        self.train(self.training)

    def train(self, mode: bool = True) -> Backbone:
        """Like ``nn.Module.train`` but normalisation layers whose parameters are all frozen stay in
        eval mode, so their running statistics never drift while the rest trains."""
        super().train(mode)
        if mode:
            for module in self.modules():
                if isinstance(module, nn.modules.batchnorm._NormBase):
                    own = list(module.parameters(recurse=False))
                    if own and not any(p.requires_grad for p in own):
                        module.eval()
        return self

    # ---- the saved layout ------------------------------------------------------------------------
    layout: str = GENERIC_LAYOUT  # what write_layout writes; the source's read_layout reads it back

    @property
    def architecture(self) -> str:
        """The source's own architecture name (timm's, torchvision's, transformers' model_type)."""
        return type(self.model).__name__.lower()

    def base_model(self) -> str | None:
        """The Hub id whose weights this backbone started from (model card ``base_model``), if any."""
        return None

    def write_layout(self, folder: Path) -> None:
        """Write ``model.safetensors`` and ``config.json`` into ``folder``. The generic layout names the
        source, id and head; adapters override this with their library's own layout, so a timm folder
        loads in plain timm and a transformers folder in transformers."""
        save_file(state_dict_for_saving(self.model), str(folder / WEIGHTS_NAME), metadata={"format": "pt"})
        source, _, model_id = self.name.partition(":")
        config = {
            "library_name": "zoo",
            "zoo_source": self.source or source,
            "model_id": model_id or self.name,
            "num_classes": self.num_classes,
            "label_names": self.label_names,
            "data_config": {k: list(v) if isinstance(v, tuple) else v for k, v in self.data_config.items()},
        }
        (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")

    # ---- description ---------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """What ``zoo info`` prints: sizes, preprocessing and layer groups."""
        groups = self.layer_groups()
        return {
            "name": self.name,
            "source": self.source,
            "num_features": self.num_features,
            "num_classes": self.num_classes,
            "param_count": sum(g.num_params for g in groups),
            "pretrained_tag": self.pretrained_tag,
            "data_config": {k: list(v) if isinstance(v, tuple) else v for k, v in self.data_config.items()},
            "layer_groups": [{"name": g.name, "num_params": g.num_params} for g in groups],
        }


# ---- helpers shared by the adapters ------------------------------------------------------------
def state_dict_for_saving(module: nn.Module) -> dict[str, torch.Tensor]:
    """CPU, contiguous, unshared copies: safetensors refuses non-contiguous or shared storage."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in module.state_dict().items()}


def common_prefix_name(names: Sequence[str]) -> str:
    """'layer1' for ['layer1.0.conv1.weight', 'layer1.1.bn2.bias']: a readable group name."""
    split = [n.split(".")[:-1] for n in names]
    prefix: list[str] = []
    for parts in zip(*split):
        if all(p == parts[0] for p in parts):
            prefix.append(parts[0])
        else:
            break
    name_parts = prefix or names[0].split(".")[:-1] or [names[0]]
    for i, part in enumerate(name_parts):  # cut after the first index: 'stages.0.blocks.0' -> 'stages.0'
        if part.isdigit():
            return ".".join(name_parts[: i + 1])
    return ".".join(name_parts if prefix else name_parts[:1])


def group_by_stage_regex(
    named_params: Iterator[tuple[str, nn.Parameter]] | Iterable[tuple[str, nn.Parameter]],
    stage_regex: str,
    head_names: set[str],
) -> list[tuple[str, list[str]]]:
    """Group parameters into stem -> stages -> head by a regex that matches a stage's prefix.

    Parameters are visited in registration order (which is forward order in timm, transformers and
    torchvision models). A parameter before the first stage belongs to the stem; one between or after
    stages that matches no stage (a final norm, a downsample layer) joins the stage before it, as
    timm's ``MATCH_PREV_GROUP`` does. When the first stage starts at the very first parameter
    (torchvision's ``features.0`` is a conv stem), that stage is named ``stem``.
    """
    pattern = re.compile(stage_regex)
    groups: list[tuple[str, list[str]]] = []
    head: list[str] = []
    for name, _ in named_params:
        if name in head_names:
            head.append(name)
            continue
        m = pattern.match(name)
        if m:
            stage = m.group(0).rstrip(".")
            if not groups or groups[-1][0] != stage:
                groups.append((stage, []))
        elif not groups:
            groups.append(("stem", []))
        groups[-1][1].append(name)
    if groups and groups[0][0] != "stem":
        groups[0] = ("stem", groups[0][1])
    return groups + [("head", head)]
