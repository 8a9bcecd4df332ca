"""Hugging Face transformers backbones: ``hf:<hub id>`` or ``hf:<local dir with config.json>``."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo.backbones.base import (
    CONFIG_NAME,
    GENERIC_LAYOUT,
    IMAGENET_MEAN,
    IMAGENET_STD,
    WEIGHTS_NAME,
    Backbone,
    group_by_stage_regex,
    make_data_config,
)
from zoo.backbones.hf_catalog import CATALOG
from zoo.backbones.source import ModelInfo, Source, filter_ids
from zoo.backbones.weights import first_line, preview, wrap_weight_errors
from zoo.errors import CheckpointError, ConfigError, UnknownModelError, WeightsUnavailableError

TRANSFORMERS_LAYOUT = "transformers"
PROCESSOR_NAME = "preprocessor_config.json"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_RESAMPLE_CODES = {"nearest": 0, "lanczos": 1, "bilinear": 2, "bicubic": 3, "box": 4, "hamming": 5}

SAFE_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
PICKLE_WEIGHT_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json")
# PIL resample codes used by HF image processors -> timm interpolation names
_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}


def _head_path(model: nn.Module) -> str:
    """Path of the final linear layer (or identity) of an HF image classifier's ``classifier``."""
    if not hasattr(model, "classifier"):
        raise ConfigError(f"{type(model).__name__} has no 'classifier' module; zoo cannot find its head")
    path, head = "classifier", model.classifier
    if isinstance(head, nn.Sequential):
        linears = [n for n, m in head.named_children() if isinstance(m, (nn.Linear, nn.Identity))]
        if linears:
            path = f"classifier.{linears[-1]}"
    return path


def load_processor(path: str, where: str) -> Any | None:
    """The image processor a model folder or Hub repo ships, or None when it ships none. One that exists but
    cannot be read is an error naming it: falling back to ImageNet's mean/std would preprocess wrongly."""
    from transformers import AutoImageProcessor
    from transformers.utils import cached_file

    try:
        file = cached_file(
            path,
            PROCESSOR_NAME,
            _raise_exceptions_for_missing_entries=False,
            _raise_exceptions_for_connection_errors=False,
        )
    except OSError:
        file = None
    if file is None:
        return None
    try:
        return AutoImageProcessor.from_pretrained(path)
    except Exception as exc:  # JSONDecodeError, ValueError (unknown processor type), TypeError, OSError ...
        raise CheckpointError(
            f"{file if os.path.isabs(str(file)) else where}: the image processor config cannot be "
            f"read ({first_line(exc)}); it decides the resize and mean/std. Fix or re-download "
            f"the file, or delete it to use config.json's size with ImageNet's mean/std."
        ) from exc


def data_config_from_processor(processor: Any, config: Any) -> dict[str, Any]:
    """timm-style data config from an HF image processor (or from the model config when there is none)."""
    if processor is None:
        size = getattr(config, "image_size", 224)
        made = make_data_config(size=size if isinstance(size, int) else tuple(size), crop_pct=1.0)
        warnings.warn(
            f"no {PROCESSOR_NAME}: preprocessing uses input size {list(made['input_size'][1:])} from "
            f"config.json, ImageNet's mean {list(made['mean'])} and std {list(made['std'])}, "
            f"{made['interpolation']} resize",
            UserWarning,
            stacklevel=2,
        )
        return made

    def as_hw(d: Any) -> tuple[int, int] | None:
        if d is None:
            return None
        d = d if isinstance(d, dict) else dict(d)
        if "height" in d and d["height"]:
            return int(d["height"]), int(d["width"])
        if d.get("shortest_edge"):
            return int(d["shortest_edge"]), int(d["shortest_edge"])
        return None

    resize = as_hw(getattr(processor, "size", None)) or (224, 224)
    crop = as_hw(getattr(processor, "crop_size", None)) if getattr(processor, "do_center_crop", False) else None
    input_hw = crop or resize
    crop_pct = getattr(processor, "crop_pct", None)
    if crop_pct is None:
        crop_pct = min(1.0, input_hw[0] / resize[0]) if crop else 1.0
    resample = getattr(processor, "resample", 3)
    interpolation = (
        _RESAMPLE.get(int(getattr(resample, "value", resample)), "bicubic")
        if isinstance(resample, int) or hasattr(resample, "value")
        else "bicubic"
    )
    mean, std = getattr(processor, "image_mean", None), getattr(processor, "image_std", None)
    if not mean or not std:
        warnings.warn(
            f"{type(processor).__name__} sets no image_mean/image_std: preprocessing uses ImageNet's "
            f"mean {IMAGENET_MEAN} and std {IMAGENET_STD}",
            UserWarning,
            stacklevel=2,
        )
    return make_data_config(
        size=input_hw,
        mean=mean or IMAGENET_MEAN,
        std=std or IMAGENET_STD,
        interpolation=interpolation,
        crop_pct=float(crop_pct),
    )


