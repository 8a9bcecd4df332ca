"""The zoo artifact: one folder that loads in zoo, in plain timm and in transformers.

    model.safetensors   the source module's own state dict (never a pickle)
    config.json         the source's own layout: timm's (architecture, num_classes, label_names,
                        pretrained_cfg, model_args) for timm/pypi backbones and for torchvision ResNets and
                        DenseNets (timm has them with identical keys); transformers' save_pretrained layout
                        (id2label/label2id) for hf backbones; a small zoo layout for other torchvision models
    zoo.json            zoo's own metadata (name, labels, data config, recipe, metrics, dataset, provenance),
                        kept apart so it never confuses timm's or transformers' loaders
    README.md           the model card (zoo.modelcard)

``save`` writes into a temporary folder and renames it into place, so a crash never leaves a
half-written artifact. ``load`` reads safetensors only: a pickle checkpoint is refused with a hint
(``zoo convert``) because unpickling an untrusted file runs arbitrary code.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo.backbones.base import DATA_CONFIG_KEYS, Backbone
from zoo.errors import CheckpointError

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
META_NAME = "zoo.json"
CARD_NAME = "README.md"
PROCESSOR_NAME = "preprocessor_config.json"
FORMAT_VERSION = 1
LAYOUTS = ("timm", "transformers", "torchvision")
# Files a checkpoint may come as that can only be read by unpickling.
PICKLE_SUFFIXES = (".bin", ".pth", ".pt", ".ckpt", ".pkl", ".pickle", ".tar")
# torchvision families whose state dicts are identical (keys, shapes, computation) to timm's model of the
# same name; checked per model on the meta device as well, so a family member that differs falls back.
TIMM_COMPATIBLE_TV = ("resnet", "resnext", "wide_resnet", "densenet")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


# ==== saving ========================================================================================
def save(
    model: Backbone,
    directory: str | os.PathLike,
    *,
    recipe: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    dataset: Mapping[str, Any] | None = None,
    files: Mapping[str, str | os.PathLike] | None = None,
) -> Path:
    """Write ``model`` as a zoo artifact in ``directory`` (replaced atomically if it is one already).

    ``recipe``/``metrics``/``dataset`` go into zoo.json and the model card; ``files`` maps names to extra
    files copied in (``{"curve.png": path}``; the card embeds curve.png when present).
    """
    model = _unwrap(model)
    target = Path(directory).expanduser().absolute()
    _check_target(target)
    extra = {str(k): Path(v) for k, v in (files or {}).items()}
    for name, src in extra.items():
        if not src.is_file():
            raise CheckpointError(f"extra file {name!r} -> {src} does not exist; nothing was written to {target}")
        if Path(name).name != name or name in (WEIGHTS_NAME, CONFIG_NAME, META_NAME, CARD_NAME):
            raise CheckpointError(f"extra file name {name!r} must be a plain file name other than the artifact's own")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        layout = layout_of(model)
        {"timm": _write_timm, "transformers": _write_transformers, "torchvision": _write_torchvision}[layout](
            model, tmp)
        meta = _metadata(model, layout, recipe, metrics, dataset)
        _write_json(tmp / META_NAME, meta)
        for name, src in extra.items():
            shutil.copyfile(src, tmp / name)
        from zoo.modelcard import write_model_card

        write_model_card(tmp, meta)
        _same_modes(tmp, tmp / META_NAME)
        _swap_into_place(tmp, target)
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
            f"zoo.save needs a zoo Backbone (from zoo.create_model or zoo.load), got {type(model).__name__}")
    return model


def _check_target(target: Path) -> None:
    """Only an empty folder or an earlier zoo artifact may be replaced; never someone's other files."""
    if target.is_file():
        raise CheckpointError(f"{target} is a file; zoo.save needs a directory path")
    if target.is_dir() and any(target.iterdir()) and not (target / META_NAME).is_file():
        raise CheckpointError(
            f"{target} exists, is not empty and is not a zoo artifact (no {META_NAME}); refusing to replace it. "
            f"Choose a new directory or remove this one.")


def _same_modes(folder: Path, reference: Path) -> None:
    """Give every file the mode of one Python wrote (0644 under the usual umask): safetensors writes
    its file 0600, which left model.safetensors unreadable to the group when the rest was not."""
    mode = reference.stat().st_mode & 0o777
    for path in folder.rglob("*"):
        if path.is_file():
            path.chmod(mode)


