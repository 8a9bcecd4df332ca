"""``zoo.load``: a ready classifier from an artifact folder, a plain timm or transformers folder, or a Hub id.

Which source rebuilds the model is read from zoo.json (``source``, ``layout``), or inferred from config.json
for folders that timm or transformers wrote; the source's ``read_layout`` does the rest, so third-party
sources load back through their own code. Only safetensors are read: a pickle is refused with the command
that converts it. The sha256 that zoo.save recorded for every file loading reads is checked
(zoo.artifact.manifest), and weights with NaN or Inf are refused.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zoo.artifact.files import (
    CONFIG_NAME,
    FORMAT_VERSION,
    HUB_ID,
    META_NAME,
    WEIGHTS_NAME,
    is_pickle_name,
    nonfinite_tensors,
    pickle_refused,
    read_json,
)
from zoo.artifact.hub import download
from zoo.artifact.manifest import verify
from zoo.backbones.base import GENERIC_LAYOUT, Backbone
from zoo.errors import CheckpointError, UnknownSourceError
from zoo.fsutil import newest_complete
from zoo.registry import get_source

# config.json layouts that libraries other than zoo write, and the built-in source that reads each
_FOREIGN_LAYOUTS = {"timm": "timm", "transformers": "hf", "torchvision": "tv"}


def load(path_or_repo_id: str | os.PathLike[str], revision: str | None = None) -> Backbone:
    """A ready classifier (eval mode, label names, data config) from an artifact folder or a Hub repo id.

    A Hub id (``user/repo``, optionally ``hf-hub:user/repo``) is fetched with huggingface_hub into its
    cache (works offline from the cache with ``HF_HUB_OFFLINE=1``). Plain timm and transformers
    folders (no zoo.json) load too.
    """
    folder = resolve(path_or_repo_id, revision)
    model = load_dir(folder)
    if HUB_ID.match(str(path_or_repo_id).split(":", 1)[-1]) and not Path(path_or_repo_id).exists():
        model.zoo_metadata["loaded_from"] = str(path_or_repo_id) + (f"@{revision}" if revision else "")
    return model


def resolve(path_or_repo_id: str | os.PathLike[str], revision: str | None = None) -> Path:
    """A local folder holding the artifact: the path itself, or the Hub snapshot in the cache."""
    text = str(path_or_repo_id)
    local = Path(text).expanduser()
    if not local.exists() and (found := newest_complete(local.absolute())) is not None:
        warnings.warn(
            f"{local}: a save was interrupted between its two renames; loading the newest complete "
            f"version from {found.name} (read only; the next zoo.save to {local} puts it in place)",
            UserWarning,
            stacklevel=3,
        )
        return found
    if local.is_dir():
        return local
    if local.is_file():
        if is_pickle_name(local.name):
            raise pickle_refused(local.parent, [local.name])
        if local.name in (WEIGHTS_NAME, CONFIG_NAME, META_NAME):
            return local.parent
        raise CheckpointError(
            f"{local} is a file; pass the artifact folder that holds {WEIGHTS_NAME} and {CONFIG_NAME}"
        )
    repo_id = text.split(":", 1)[1] if text.startswith(("hf-hub:", "hf_hub:")) else text
    if not HUB_ID.match(repo_id):
        raise CheckpointError(
            f"{text!r} is neither an existing folder nor a Hub repo id like 'user/repo'. "
            f"Pass the directory zoo.save wrote (it holds {WEIGHTS_NAME} and {CONFIG_NAME})."
        )
    return download(repo_id, revision=revision)


def load_dir(folder: str | os.PathLike[str]) -> Backbone:
    """Load an artifact folder (zoo's, or a plain timm / transformers one) with safetensors only."""
    folder = Path(folder)
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        pickles = sorted(p.name for p in folder.iterdir() if p.is_file() and is_pickle_name(p.name))
        if pickles:
            raise pickle_refused(folder, pickles)
        if (folder / "model.safetensors.index.json").is_file():
            raise CheckpointError(
                f"{folder} holds a sharded checkpoint (model.safetensors.index.json); zoo "
                f"artifacts are one {WEIGHTS_NAME}. Load it with hf:{folder} instead."
            )
        raise CheckpointError(f"missing file {weights}: a zoo artifact needs {WEIGHTS_NAME} next to {CONFIG_NAME}")
    config_path = folder / CONFIG_NAME
    if not config_path.is_file():
        raise CheckpointError(
            f"missing file {config_path}: it records the architecture and head size "
            f"needed to rebuild the model from {WEIGHTS_NAME}"
        )
    config = read_json(config_path)
    meta = read_json(folder / META_NAME) if (folder / META_NAME).is_file() else {}
    check_format(meta, folder / META_NAME)
    verify(folder, meta)  # before any of the files' content is used
    source_name, layout = _source_and_layout(config, meta, folder)
    try:
        source = get_source(source_name)
    except UnknownSourceError as exc:
        raise CheckpointError(
            f"{folder / META_NAME}: the model comes from source {source_name!r}, which is not "
            f"installed here ({exc}). Install the package that provides it."
        ) from exc
    model = source.read_layout(folder, layout, config, meta)
    _apply_metadata(model, folder, config, meta)
    check_finite(model, weights)
    model.eval()
    return model


def check_format(meta: Mapping[str, Any], path: Path) -> None:
    """A zoo.json from a newer zoo may mean something this one would misread: refuse it, naming the fix."""
    if not meta:
        return
    version = meta.get("format_version", 1)
    if not isinstance(version, int) or isinstance(version, bool):
        raise CheckpointError(f"{path}: field 'format_version' = {version!r} must be an integer")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: format_version {version} was written by a newer zoo; this zoo reads up to {FORMAT_VERSION}. "
            f"Upgrade zoo (pip install -U zoo-transfer) to load it."
        )


