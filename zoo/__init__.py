"""zoo: transfer learning for image classification over timm, Hugging Face and torchvision backbones.

The layers, bottom to top (the import-linter contract in pyproject.toml; each imports only from those below):
errors, fsutil, env, markdown -> backbones -> registry -> data -> metrics -> artifact -> inference -> report ->
train -> bench -> ranking -> serve, export -> cli. A run goes the other way round: the registry builds a
backbone, data feeds it, train fine-tunes it and saves an artifact, which inference, serve and export load.
Only the public API lives here; each name is imported on first use so that `import zoo` is instant.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it (imported lazily so `import zoo` and `zoo --help` are fast)
_EXPORTS = {
    "create_model": "zoo.registry",
    "list_models": "zoo.registry",
    "register_source": "zoo.registry",
    "parse_name": "zoo.registry",
    "Source": "zoo.backbones.source",
    "ModelInfo": "zoo.backbones.source",
    "Backbone": "zoo.backbones.base",
    "LayerGroup": "zoo.backbones.base",
    "Recipe": "zoo.train.recipe",
    "load_recipe": "zoo.train.recipe",
    "expand_variants": "zoo.train.recipe",
    "benchmark_backbones": "zoo.bench.runs",
    "rank": "zoo.ranking.rank",
    "save": "zoo.artifact.save",
    "load": "zoo.artifact.load",
    "predict": "zoo.inference",
    "evaluate": "zoo.inference",
    "push_to_hub": "zoo.artifact.hub",
    "load_dataset": "zoo.data",
    "ImageDataset": "zoo.data",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
