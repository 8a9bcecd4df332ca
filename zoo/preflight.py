"""Checks that cost nothing, made before a run does any work (`zoo train --check` makes them too):
the model's source and id are known (no weights are downloaded), the data folder or file exists, and the
output folder can be written. A run that would fail on one of them fails in a second, before data is
loaded or a run folder is created."""
from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any

import timm
from timm.models import split_model_name_tag

from zoo.data.specs import parse_spec
from zoo.errors import ConfigError, DataError, UnknownModelError
from zoo.registry import TIMM_NATIVE_PREFIXES, get_source, parse_name, unknown_model


def check_model_name(name: str) -> None:
    """The source exists and knows the id: UnknownSourceError / UnknownModelError otherwise. Built-in
    sources are checked against their model lists; a plugin source only for existence (its ids may be
    open-ended, as hf's are)."""
    prefix, model_id = parse_name(name)
    source = get_source(prefix)
    if prefix == "timm":
        native, _, rest = model_id.partition(":")
        if native == "local-dir" and not Path(rest).expanduser().is_dir():
            raise UnknownModelError(f"model.name {name!r}: no such folder {rest!r}")
        if native not in TIMM_NATIVE_PREFIXES and not timm.is_model(split_model_name_tag(model_id)[0]):
            raise unknown_model("timm", model_id, source.known_ids())
    elif prefix == "hf":
        local = Path(model_id).expanduser()
        if (local.is_dir() or model_id.startswith((".", "/", "~"))) and not (local / "config.json").is_file():
            raise UnknownModelError(f"model.name {name!r}: {str(local)!r} is not a folder with a transformers "
                                    f"config.json")
    elif prefix == "tv":
        if model_id.partition(".")[0] not in set(source.known_ids()):
            raise unknown_model("tv", model_id, source.known_ids())
    elif prefix == "pypi" and model_id not in set(source.known_ids()):
        raise unknown_model("pypi", model_id, source.known_ids())


def check_data_spec(spec: str) -> None:
    """The spec parses and a local folder or file it names exists (a Hub dataset is not checked: that
    would need the network)."""
    parsed = parse_spec(spec)  # a missing imagefolder:/disk:/plain path is a DataError here
    if parsed.kind == "parquet":
        location = parsed.location
        found = glob.glob(location) if any(c in location for c in "*?[") else [location]
        if not any(Path(f).exists() for f in found):
            raise DataError(f"dataset spec {spec!r}: no parquet file or folder matches {location!r}")


def check_writable(directory: str | os.PathLike, key: str = "output.dir") -> None:
    """``directory`` exists and is writable, or could be created (its nearest existing parent is a writable
    folder). Nothing is created."""
    path = Path(directory).expanduser().absolute()
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"{key}={str(directory)!r}: {probe} is a file, not a folder; choose another {key}")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"{key}={str(directory)!r}: {probe} is not writable; choose another {key} "
                          f"(e.g. {key}=runs)")


def preflight(recipe: Any) -> None:
    """Every cheap check of one recipe (one variant): model name, data, output folder."""
    check_model_name(recipe.model.name)
    check_data_spec(recipe.data.spec)
    check_writable(Path(recipe.output.dir) / recipe.name)
