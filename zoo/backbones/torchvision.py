"""torchvision backbones: ``tv:resnet18`` (default weights) or ``tv:resnet50.IMAGENET1K_V2`` (named weights)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import timm
import torch
import torchvision
from safetensors.torch import save_file
from torch import nn
from torchvision.models import get_model, get_model_weights, list_models

from zoo.backbones.base import (
    CONFIG_NAME,
    GENERIC_LAYOUT,
    WEIGHTS_NAME,
    Backbone,
    group_by_stage_regex,
    make_data_config,
    state_dict_for_saving,
)
from zoo.backbones.source import ModelInfo, Source, filter_ids, unknown_model
from zoo.backbones.timm import write_timm_layout
from zoo.backbones.weights import hub_offline, load_weights, wrap_weight_errors
from zoo.errors import CheckpointError, UnknownModelError, WeightsUnavailableError

TORCHVISION_LAYOUT = "torchvision"
# torchvision families whose state dicts are identical (keys, shapes, computation) to timm's model of the
# same name; checked per model on the meta device as well, so a family member that differs falls back.
TIMM_COMPATIBLE = ("resnet", "resnext", "wide_resnet", "densenet")
# pretrained_cfg fields that describe timm's own weights, wrong for a torchvision-trained model
_TIMM_WEIGHT_FIELDS = ("tag", "license", "origin_url", "paper_ids", "paper_name", "notes", "hf_hub_id", "url")

# Stage containers across torchvision's classifier families (ResNet layerN, EfficientNet/MobileNet/
# ConvNeXt/Swin/VGG features.N, DenseNet denseblockN, ViT encoder_layer_N, RegNet blockN, ...).
STAGE_REGEX = (
    r"^(layer\d+|features\.denseblock\d+|features\.transition\d+|features\.\d+|"
    r"encoder\.layers\.encoder_layer_\d+|trunk_output\.block\d+|stage\d+|blocks\.\d+|layers\.\d+|"
    r"inception\w+|Mixed_\w+)\."
)
# These end in a conv classifier, not a linear one, so they have no pooled-feature head to replace.
UNSUPPORTED = {"squeezenet1_0", "squeezenet1_1"}
_INTERP = {"bilinear": "bilinear", "bicubic": "bicubic", "nearest": "nearest"}


def _last_linear(model: nn.Module) -> str:
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise UnknownModelError(f"{type(model).__name__} has no linear classifier; zoo cannot replace its head")
    name: str = names[-1]
    return name


def _weights_enum(arch: str) -> Any | None:
    try:
        return get_model_weights(arch)
    except (ValueError, KeyError):
        return None


def data_config_from_weights(weights: Any | None) -> dict[str, Any]:
    """timm-style data config from torchvision's weights transforms (metadata only, no download)."""
    if weights is None:
        return make_data_config(224, interpolation="bilinear", crop_pct=0.875)
    t = weights.transforms()
    crop, resize = int(t.crop_size[0]), int(t.resize_size[0])
    return make_data_config(
        size=crop,
        mean=t.mean,
        std=t.std,
        crop_pct=crop / resize,
        interpolation=_INTERP.get(t.interpolation.value, "bilinear"),
    )