def _swap_into_place(tmp: Path, target: Path) -> None:
    """Rename the finished folder to ``target``; an old artifact there is moved aside first, then removed."""
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(target, old)
    try:
        os.replace(tmp, target)
    except BaseException:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def layout_of(model: Backbone) -> str:
    """Which config.json layout the artifact uses: 'timm', 'transformers' or 'torchvision'."""
    from zoo.backbones.hf import HFBackbone
    from zoo.backbones.timm import TimmBackbone
    from zoo.backbones.torchvision import TorchvisionBackbone

    for cls, layout in ((TimmBackbone, "timm"), (HFBackbone, "transformers"), (TorchvisionBackbone, "torchvision")):
        if isinstance(model, cls):
            return layout
    raise CheckpointError(
        f"zoo.save does not know how to write a {type(model).__name__} ({model.name!r}); "
        f"supported: timm, pypi, hf and tv backbones")


def _state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    # safetensors refuses non-contiguous or shared storage; copies keep the saved values identical.
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in module.state_dict().items()}


def _save_weights(module: nn.Module, folder: Path) -> None:
    from safetensors.torch import save_file

    save_file(_state_dict(module), str(folder / WEIGHTS_NAME), metadata={"format": "pt"})


def _timm_config(timm_model: nn.Module, folder: Path, label_names: list[str] | None,
                 data_config: Mapping[str, Any]) -> dict[str, Any]:
    """timm's own config writer, then the fix transformers' TimmWrapper needs (no num_classes in model_args)."""
    from timm.models._hub import save_config_for_hf  # public save_for_hf also writes weights (pickle by default)

    model_config: dict[str, Any] = {"label_names": list(label_names)} if label_names else {}
    path = folder / CONFIG_NAME
    save_config_for_hf(timm_model, str(path), model_config=model_config,
                       data_config={k: data_config[k] for k in DATA_CONFIG_KEYS if k in data_config})
    config = json.loads(path.read_text())
    config.get("model_args", {}).pop("num_classes", None)
    return config


def _write_timm(model: Backbone, folder: Path) -> None:
    _save_weights(model.model, folder)
    config = _timm_config(model.model, folder, model.label_names, model.data_config)
    _write_json(folder / CONFIG_NAME, config)


def _write_transformers(model: Backbone, folder: Path) -> None:
    hf_model = model.model
    names = model.label_names or [f"LABEL_{i}" for i in range(model.num_classes)]
    hf_model.config.id2label = dict(enumerate(names))
    hf_model.config.label2id = {n: i for i, n in enumerate(names)}
    hf_model.config.num_labels = model.num_classes
    # save_pretrained writes safetensors and converts keys to the layout every transformers version reads.
    hf_model.save_pretrained(str(folder))
    for stray in folder.glob("*.bin"):  # never ship a pickle, even if some version wrote one
        stray.unlink()
    _processor_for(model.data_config).save_pretrained(str(folder))


def _processor_for(data_config: Mapping[str, Any]) -> Any:
    """An image processor that does what the data config says, so transformers' pipeline preprocesses as
    zoo does: resize+center-crop (ConvNeXt's processor implements timm's crop_pct) or a plain resize."""
    import transformers as tf

    _, h, w = data_config["input_size"]
    resample = {"nearest": 0, "lanczos": 1, "bilinear": 2, "bicubic": 3, "box": 4, "hamming": 5}.get(
        str(data_config.get("interpolation", "bicubic")), 3)
    mean, std = list(data_config["mean"]), list(data_config["std"])
    crop_pct = float(data_config.get("crop_pct") or 1.0)
    if crop_pct < 1.0 and h == w and h < 384:
        return tf.ConvNextImageProcessor(size={"shortest_edge": h}, crop_pct=crop_pct, resample=resample,
                                         image_mean=mean, image_std=std)
    return tf.ViTImageProcessor(size={"height": h, "width": w}, resample=resample, image_mean=mean, image_std=std)


def timm_twin(model: Backbone) -> nn.Module | None:
    """timm's model with the same architecture and identical state-dict keys and shapes (on the meta device),
    or None. torchvision ResNets/DenseNets have one, so their artifacts load in plain timm too."""
    import timm

    arch = getattr(model, "arch", "")
    if not arch.startswith(TIMM_COMPATIBLE_TV) or not timm.is_model(arch):
        return None
    with torch.device("meta"):
        twin = timm.create_model(arch, pretrained=False, num_classes=model.num_classes)
    mine = {k: tuple(v.shape) for k, v in model.model.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in twin.state_dict().items()}
    return twin if mine == theirs else None


