"""The files of a zoo artifact and the small readers and writers they share.

model.safetensors   the source module's own state dict (never a pickle)
config.json         the source's own layout (timm's, transformers', or zoo's generic one)
zoo.json            zoo's metadata: name, labels, data config, recipe, metrics, dataset, provenance;
                    kept apart so it never confuses timm or transformers
README.md           the model card (zoo.artifact.modelcard)
checksums.sha256    the sha256 of every other file but the card (zoo.artifact.manifest), checked on load
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from zoo.backbones.base import CONFIG_NAME, WEIGHTS_NAME
from zoo.errors import CheckpointError

__all__ = ["WEIGHTS_NAME", "CONFIG_NAME", "META_NAME", "CARD_NAME", "FORMAT_VERSION", "HUB_ID"]

META_NAME = "zoo.json"
CARD_NAME = "README.md"
FORMAT_VERSION = 2  # the newest zoo.json format this zoo reads and writes (2: checksums.sha256 manifest)
# Files a checkpoint may come as that can only be read by unpickling.
PICKLE_SUFFIXES = (".bin", ".pth", ".pt", ".ckpt", ".pkl", ".pickle", ".tar")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
FILE_MODE = 0o644  # every file of an artifact, whatever umask or tempfile gave it


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def is_pickle_name(name: str) -> bool:
    return name.endswith(PICKLE_SUFFIXES) or name.endswith(".pth.tar")


def pickle_refused(folder: Path, names: list[str]) -> CheckpointError:
    first = folder / names[0]
    return CheckpointError(
        f"{folder} holds only pickle checkpoint(s) ({', '.join(names)}) and no {WEIGHTS_NAME}. zoo loads "
        f"safetensors only, because unpickling a file can run arbitrary code. If you trust the file, convert "
        f"it (read with torch.load(weights_only=True)): `zoo convert {first}` writes {folder / WEIGHTS_NAME}."
    )


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            f"the file is truncated or corrupt, re-save or re-download it"
        ) from exc
    except UnicodeDecodeError as exc:
        raise CheckpointError(f"{path} is not a UTF-8 text file; it is corrupt") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} must hold a JSON object, found {type(data).__name__}")
    return data


def jsonable(value: Any) -> Any:
    """Tuples -> lists, Paths -> str, tensors/numpy scalars -> numbers, so json.dump never fails mid-write."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(jsonable(data), indent=2) + "\n", encoding="utf-8")


def nonfinite_tensors(model: torch.nn.Module) -> list[str]:
    """Names of the floating-point weights holding NaN or Inf (they would predict NaN for every image); save
    refuses to write them and load refuses to read them, each with its own fix."""
    return [
        name for name, t in model.state_dict().items() if t.is_floating_point() and not bool(torch.isfinite(t).all())
    ]
