"""Checks that cost nothing, made before a run does any work (`zoo train --check` makes them too):
the model's source and id are known (no weights are downloaded), the data folder or file exists, and the
output folder can be written. A run that would fail on one of them fails in a second, before data is
loaded or a run folder is created."""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import cast

from zoo.data.specs import parse_spec
from zoo.errors import ConfigError, DataError
from zoo.registry import check_model_name  # each source checks its own ids (Source.check_id), plugins too
from zoo.train.schema import Recipe


def check_data_spec(spec: str) -> None:
    """The spec parses and a local folder or file it names exists (a Hub dataset is not checked: that
    would need the network)."""
    parsed = parse_spec(spec)  # a missing imagefolder:/disk:/plain path is a DataError here
    if parsed.kind == "parquet":
        location = parsed.location
        found = glob.glob(location) if any(c in location for c in "*?[") else [location]
        if not any(Path(f).exists() for f in found):
            raise DataError(f"dataset spec {spec!r}: no parquet file or folder matches {location!r}")


def check_writable(directory: str | os.PathLike[str], key: str = "output.dir") -> None:
    """``directory`` exists and is writable, or could be created (its nearest existing parent is a writable
    folder). Nothing is created."""
    path = Path(directory).expanduser().absolute()
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"{key}={str(directory)!r}: {probe} is a file, not a folder; choose another {key}")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"{key}={str(directory)!r}: {probe} is not writable; choose another {key} (e.g. {key}=runs)")


def preflight(recipe: Recipe) -> None:
    """Every cheap check of one recipe (one variant): model name, data, output folder."""
    check_model_name(recipe.model.name)
    check_data_spec(recipe.data.spec)
    check_writable(Path(recipe.output.dir) / cast(str, recipe.name))  # load_recipe fills the name in