class HFBackbone(Backbone):
    """A transformers ``*ForImageClassification`` model. Pooled features are the classifier's input,
    captured with a hook, so each architecture's own pooling (CLS token, mean, CLS+mean) is kept."""

    source = "hf"

    # a transformers PreTrainedModel: its config and save_pretrained are the library's, untyped to mypy
    model: Any

    def __init__(self, name: str, model: nn.Module, data_config: dict[str, Any]) -> None:
        self_head_path = _head_path(model)
        head = model.get_submodule(self_head_path)
        config: Any = model.config
        num_features = head.in_features if isinstance(head, nn.Linear) else config.hidden_size
        super().__init__(name, model, data_config, num_features, int(config.num_labels))
        self.head_path = self_head_path
        id2label = getattr(model.config, "id2label", None) or {}
        names = [id2label.get(i, id2label.get(str(i), "")) for i in range(self.num_classes)]
        if names and all(names) and not all(n == f"LABEL_{i}" for i, n in enumerate(names)):
            self.label_names = names
        self.pretrained_tag = getattr(model.config, "_name_or_path", None) or None

    layout = TRANSFORMERS_LAYOUT

    @property
    def architecture(self) -> str:
        return str(getattr(self.model.config, "model_type", type(self.model).__name__))

    def base_model(self) -> str | None:
        ident = self.name.split(":", 1)[1] if ":" in self.name else self.name
        return ident if HUB_ID.match(ident) and not os.path.exists(ident) else None

    def write_layout(self, folder: Path) -> None:
        """transformers' own save_pretrained (safetensors, keys in the layout every version reads), plus an
        image processor that does what the data config says, so the pipeline preprocesses as zoo does."""
        names = self.label_names or [f"LABEL_{i}" for i in range(self.num_classes)]
        self.model.config.id2label = dict(enumerate(names))
        self.model.config.label2id = {n: i for i, n in enumerate(names)}
        self.model.config.num_labels = self.num_classes
        self.model.save_pretrained(str(folder))
        for stray in folder.glob("*.bin"):  # never ship a pickle, even if some version wrote one
            stray.unlink()
        processor_for(self.data_config).save_pretrained(str(folder))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        captured: list[torch.Tensor] = []
        hook = self.get_classifier().register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
        try:
            self.model(pixel_values=x)
        finally:
            hook.remove()
        return captured[0].flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.model(pixel_values=x).logits
        return logits

    def get_classifier(self) -> nn.Module:
        head: nn.Module = self.model.get_submodule(self.head_path)
        return head

    def _set_classifier(self, num_classes: int) -> None:
        new = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        parent_path, _, attr = self.head_path.rpartition(".")
        parent = self.model.get_submodule(parent_path) if parent_path else self.model
        setattr(parent, attr, new)
        self.model.config.num_labels = num_classes

    def reset_classifier(self, num_classes: int, label_names: Sequence[str] | None = None) -> None:
        super().reset_classifier(num_classes, label_names)
        names = self.label_names or [f"LABEL_{i}" for i in range(num_classes)]
        self.model.config.id2label = dict(enumerate(names))
        self.model.config.label2id = {n: i for i, n in enumerate(names)}

    def _layer_group_names(self) -> list[tuple[str, list[str]]]:
        prefix = getattr(self.model, "base_model_prefix", "") or ""
        prefix = f"{prefix}\\." if prefix and hasattr(self.model, prefix) else ""
        # transformers 4 nests stages under encoder (vit.encoder.layer.0), v5 ViT does not (vit.layers.0)
        regex = rf"^{prefix}(?:encoder\.)?(?:layer|layers|stages|blocks)\.\d+\."
        return group_by_stage_regex(self.model.named_parameters(), regex, self.head_param_names())


def processor_for(data_config: Mapping[str, Any]) -> Any:
    """An image processor that does what the data config says: resize + center crop (ConvNeXt's processor
    implements timm's crop_pct) or a plain resize."""
    import transformers as tf

    _, h, w = data_config["input_size"]
    resample = _RESAMPLE_CODES.get(str(data_config.get("interpolation", "bicubic")), 3)
    mean, std = list(data_config["mean"]), list(data_config["std"])
    crop_pct = float(data_config.get("crop_pct") or 1.0)
    if crop_pct < 1.0 and h == w and h < 384:
        return tf.ConvNextImageProcessor(
            size={"shortest_edge": h}, crop_pct=crop_pct, resample=resample, image_mean=mean, image_std=std
        )
    return tf.ViTImageProcessor(size={"height": h, "width": w}, resample=resample, image_mean=mean, image_std=std)


