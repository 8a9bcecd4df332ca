"""``zoo.save``: write a backbone as an artifact folder that loads in zoo, in plain timm and in transformers.

The layout of config.json and the weights is the backbone's own (``Backbone.write_layout``: timm's for timm
and pypi backbones and torchvision ResNets, ``save_pretrained`` for transformers, zoo's generic one for any
other source, plugins included); zoo.json and the model card are written here for every source.

The folder is built beside the target and swapped in (``zoo.fsutil.swap_dir``), so a kill at any moment
leaves the old artifact or the new one, never a mix. checksums.sha256 records the sha256 of every file
loading reads (``zoo.artifact.manifest``), which ``zoo.load`` verifies.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from zoo import __version__
from zoo.artifact.files import (
    CARD_NAME,
    CONFIG_NAME,
    FILE_MODE,
    FORMAT_VERSION,
    META_NAME,
    WEIGHTS_NAME,
    jsonable,
    nonfinite_tensors,
    write_json,
)
from zoo.artifact.manifest import MANIFEST_NAME, write_manifest
from zoo.artifact.modelcard import write_model_card
from zoo.backbones.base import Backbone
from zoo.errors import CheckpointError
from zoo.fsutil import recover_dir, remove_leftovers, staging_dir, swap_dir


def save(
    model: Backbone,
    directory: str | os.PathLike[str],
    *,
    recipe: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    dataset: Mapping[str, Any] | None = None,
    files: Mapping[str, str | os.PathLike[str]] | None = None,
) -> Path:
    """Write ``model`` as a zoo artifact in ``directory`` (replaced atomically if it is one already).

    ``recipe``/``metrics``/``dataset`` go into zoo.json and the model card; ``files`` maps names to extra
    files copied in (``{"curve.png": path}``; the card embeds curve.png when present).
    """
    model = _unwrap(model)
    target = Path(directory).expanduser().absolute()
    recover_dir(target)
    _check_target(target)
    extra = {str(k): Path(v) for k, v in (files or {}).items()}
    for name, src in extra.items():
        if not src.is_file():
            raise CheckpointError(f"extra file {name!r} -> {src} does not exist; nothing was written to {target}")
        if Path(name).name != name or name in (WEIGHTS_NAME, CONFIG_NAME, META_NAME, CARD_NAME, MANIFEST_NAME):
            raise CheckpointError(f"extra file name {name!r} must be a plain file name other than the artifact's own")
    _check_finite(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(target)
    tmp = staging_dir(target)
    try:
        model.write_layout(tmp)
        meta = metadata(model, recipe, metrics, dataset)
        write_json(tmp / META_NAME, meta)
        for name, src in extra.items():
            shutil.copyfile(src, tmp / name)
        write_model_card(tmp, meta)
        write_manifest(tmp)  # last: the sha256 of every file loading reads (zoo.artifact.manifest)
        for path in tmp.iterdir():
            if path.is_file():
                path.chmod(FILE_MODE)
        swap_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _unwrap(model: Any) -> Backbone:
    """Accept a DDP/accelerate-wrapped backbone too (``.module``); anything else is a clear error."""
    while not isinstance(model, Backbone) and isinstance(getattr(model, "module", None), nn.Module):
        model = model.module
    if not isinstance(model, Backbone):
        raise CheckpointError(
            f"zoo.save needs a zoo Backbone (from zoo.create_model or zoo.load), got {type(model).__name__}"
        )
    return model


def _check_target(target: Path) -> None:
    """Only an empty folder or an earlier zoo artifact may be replaced; never someone's other files."""
    if target.is_file():
        raise CheckpointError(f"{target} is a file; zoo.save needs a directory path")
    if target.is_dir() and any(target.iterdir()) and not (target / META_NAME).is_file():
        raise CheckpointError(
            f"{target} exists, is not empty and is not a zoo artifact (no {META_NAME}); refusing to replace it. "
            f"Choose a new directory or remove this one."
        )


def _check_finite(model: Backbone) -> None:
    """Weights with NaN or Inf would predict NaN probabilities for every image: refuse to ship them."""
    bad = nonfinite_tensors(model.model)
    if bad:
        raise CheckpointError(
            f"{model.name}: {len(bad)} weight tensors hold NaN or Inf (first: {', '.join(bad[:3])}); training "
            f"diverged. Lower optim.lr, set train.clip_grad, or use train.mixed_precision=no; nothing was saved."
        )


def metadata(
    model: Backbone,
    recipe: Mapping[str, Any] | None,
    metrics: Mapping[str, Any] | None,
    dataset: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """zoo.json's content (without the file hashes)."""
    earlier = getattr(model, "zoo_metadata", None) or {}  # a loaded artifact keeps its provenance
    return {
        "format": "zoo-artifact",
        "format_version": FORMAT_VERSION,
        "model": model.name,
        "source": model.source,
        "layout": model.layout,
        "architecture": model.architecture,
        "num_classes": model.num_classes,
        "num_features": model.num_features,
        "label_names": list(model.label_names) if model.label_names else None,
        "data_config": jsonable(model.data_config),
        "base_model": earlier.get("base_model", None if _recipe_says_scratch(recipe) else model.base_model()),
        "pretrained_tag": model.pretrained_tag,
        "recipe": jsonable(dict(recipe)) if recipe else earlier.get("recipe"),
        "metrics": jsonable(dict(metrics)) if metrics else earlier.get("metrics"),
        "dataset": jsonable(dict(dataset)) if dataset else earlier.get("dataset"),
        # the temperature a run fitted (zoo.train.calibration); zoo.predict divides logits by it
        "calibration": jsonable(getattr(model, "calibration", None) or earlier.get("calibration")),
        "zoo_version": __version__,
        "git_commit": git_commit(),
        "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


def _recipe_says_scratch(recipe: Mapping[str, Any] | None) -> bool:
    if not recipe:
        return False
    model_section = recipe.get("model")
    for section in (recipe, model_section if isinstance(model_section, Mapping) else {}):
        if section.get("pretrained") is False or section.get("strategy") == "scratch":
            return True
    strategy = recipe.get("strategy")
    return isinstance(strategy, Mapping) and strategy.get("name") == "scratch"


def git_commit(cwd: str | os.PathLike[str] | None = None) -> str | None:
    """HEAD of the git checkout the run was started from (provenance), or None outside one."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],  # noqa: S607 - git from PATH, as a user runs it
            cwd=cwd or os.getcwd(),
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", sha) else None