def check_finite(model: Backbone, path: Path) -> None:
    bad = nonfinite_tensors(model.model)
    if bad:
        raise CheckpointError(
            f"{path} holds NaN or Inf in {len(bad)} tensors (first: {', '.join(bad[:3])}); "
            f"its predictions would be NaN. Re-save the model from a good checkpoint."
        )


def _source_and_layout(config: Mapping[str, Any], meta: Mapping[str, Any], folder: Path) -> tuple[str, str]:
    if meta.get("source") and meta.get("layout"):
        return str(meta["source"]), str(meta["layout"])
    layout = infer_layout(config, folder / CONFIG_NAME)
    if layout == GENERIC_LAYOUT:
        return str(config.get("zoo_source")), layout
    return _FOREIGN_LAYOUTS[layout], layout


def infer_layout(config: Mapping[str, Any], path: Path) -> str:
    if "zoo_source" in config:
        return GENERIC_LAYOUT
    if "torchvision_arch" in config:
        return "torchvision"
    if "architecture" in config and "pretrained_cfg" in config:
        return "timm"
    if "model_type" in config:
        return "transformers"
    raise CheckpointError(
        f"{path}: cannot tell which library wrote it: no 'architecture'+'pretrained_cfg' (timm), "
        f"'model_type' (transformers), 'torchvision_arch' or 'zoo_source' (zoo) field"
    )


def _field(config: Mapping[str, Any], key: str, path: Path, kind: type | tuple[type, ...]) -> Any:
    if key not in config:
        raise CheckpointError(f"{path}: required field {key!r} is missing")
    value = config[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise CheckpointError(f"{path}: field {key!r} = {value!r} has the wrong type")
    return value


def _apply_metadata(model: Backbone, folder: Path, config: dict[str, Any], meta: dict[str, Any]) -> None:
    """Label names and data config come from the artifact, never from the architecture's defaults."""
    meta_path, config_path = folder / META_NAME, folder / CONFIG_NAME
    head = model.get_classifier()
    head_size = getattr(head, "out_features", model.num_classes)
    if meta:
        declared = _field(meta, "num_classes", meta_path, int)
        if declared != head_size:
            raise CheckpointError(
                f"{meta_path}: field 'num_classes' = {declared} but the head in "
                f"{folder / WEIGHTS_NAME} has {head_size} outputs"
            )
    names, where = meta.get("label_names"), meta_path
    if names is None:
        names, where = _config_label_names(config), config_path
    if names is not None:
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise CheckpointError(f"{where}: field 'label_names' must be a list of strings")
        if len(names) != head_size:
            raise CheckpointError(
                f"{where}: field 'label_names' has {len(names)} names but the head "
                f"(num_classes) has {head_size} outputs; fix the list or re-save the model"
            )
    model.label_names = list(names) if names is not None else None
    model.num_classes = head_size
    raw_config = meta.get("data_config") or (config.get("data_config") if "zoo_source" in config else None)
    if raw_config:
        model.data_config = _data_config(raw_config, meta_path if meta.get("data_config") else config_path)
    model.zoo_metadata = dict(meta)
    model.zoo_metadata["path"] = str(folder)


def _config_label_names(config: Mapping[str, Any]) -> list[str] | None:
    if isinstance(config.get("label_names"), list):
        return [str(n) for n in config["label_names"]]
    id2label = config.get("id2label")
    if isinstance(id2label, dict) and id2label:
        names = [id2label.get(str(i), id2label.get(i)) for i in range(len(id2label))]
        if all(isinstance(n, str) for n in names) and not all(n == f"LABEL_{i}" for i, n in enumerate(names)):
            return [str(n) for n in names]
    return None


def _data_config(raw: Mapping[str, Any], path: Path) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise CheckpointError(f"{path}: field 'data_config' must be an object")
    missing = [k for k in ("input_size", "mean", "std") if k not in raw]
    if missing:
        raise CheckpointError(f"{path}: field 'data_config' lacks {missing}")
    out = dict(raw)
    for key in ("input_size", "mean", "std"):
        out[key] = tuple(out[key])
    if len(out["input_size"]) != 3:
        raise CheckpointError(f"{path}: field 'data_config.input_size' = {list(out['input_size'])} must be [C, H, W]")
    return out