# pretrained_cfg fields that describe timm's own weights, wrong for a torchvision-trained model
_TIMM_WEIGHT_FIELDS = ("tag", "license", "origin_url", "paper_ids", "paper_name", "notes", "hf_hub_id", "url")


def _write_torchvision(model: Backbone, folder: Path) -> None:
    _save_weights(model.model, folder)
    twin = timm_twin(model)
    if twin is not None:
        config = _timm_config(twin, folder, model.label_names, model.data_config)
        for key in _TIMM_WEIGHT_FIELDS:
            config["pretrained_cfg"].pop(key, None)
    else:
        config = {"library_name": "torchvision", "torchvision_arch": model.arch,
                  "num_classes": model.num_classes, "label_names": model.label_names,
                  "data_config": _jsonable(model.data_config)}
    _write_json(folder / CONFIG_NAME, config)


def _metadata(model: Backbone, layout: str, recipe: Mapping[str, Any] | None, metrics: Mapping[str, Any] | None,
              dataset: Mapping[str, Any] | None) -> dict[str, Any]:
    from zoo import __version__

    earlier = getattr(model, "zoo_metadata", None) or {}  # a loaded artifact keeps its provenance
    return {
        "format": "zoo-artifact",
        "format_version": FORMAT_VERSION,
        "model": model.name,
        "source": model.source,
        "layout": layout,
        "architecture": architecture_of(model),
        "num_classes": model.num_classes,
        "num_features": model.num_features,
        "label_names": list(model.label_names) if model.label_names else None,
        "data_config": _jsonable(model.data_config),
        "base_model": earlier.get("base_model", base_model_of(model, recipe)),
        "pretrained_tag": model.pretrained_tag,
        "recipe": _jsonable(dict(recipe)) if recipe else earlier.get("recipe"),
        "metrics": _jsonable(dict(metrics)) if metrics else earlier.get("metrics"),
        "dataset": _jsonable(dict(dataset)) if dataset else earlier.get("dataset"),
        "zoo_version": __version__,
        "git_commit": git_commit(),
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def architecture_of(model: Backbone) -> str:
    """The source's own architecture name: timm's, torchvision's, or transformers' model_type."""
    if model.source == "tv":
        return model.arch
    if model.source == "hf":
        return str(getattr(model.model.config, "model_type", type(model.model).__name__))
    cfg = getattr(model.model, "pretrained_cfg", None) or {}
    return str(cfg.get("architecture") or type(model.model).__name__.lower())


def base_model_of(model: Backbone, recipe: Mapping[str, Any] | None = None) -> str | None:
    """The Hub id the fine-tune started from (model card ``base_model``), or None (scratch, local, non-Hub)."""
    if recipe and _recipe_says_scratch(recipe):
        return None
    if model.source == "hf":
        ident = model.name.split(":", 1)[1]
        return ident if HUB_ID.match(ident) and not os.path.exists(ident) else None
    if model.source == "timm" and model.name.startswith("timm:"):
        ident = model.name.split(":", 1)[1]
        if ident.startswith(("hf-hub:", "hf_hub:")):
            return ident.split(":", 1)[1]
        cfg = getattr(model.model, "pretrained_cfg", None) or {}
        hub = cfg.get("hf_hub_id")
        if hub and "." in ident:  # an explicit 'arch.tag' name: timm's Hub repo for exactly those weights
            return hub if hub.rstrip("/") != "timm" else f"timm/{ident}"
    return None


def _recipe_says_scratch(recipe: Mapping[str, Any]) -> bool:
    for section in (recipe, recipe.get("model") if isinstance(recipe.get("model"), Mapping) else {}):
        if section.get("pretrained") is False or section.get("strategy") == "scratch":
            return True
    return False


def git_commit(cwd: str | os.PathLike | None = None) -> str | None:
    """HEAD of the git checkout the run was started from (provenance), or None outside one."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd or os.getcwd(), capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", sha) else None


def _jsonable(value: Any) -> Any:
    """Tuples -> lists, Paths -> str, tensors/numpy scalars -> numbers, so json.dump never fails mid-write."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(_jsonable(data), indent=2) + "\n", encoding="utf-8")


# ==== loading =======================================================================================
def load(path_or_repo_id: str | os.PathLike, revision: str | None = None) -> Backbone:
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


def resolve(path_or_repo_id: str | os.PathLike, revision: str | None = None) -> Path:
    """A local folder holding the artifact: the path itself, or the Hub snapshot in the cache."""
    text = str(path_or_repo_id)
    local = Path(text).expanduser()
    if local.is_dir():
        return local
    if local.is_file():
        if local.suffix in PICKLE_SUFFIXES or local.name.endswith(".pth.tar"):
            raise pickle_refused(local.parent, [local.name])
        if local.name in (WEIGHTS_NAME, CONFIG_NAME, META_NAME):
            return local.parent
        raise CheckpointError(f"{local} is a file; pass the artifact folder that holds {WEIGHTS_NAME} and {CONFIG_NAME}")
    repo_id = text.split(":", 1)[1] if text.startswith(("hf-hub:", "hf_hub:")) else text
    if not HUB_ID.match(repo_id):
        raise CheckpointError(
            f"{text!r} is neither an existing folder nor a Hub repo id like 'user/repo'. "
            f"Pass the directory zoo.save wrote (it holds {WEIGHTS_NAME} and {CONFIG_NAME}).")
    from zoo.hub import download

    return download(repo_id, revision=revision)


def load_dir(folder: str | os.PathLike) -> Backbone:
    """Load an artifact folder (zoo's, or a plain timm / transformers one) with safetensors only."""
    folder = Path(folder)
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        pickles = sorted(p.name for p in folder.iterdir() if p.is_file() and _is_pickle_name(p.name))
        if pickles:
            raise pickle_refused(folder, pickles)
        if (folder / "model.safetensors.index.json").is_file():
            raise CheckpointError(f"{folder} holds a sharded checkpoint (model.safetensors.index.json); zoo "
                                  f"artifacts are one {WEIGHTS_NAME}. Load it with hf:{folder} instead.")
        raise CheckpointError(f"missing file {weights}: a zoo artifact needs {WEIGHTS_NAME} next to {CONFIG_NAME}")
    config_path = folder / CONFIG_NAME
    if not config_path.is_file():
        raise CheckpointError(f"missing file {config_path}: it records the architecture and head size "
                              f"needed to rebuild the model from {WEIGHTS_NAME}")
    config = read_json(config_path)
    meta = read_json(folder / META_NAME) if (folder / META_NAME).is_file() else {}
    layout = meta.get("layout") or infer_layout(config, config_path)
    if layout not in LAYOUTS:
        raise CheckpointError(f"{folder / META_NAME}: field 'layout' = {layout!r} is not one of {list(LAYOUTS)}")
    loader = {"timm": _load_timm, "transformers": _load_transformers, "torchvision": _load_torchvision}[layout]
    model = loader(folder, config, meta)
    _apply_metadata(model, folder, config, meta)
    model.eval()
    return model


def infer_layout(config: Mapping[str, Any], path: Path) -> str:
    if "torchvision_arch" in config:
        return "torchvision"
    if "architecture" in config and "pretrained_cfg" in config:
        return "timm"
    if "model_type" in config:
        return "transformers"
    raise CheckpointError(
        f"{path}: cannot tell which library wrote it: no 'architecture'+'pretrained_cfg' (timm), "
        f"'model_type' (transformers) or 'torchvision_arch' (zoo) field")


def _is_pickle_name(name: str) -> bool:
    return name.endswith(PICKLE_SUFFIXES) or name.endswith(".pth.tar")


def pickle_refused(folder: Path, names: list[str]) -> CheckpointError:
    first = folder / names[0]
    return CheckpointError(
        f"{folder} holds only pickle checkpoint(s) ({', '.join(names)}) and no {WEIGHTS_NAME}. zoo loads "
        f"safetensors only, because unpickling a file can run arbitrary code. If you trust the file, convert "
        f"it (read with torch.load(weights_only=True)): `zoo convert {first}` writes {folder / WEIGHTS_NAME}.")


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
                              f"the file is truncated or corrupt, re-save or re-download it") from exc
    except UnicodeDecodeError as exc:
        raise CheckpointError(f"{path} is not a UTF-8 text file; it is corrupt") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} must hold a JSON object, found {type(data).__name__}")
    return data