class TorchvisionBackbone(Backbone):
    """A torchvision classifier; pooled features are the input of its last linear layer."""

    source = "tv"

    def __init__(
        self, name: str, arch: str, model: nn.Module, data_config: dict[str, Any], pretrained_tag: str | None
    ) -> None:
        head_path = _last_linear(model)
        head = cast(nn.Linear, model.get_submodule(head_path))  # _last_linear names an nn.Linear
        super().__init__(name, model, data_config, head.in_features, head.out_features, pretrained_tag)
        self.arch = arch
        self.head_path = head_path

    layout = TORCHVISION_LAYOUT

    @property
    def architecture(self) -> str:
        return self.arch

    def write_layout(self, folder: Path) -> None:
        """ResNets and DenseNets are written in timm's layout (timm has them with identical keys), so plain
        timm and transformers load them too; other torchvision models get a small config of their own."""
        twin = timm_twin(self)
        if twin is not None:
            write_timm_layout(twin, folder, self.label_names, self.data_config, _TIMM_WEIGHT_FIELDS)
            return
        save_file(state_dict_for_saving(self.model), str(folder / WEIGHTS_NAME), metadata={"format": "pt"})
        config = {
            "library_name": "torchvision",
            "torchvision_arch": self.arch,
            "num_classes": self.num_classes,
            "label_names": self.label_names,
            "data_config": {k: list(v) if isinstance(v, tuple) else v for k, v in self.data_config.items()},
        }
        (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        captured: list[torch.Tensor] = []
        hook = self.get_classifier().register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
        try:
            self.model(x)
        finally:
            hook.remove()
        return captured[0].flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.model(x)
        return logits

    def get_classifier(self) -> nn.Module:
        return self.model.get_submodule(self.head_path)

    def _set_classifier(self, num_classes: int) -> None:
        new = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        parent_path, _, attr = self.head_path.rpartition(".")
        setattr(self.model.get_submodule(parent_path) if parent_path else self.model, attr, new)

    def _layer_group_names(self) -> list[tuple[str, list[str]]]:
        return group_by_stage_regex(self.model.named_parameters(), STAGE_REGEX, self.head_param_names())


def timm_twin(model: TorchvisionBackbone) -> nn.Module | None:
    """timm's model of the same architecture holding this model's weights, when the state-dict keys and
    shapes are identical (checked on the meta device first), else None."""
    if not model.arch.startswith(TIMM_COMPATIBLE) or not timm.is_model(model.arch):
        return None
    with torch.device("meta"):
        probe = timm.create_model(model.arch, pretrained=False, num_classes=model.num_classes)
    mine = {k: tuple(v.shape) for k, v in model.model.state_dict().items()}
    if mine != {k: tuple(v.shape) for k, v in probe.state_dict().items()}:
        return None
    twin = timm.create_model(model.arch, pretrained=False, num_classes=model.num_classes)
    twin.load_state_dict(model.model.state_dict(), strict=True)
    return twin


class TorchvisionSource(Source):
    description = "torchvision classification models, with torchvision's ImageNet weights"

    def check_id(self, model_id: str) -> None:
        arch = model_id.partition(".")[0]
        if arch not in self._archs():
            raise unknown_model("tv", model_id, self.known_ids())

    def read_layout(self, folder: Path, layout: str, config: Mapping[str, Any], meta: Mapping[str, Any]) -> Backbone:
        if layout == GENERIC_LAYOUT:
            return super().read_layout(folder, layout, config, meta)
        where = folder / ("zoo.json" if meta else CONFIG_NAME)
        arch = meta.get("architecture") or config.get("torchvision_arch") or config.get("architecture")
        num_classes = meta.get("num_classes", config.get("num_classes"))
        if not isinstance(arch, str) or not isinstance(num_classes, int) or isinstance(num_classes, bool):
            raise CheckpointError(
                f"{where}: fields 'architecture' ({arch!r}) and 'num_classes' ({num_classes!r}) "
                f"must name a torchvision model and an integer"
            )
        try:
            model = self.create(arch, num_classes=num_classes, pretrained=False)
        except UnknownModelError as exc:
            raise CheckpointError(f"{where}: field 'architecture' = {arch!r} is not a torchvision model") from exc
        load_weights(
            model.model,
            folder / WEIGHTS_NAME,
            config_hint=f"{where} (architecture {arch!r}, num_classes {num_classes})",
        )
        model.name = str(meta.get("model") or f"tv:{arch}")
        model.pretrained_tag = meta.get("pretrained_tag")
        return model

    def _archs(self) -> list[str]:
        return [a for a in list_models(module=torchvision.models) if a not in UNSUPPORTED]

    def list_models(self, pattern: str | None = None, pretrained: bool = False) -> list[ModelInfo]:
        rows = []
        for arch in self._archs():
            enum = _weights_enum(arch)
            weights = list(enum) if enum is not None else []
            ids = [f"{arch}.{w.name}" for w in weights] if pretrained else [arch]
            for model_id in filter_ids(ids, pattern) or (filter_ids([arch], pattern) if pretrained else []):
                # an id with a tag only comes from the enum's own names, so enum is set then
                w = enum[model_id.split(".", 1)[1]] if enum and "." in model_id else (enum.DEFAULT if enum else None)
                rows.append(
                    ModelInfo(
                        name=f"tv:{model_id}",
                        source="tv",
                        id=model_id,
                        pretrained_tag=w.name if w is not None else None,
                        param_count=round(w.meta["num_params"] / 1e6, 2) if w is not None else None,
                        resolution=int(w.transforms().crop_size[0]) if w is not None else None,
                        pretrain_data="imagenet-1k" if w is not None else None,
                        license="bsd-3-clause",
                        family=arch,
                    )
                )
        return rows

    def known_ids(self) -> list[str]:
        return self._archs()

    def create(
        self, model_id: str, num_classes: int | None = None, pretrained: bool = True, **kwargs: Any
    ) -> TorchvisionBackbone:
        self.check_id(model_id)
        arch, _, tag = model_id.partition(".")
        enum = _weights_enum(arch)
        try:
            weights = (enum[tag] if tag else enum.DEFAULT) if enum is not None else None
        except KeyError:
            raise unknown_model("tv", model_id, [f"{arch}.{w.name}" for w in enum or []]) from None
        if arch in ("googlenet", "inception_v3"):
            kwargs.setdefault("aux_logits", False)
            kwargs.setdefault("init_weights", False)
        name = f"tv:{model_id}"
        if pretrained and weights is None:
            raise WeightsUnavailableError(
                f"torchvision ships no pretrained weights for {name!r}; pass pretrained=False"
            )
        if pretrained and weights is not None:  # None with pretrained has just been refused
            cached = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))
            if hub_offline() and not os.path.exists(cached):
                raise WeightsUnavailableError(
                    f"cannot load pretrained weights for {name!r}: offline mode (HF_HUB_OFFLINE/ZOO_OFFLINE) "
                    f"is set and {cached} is not cached. Fix: download it once with network access, or "
                    f"pass pretrained=False."
                )
        with wrap_weight_errors(name, pretrained, hub=False):  # download.pytorch.org, not the Hub
            model = get_model(arch, weights=weights if pretrained else None, **kwargs)
        backbone = TorchvisionBackbone(
            name,
            arch,
            model,
            data_config_from_weights(weights),
            weights.name if (pretrained and weights is not None) else None,
        )
        if pretrained and weights is not None and backbone.num_classes == len(weights.meta.get("categories", [])):
            backbone.label_names = list(weights.meta["categories"])
        if num_classes is not None and num_classes != backbone.num_classes:
            backbone.reset_classifier(num_classes)
        return backbone