def read_transformers_folder(
    folder: Path, config: Mapping[str, Any], name: str, data_config: Mapping[str, Any] | None
) -> HFBackbone:
    """transformers' own from_pretrained (it maps the saved key layout onto the installed version's), with its
    loading report turned into an error: a missing or mismatched weight is never silently random."""
    from transformers import AutoModelForImageClassification

    path = folder / CONFIG_NAME
    num_labels = len(config.get("id2label") or {}) or None
    try:
        net, info = AutoModelForImageClassification.from_pretrained(
            str(folder), use_safetensors=True, output_loading_info=True, dtype=torch.float32
        )
    except (ValueError, KeyError, OSError, RuntimeError) as exc:
        raise CheckpointError(
            f"transformers could not load {folder / WEIGHTS_NAME} with {path} "
            f"(model_type {config.get('model_type')!r}, {num_labels} labels): {first_line(exc)}"
        ) from exc
    problems = {k: [str(x) for x in info.get(k) or []] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    problems = {k: v for k, v in problems.items() if v}
    if problems:
        detail = "; ".join(f"{k.replace('_', ' ')}: {preview(v)}" for k, v in problems.items())
        raise CheckpointError(
            f"{folder / WEIGHTS_NAME} does not match {path} (model_type {config.get('model_type')!r}): {detail}"
        )
    if data_config is None:
        data_config = data_config_from_processor(load_processor(str(folder), str(folder / PROCESSOR_NAME)), net.config)
    return HFBackbone(name, net, dict(data_config))


def _is_local(model_id: str) -> bool:
    return os.path.isdir(os.path.expanduser(model_id)) or model_id.startswith((".", "/", "~"))


class HFSource(Source):
    description = "Hugging Face transformers image classifiers: any hub id or local directory"

    def check_id(self, model_id: str) -> None:
        path = os.path.expanduser(model_id)
        if _is_local(model_id) and not os.path.isfile(os.path.join(path, "config.json")):
            raise UnknownModelError(
                f"hf:{model_id}: {path!r} is not a directory with a transformers config.json. "
                f"Pass a Hub id (e.g. hf:google/vit-base-patch16-224) or a folder written by save_pretrained."
            )
        if not _is_local(model_id) and not HUB_ID.match(model_id):
            raise UnknownModelError(
                f"hf:{model_id}: not a Hub id like 'google/vit-base-patch16-224' and not "
                f"an existing folder with a transformers config.json"
            )

    def read_layout(self, folder: Path, layout: str, config: Mapping[str, Any], meta: Mapping[str, Any]) -> Backbone:
        if layout == GENERIC_LAYOUT:
            return super().read_layout(folder, layout, config, meta)
        return read_transformers_folder(
            folder, config, str(meta.get("model") or f"hf:{folder}"), meta.get("data_config")
        )

    def list_models(self, pattern: str | None = None, pretrained: bool = False) -> list[ModelInfo]:
        ids = filter_ids(CATALOG, pattern)
        return [ModelInfo(name=f"hf:{i}", source="hf", id=i, **CATALOG[i]) for i in ids]

    def create(
        self, model_id: str, num_classes: int | None = None, pretrained: bool = True, **kwargs: Any
    ) -> HFBackbone:
        from transformers import AutoConfig, AutoModelForImageClassification

        self.check_id(model_id)
        local = _is_local(model_id)
        path = os.path.expanduser(model_id) if local else model_id
        name = f"hf:{model_id}"
        # Even pretrained=False needs config.json, so any Hub failure is a 'not reachable' error.
        with wrap_weight_errors(
            name,
            pretrained=True,
            hub=not local,
            needed="pretrained weights" if pretrained else "the config (config.json)",
        ):
            config = AutoConfig.from_pretrained(path, **kwargs.pop("config_kwargs", {}))
            if pretrained and local and not any((Path(path) / f).exists() for f in SAFE_WEIGHT_FILES):
                pickles = [f for f in PICKLE_WEIGHT_FILES if (Path(path) / f).exists()]
                raise WeightsUnavailableError(
                    f"cannot load pretrained weights for {name!r}: {path} holds "
                    + (
                        f"only {', '.join(pickles)} (a pickle, which zoo never loads: unpickling can run code); "
                        f"if you trust it, `zoo convert {Path(path) / pickles[0]}` writes model.safetensors. "
                        if pickles
                        else f"a config but no {' / '.join(SAFE_WEIGHT_FILES)}. "
                    )
                    + "Or pass pretrained=False for random weights."
                )
            try:
                if pretrained:
                    model = AutoModelForImageClassification.from_pretrained(
                        path, dtype=torch.float32, use_safetensors=True, **kwargs
                    )
                else:
                    model = AutoModelForImageClassification.from_config(config, **kwargs)
            except ValueError as exc:
                if "Unrecognized configuration class" in str(exc):
                    raise ConfigError(
                        f"{name} is a {config.model_type!r} model with no image-classification class in "
                        f"transformers; choose an image classifier (see `zoo models --source hf`)."
                    ) from exc
                raise
            except OSError as exc:
                if "safetensors" in str(exc) and not local:
                    raise WeightsUnavailableError(
                        f"cannot load pretrained weights for {name!r}: the repo has no model.safetensors, and "
                        f"zoo never loads pickle weights (unpickling can run code). Choose a repo with "
                        f"safetensors weights, or pass pretrained=False for random weights."
                    ) from exc
                raise
            processor = load_processor(path, f"{name} ({PROCESSOR_NAME})")
        backbone = HFBackbone(name, model, data_config_from_processor(processor, config))
        if num_classes is not None and num_classes != backbone.num_classes:
            backbone.reset_classifier(num_classes)
        return backbone