def _field(config: Mapping[str, Any], key: str, path: Path, kind: type | tuple[type, ...]) -> Any:
    if key not in config:
        raise CheckpointError(f"{path}: required field {key!r} is missing")
    value = config[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise CheckpointError(f"{path}: field {key!r} = {value!r} has the wrong type")
    return value


def _load_timm(folder: Path, config: dict[str, Any], meta: dict[str, Any]) -> Backbone:
    import timm

    from zoo.backbones.timm import TimmBackbone

    path = folder / CONFIG_NAME
    arch = _field(config, "architecture", path, str)
    num_classes = _field(config, "num_classes", path, int)
    if not timm.is_model(arch):
        raise CheckpointError(f"{path}: field 'architecture' = {arch!r} is not a timm architecture "
                              f"(timm {timm.__version__}); upgrade timm or fix the field")
    model_args = {k: v for k, v in (config.get("model_args") or {}).items() if k != "num_classes"}
    pretrained_cfg = dict(config.get("pretrained_cfg") or {})
    pretrained_cfg["architecture"] = arch
    net = timm.create_model(arch, pretrained=False, num_classes=num_classes, pretrained_cfg=pretrained_cfg,
                            **model_args)
    load_weights(net, folder / WEIGHTS_NAME, config_hint=f"{path} (architecture {arch!r}, num_classes {num_classes})")
    return TimmBackbone(meta.get("model") or f"timm:{arch}", net)


def _load_torchvision(folder: Path, config: dict[str, Any], meta: dict[str, Any]) -> Backbone:
    from zoo.registry import create_model

    path = folder / META_NAME if meta else folder / CONFIG_NAME
    source = meta if meta else config
    arch = _field(source, "architecture" if meta else "torchvision_arch", path, str)
    num_classes = _field(source, "num_classes", path, int)
    try:
        model = create_model(f"tv:{arch}", num_classes=num_classes, pretrained=False)
    except KeyError as exc:
        raise CheckpointError(f"{path}: field 'architecture' = {arch!r} is not a torchvision model") from exc
    load_weights(model.model, folder / WEIGHTS_NAME,
                 config_hint=f"{path} (architecture {arch!r}, num_classes {num_classes})")
    model.name = meta.get("model") or f"tv:{arch}"
    model.pretrained_tag = meta.get("pretrained_tag")
    return model


def _load_transformers(folder: Path, config: dict[str, Any], meta: dict[str, Any]) -> Backbone:
    """transformers' own from_pretrained (it maps the saved key layout onto the installed version's),
    with its loading report turned into an error: a missing or mismatched weight is never silently random."""
    from transformers import AutoModelForImageClassification

    from zoo.backbones.hf import HFBackbone

    path = folder / CONFIG_NAME
    num_labels = len(config.get("id2label") or {}) or None
    try:
        net, info = AutoModelForImageClassification.from_pretrained(
            str(folder), use_safetensors=True, output_loading_info=True, dtype=torch.float32)
    except (ValueError, KeyError, OSError, RuntimeError) as exc:
        raise CheckpointError(
            f"transformers could not load {folder / WEIGHTS_NAME} with {path} "
            f"(model_type {config.get('model_type')!r}, {num_labels} labels): {_first_line(exc)}") from exc
    problems = {k: list(info.get(k) or []) for k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    problems = {k: v for k, v in problems.items() if v}
    if problems:
        detail = "; ".join(f"{k.replace('_', ' ')}: {_preview([str(x) for x in v])}" for k, v in problems.items())
        raise CheckpointError(f"{folder / WEIGHTS_NAME} does not match {path} "
                              f"(model_type {config.get('model_type')!r}): {detail}")
    from zoo.backbones.hf import data_config_from_processor

    data_config = meta.get("data_config") or data_config_from_processor(_maybe_processor(folder), net.config)
    model = HFBackbone(meta.get("model") or f"hf:{folder}", net, _data_config(data_config, folder / META_NAME))
    return model


def _maybe_processor(folder: Path) -> Any:
    if not (folder / PROCESSOR_NAME).is_file():
        return None
    from transformers import AutoImageProcessor

    with contextlib.suppress(OSError, ValueError):
        return AutoImageProcessor.from_pretrained(str(folder))
    return None


def load_weights(module: nn.Module, path: Path, config_hint: str) -> None:
    """Strictly load a safetensors file, after checking its keys and shapes against the built model, so a
    wrong architecture or head size is an error naming the file, the tensors and the config that disagree."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file ({_first_line(exc)}); it is truncated "
                              f"or corrupt. Re-save the model or re-download the file.") from exc
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    missing = [k for k in expected if k not in shapes]
    unexpected = [k for k in shapes if k not in expected]
    wrong = [f"{k} {list(shapes[k])} in file vs {list(expected[k])} in model" for k in expected
             if k in shapes and shapes[k] != expected[k]]
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            parts.append(f"wrong shapes: {_preview(wrong)}")
        if missing:
            parts.append(f"{len(missing)} missing tensors: {_preview(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensors: {_preview(unexpected)}")
        raise CheckpointError(f"{path} does not match the model described by {config_hint}: " + "; ".join(parts))
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path} is truncated or corrupt ({_first_line(exc)}); re-save or re-download it") from exc
    module.load_state_dict(state, strict=True)


def _apply_metadata(model: Backbone, folder: Path, config: dict[str, Any], meta: dict[str, Any]) -> None:
    """Label names and data config come from the artifact, never from the architecture's defaults."""
    meta_path, config_path = folder / META_NAME, folder / CONFIG_NAME
    head = model.get_classifier()
    head_size = getattr(head, "out_features", model.num_classes)
    if meta:
        declared = _field(meta, "num_classes", meta_path, int)
        if declared != head_size:
            raise CheckpointError(f"{meta_path}: field 'num_classes' = {declared} but the head in "
                                  f"{folder / WEIGHTS_NAME} has {head_size} outputs")
    names, where = meta.get("label_names"), meta_path
    if names is None:
        names, where = _config_label_names(config), config_path
    if names is not None:
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise CheckpointError(f"{where}: field 'label_names' must be a list of strings")
        if len(names) != head_size:
            raise CheckpointError(f"{where}: field 'label_names' has {len(names)} names but the head "
                                  f"(num_classes) has {head_size} outputs; fix the list or re-save the model")
    model.label_names = list(names) if names is not None else None
    model.num_classes = head_size
    if meta.get("data_config"):
        model.data_config = _data_config(meta["data_config"], meta_path)
    model.zoo_metadata = dict(meta)
    model.zoo_metadata["path"] = str(folder)


def _config_label_names(config: Mapping[str, Any]) -> list[str] | None:
    if isinstance(config.get("label_names"), list):
        return config["label_names"]
    id2label = config.get("id2label")
    if isinstance(id2label, dict) and id2label:
        names = [id2label.get(str(i), id2label.get(i)) for i in range(len(id2label))]
        if all(isinstance(n, str) for n in names) and not all(n == f"LABEL_{i}" for i, n in enumerate(names)):
            return names
    return None


def _data_config(raw: Mapping[str, Any], path: Path) -> dict[str, Any]:
    missing = [k for k in ("input_size", "mean", "std") if k not in raw]
    if missing:
        raise CheckpointError(f"{path}: field 'data_config' lacks {missing}")
    out = dict(raw)
    for key in ("input_size", "mean", "std"):
        out[key] = tuple(out[key])
    if len(out["input_size"]) != 3:
        raise CheckpointError(f"{path}: field 'data_config.input_size' = {list(out['input_size'])} must be [C, H, W]")
    return out


def _preview(items: list[str], n: int = 5) -> str:
    more = f" (+{len(items) - n} more)" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:300] if lines else ''}"


