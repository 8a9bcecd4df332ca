"""One name scheme over every backbone source: ``source:id``.

``timm:resnet50.a1_in1k``, ``hf:google/vit-base-patch16-224``, ``tv:resnet18``; a bare name means timm.
Sources register with ``@register_source("name")`` or an entry point in the group ``zoo.sources``
(so third-party packages add backbones without touching zoo).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any, TypeVar

from zoo.backbones.base import Backbone
from zoo.backbones.source import ModelInfo, Source, filter_ids, unknown_model
from zoo.errors import UnknownModelError, UnknownSourceError, did_you_mean

__all__ = [
    "ModelInfo",
    "Source",
    "filter_ids",
    "unknown_model",
    "register_source",
    "add_source",
    "sources",
    "get_source",
    "parse_name",
    "list_models",
    "create_model",
    "check_model_name",
]

DEFAULT_SOURCE = "timm"
ENTRY_POINT_GROUP = "zoo.sources"
# timm's own URL-like prefixes: 'hf-hub:user/repo' and 'local-dir:DIR' are timm names, not zoo sources.
TIMM_NATIVE_PREFIXES = ("hf-hub", "hf_hub", "local-dir")
# The built-in sources, imported when first needed: the hf adapter imports transformers (seconds), which
# `zoo models --source timm` never needs. Plugins come the same way, through entry points.
BUILTIN_SOURCES = {
    "timm": "zoo.backbones.timm:TimmSource",
    "hf": "zoo.backbones.hf:HFSource",
    "tv": "zoo.backbones.torchvision:TorchvisionSource",
    "pypi": "zoo.backbones.pypi:PyPIWeightsSource",
}


S = TypeVar("S", bound=type)
_SOURCES: dict[str, Source] = {}
_entry_points_loaded = False


def register_source(name: str, *, replace: bool = False) -> Callable[[S], S]:
    """Class decorator: ``@zoo.register_source("mysrc")`` makes ``mysrc:ID`` names work."""

    def decorator(cls: S) -> S:
        add_source(name, cls(), replace=replace)
        return cls

    return decorator


def add_source(name: str, source: Source, *, replace: bool = False) -> None:
    if ":" in name or not name:
        raise ValueError(f"source name {name!r} must be non-empty and contain no ':'")
    if name in _SOURCES and not replace:
        raise ValueError(f"source {name!r} is already registered; pass replace=True to override it")
    source.name = name
    _SOURCES[name] = source


def remove_source(name: str) -> None:
    _SOURCES.pop(name, None)


def _load_entry_points() -> None:
    """Register third-party sources declared under the ``zoo.sources`` entry-point group."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _SOURCES:
            continue
        obj = ep.load()
        add_source(ep.name, obj() if isinstance(obj, type) else obj)


def _load_builtin(name: str) -> Source:
    if name not in _SOURCES:
        module, _, cls = BUILTIN_SOURCES[name].partition(":")
        add_source(name, getattr(import_module(module), cls)())
    return _SOURCES[name]


def sources() -> dict[str, Source]:
    """Every registered source, built-ins and entry points included."""
    for name in BUILTIN_SOURCES:
        _load_builtin(name)
    _load_entry_points()
    return dict(_SOURCES)


def parse_name(name: str) -> tuple[str, str]:
    """'tv:resnet18' -> ('tv', 'resnet18'); 'resnet50' -> ('timm', 'resnet50')."""
    if not isinstance(name, str) or not name.strip():
        raise UnknownModelError(f"model name must be a non-empty string like 'timm:resnet18', got {name!r}")
    name = name.strip()
    prefix, sep, rest = name.partition(":")
    if not sep or prefix in TIMM_NATIVE_PREFIXES:
        return DEFAULT_SOURCE, name
    return prefix, rest


def get_source(prefix: str) -> Source:
    if prefix in BUILTIN_SOURCES:
        return _load_builtin(prefix)
    if prefix in _SOURCES:
        return _SOURCES[prefix]
    known = sources()
    if prefix not in known:
        raise UnknownSourceError(
            f"unknown model source {prefix!r}. Known sources: {', '.join(sorted(known))} "
            f"(write names as 'source:id', e.g. 'timm:resnet18').{did_you_mean(prefix, known)}"
        )
    return known[prefix]


def list_models(pattern: str | None = None, source: str | None = None, pretrained: bool = False) -> list[ModelInfo]:
    """Models matching an fnmatch ``pattern`` (over ids, or full 'source:id' names)."""
    chosen = [get_source(source)] if source else list(sources().values())
    if pattern and ":" in pattern and not source:
        prefix, _ = parse_name(pattern)
        chosen = [get_source(prefix)]
        pattern = pattern.split(":", 1)[1]
    rows: list[ModelInfo] = []
    for src in chosen:
        rows += src.list_models(pattern, pretrained=pretrained)
    return rows


def create_model(name: str, num_classes: int | None = None, pretrained: bool = True, **kwargs: Any) -> Backbone:
    """Build a backbone by ``source:id`` name, following the :class:`Backbone` contract.

    ``num_classes=None`` keeps the source's own head (ImageNet's 1000 classes for most pretrained
    models); an int replaces it with a fresh head of that size; 0 gives pooled features as output.
    """
    prefix, model_id = parse_name(name)
    backbone = get_source(prefix).create(model_id, num_classes=num_classes, pretrained=pretrained, **kwargs)
    if not backbone.source:  # a plugin's Backbone need not know the prefix it was registered under
        backbone.source = prefix
    return backbone


def check_model_name(name: str) -> None:
    """Validate a 'source:id' name cheaply (no weights, no network): unknown sources and ids raise."""
    prefix, model_id = parse_name(name)
    get_source(prefix).check_id(model_id)
