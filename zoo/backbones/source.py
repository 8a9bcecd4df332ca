"""What a source of backbones implements: listing, building, and reading back the layout it saves.

Built-in sources (timm, hf, tv, pypi) and third-party plugins implement the same class; the registry
(``zoo.registry``) maps ``source:id`` prefixes to instances of it. A source that defines no saved layout of
its own inherits the generic one: weights in ``model.safetensors`` and a ``config.json`` naming the source,
the id and the head, read back by building the model with the source's own ``create``.
"""

from __future__ import annotations

import fnmatch
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from zoo.backbones.base import CONFIG_NAME, GENERIC_LAYOUT, WEIGHTS_NAME, Backbone
from zoo.backbones.weights import load_weights
from zoo.errors import CheckpointError, UnknownModelError, did_you_mean


@dataclass
class ModelInfo:
    """One row of ``zoo models``: what a source knows about a model without building it."""

    name: str  # full 'source:id'
    source: str
    id: str
    pretrained_tag: str | None = None
    param_count: float | None = None  # millions
    resolution: int | None = None
    pretrain_data: str | None = None
    license: str | None = None
    family: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Source(ABC):
    """A family of backbones reachable under one prefix."""

    name: str = ""
    description: str = ""

    @abstractmethod
    def list_models(self, pattern: str | None = None, pretrained: bool = False) -> list[ModelInfo]:
        """Models this source offers, filtered by an fnmatch pattern over their ids."""

    @abstractmethod
    def create(self, model_id: str, num_classes: int | None = None, pretrained: bool = True, **kwargs: Any) -> Backbone:
        """Build the backbone; raise UnknownModelError / WeightsUnavailableError on failure."""

    def known_ids(self) -> Iterable[str]:
        """Ids used for 'did you mean' suggestions."""
        return [m.id for m in self.list_models()]

    def check_id(self, model_id: str) -> None:  # noqa: B027 (an optional hook: the default accepts every id)
        """Cheap validation of an id without building anything or touching the network (``zoo train
        --check`` and the start of a run call it). Sources that cannot tell without building pass."""

    def read_layout(self, folder: Path, layout: str, config: Mapping[str, Any], meta: Mapping[str, Any]) -> Backbone:
        """Rebuild a saved backbone from ``folder``. The generic layout is read here; sources with a layout
        of their own (timm's, transformers') override this and fall back to it for ``GENERIC_LAYOUT``."""
        if layout != GENERIC_LAYOUT:
            raise CheckpointError(f"{folder}: the {self.name!r} source cannot read the {layout!r} layout")
        path = folder / CONFIG_NAME
        name = str(meta.get("model") or f"{config.get('zoo_source')}:{config.get('model_id')}")
        model_id = name.split(":", 1)[1] if ":" in name else name
        num_classes = config.get("num_classes")
        if not isinstance(num_classes, int) or isinstance(num_classes, bool):
            raise CheckpointError(f"{path}: field 'num_classes' = {num_classes!r} must be an integer")
        backbone = self.create(model_id, num_classes=num_classes, pretrained=False)
        load_weights(
            backbone.model,
            folder / WEIGHTS_NAME,
            config_hint=f"{path} (source {self.name!r}, model {model_id!r}, num_classes {num_classes})",
        )
        backbone.name = name
        backbone.source = backbone.source or self.name
        return backbone


def filter_ids(ids: Iterable[str], pattern: str | None) -> list[str]:
    """fnmatch filter shared by the sources (case-insensitive, like timm's list_models)."""
    ids = list(ids)
    if not pattern:
        return ids
    pat = pattern.lower()
    return [i for i in ids if fnmatch.fnmatchcase(i.lower(), pat)]


def unknown_model(source: str, model_id: str, candidates: Iterable[str]) -> UnknownModelError:
    return UnknownModelError(
        f"unknown model {source}:{model_id!r}.{did_you_mean(model_id, candidates)} "
        f"List models with `zoo models --source {source}`."
    )