# ==== conversion ====================================================================================
def convert_pickle(src: str | os.PathLike, dst: str | os.PathLike | None = None) -> Path:
    """Rewrite a trusted pickle state dict as safetensors, reading it with ``torch.load(weights_only=True)``
    (tensors and plain containers only; objects that need code to unpickle are refused by torch)."""
    from safetensors.torch import save_file

    src = Path(src)
    if not src.is_file():
        raise CheckpointError(f"no such file: {src}")
    dst = Path(dst) if dst else src.parent / WEIGHTS_NAME
    try:
        state = torch.load(str(src), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError/RuntimeError for anything beyond plain tensors
        raise CheckpointError(f"{src} cannot be read with torch.load(weights_only=True) ({_first_line(exc)}); "
                              f"it is not a plain state dict, so zoo will not unpickle it") from exc
    for key in ("state_dict", "model", "model_state_dict"):  # common training-checkpoint wrappers
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    tensors = dict(_flat_tensors(state))
    if not tensors:
        raise CheckpointError(f"{src} holds no tensors ({type(state).__name__}); nothing to convert")
    save_file({k: v.contiguous().clone() for k, v in tensors.items()}, str(dst), metadata={"format": "pt"})
    return dst


def _flat_tensors(state: Any, prefix: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    if isinstance(state, torch.Tensor):
        yield prefix, state
    elif isinstance(state, Mapping):
        for k, v in state.items():
            yield from _flat_tensors(v, f"{prefix}.{k}" if prefix else str(k))
