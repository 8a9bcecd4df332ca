"""timm backbones: ``timm:resnet50.a1_in1k``, bare ``resnet50``, and timm's ``hf-hub:``/``local-dir:``."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import timm
import torch
from timm.models import get_pretrained_cfg, group_parameters, save_for_hf, split_model_name_tag
from torch import nn

from zoo.backbones.base import (
    CONFIG_NAME,
    DATA_CONFIG_KEYS,
    GENERIC_LAYOUT,
    WEIGHTS_NAME,
    Backbone,
    common_prefix_name,
    group_by_stage_regex,
)
from zoo.backbones.source import ModelInfo, Source, filter_ids, unknown_model
from zoo.backbones.timm_args import checked_model_args
from zoo.backbones.weights import load_weights, wrap_weight_errors
from zoo.errors import CheckpointError, UnknownModelError

TIMM_LAYOUT = "timm"
HUB_PREFIXES = ("hf-hub:", "hf_hub:")

# Fallback for timm models without a group_matcher: the usual stage containers.
GENERIC_STAGE_REGEX = r"^(layer\d+|layers\.\d+|stages?\.\d+|blocks\.\d+|features\.\d+)\."


class TimmBackbone(Backbone):
    """A timm model behind the zoo contract. timm already has the interface; this maps names."""

    source = "timm"

    # timm's own module: forward_head, get_classifier, num_features... are its attributes, untyped to mypy
    model: Any

    def __init__(self, name: str, model: nn.Module) -> None:
        timm_model: Any = model
        num_features = getattr(model, "head_hidden_size", None) or timm_model.num_features
        super().__init__(
            name=name,
            model=model,
            data_config=timm.data.resolve_model_data_config(model),
            num_features=num_features,
            num_classes=timm_model.num_classes,
            pretrained_tag=(getattr(model, "pretrained_cfg", None) or {}).get("tag"),
        )

    layout = TIMM_LAYOUT

    @property
    def architecture(self) -> str:
        return (getattr(self.model, "pretrained_cfg", None) or {}).get("architecture") or type(
            self.model
        ).__name__.lower()

    def base_model(self) -> str | None:
        ident = self.name.split(":", 1)[1] if self.name.startswith("timm:") else ""
        if ident.startswith(HUB_PREFIXES):
            return ident.split(":", 1)[1]
        hub = (getattr(self.model, "pretrained_cfg", None) or {}).get("hf_hub_id")
        if hub and "." in ident:  # an explicit 'arch.tag' name: timm's Hub repo for exactly those weights
            return hub if hub.rstrip("/") != "timm" else f"timm/{ident}"
        return None

    def write_layout(self, folder: Path) -> None:
        write_timm_layout(self.model, folder, self.label_names, self.data_config)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        features: torch.Tensor = self.model.forward_head(self.model.forward_features(x), pre_logits=True)
        return features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.model(x)
        return logits

    def get_classifier(self) -> nn.Module:
        head: nn.Module = self.model.get_classifier()
        return head

    def _set_classifier(self, num_classes: int) -> None:
        self.model.reset_classifier(num_classes)

    def _layer_group_names(self) -> list[tuple[str, list[str]]]:
        head = self.head_param_names()
        try:
            matcher = self.model.group_matcher(coarse=True)
        except (AttributeError, NotImplementedError):
            return group_by_stage_regex(self.model.named_parameters(), GENERIC_STAGE_REGEX, head)
        grouped = [names for _, names in sorted(group_parameters(self.model, matcher).items())]
        # Params no matcher claims (the classifier, ViT's fc_norm, ConvNeXt's head.norm) land in
        # timm's last group; the classifier becomes 'head', the rest joins the last stage.
        body = [[n for n in names if n not in head] for names in grouped]
        if len(body) > 1 and any(n in head for n in grouped[-1]) and body[-1]:
            body[-2] += body[-1]
            body[-1] = []
        body = [names for names in body if names]
        named: list[tuple[str, list[str]]] = []
        for i, names in enumerate(body):
            label = "stem" if i == 0 else common_prefix_name(names)
            if label in {n for n, _ in named}:
                label = f"{label}.{i}"
            named.append((label, names))
        ordered_head = [n for n, _ in self.model.named_parameters() if n in head]
        return named + [("head", ordered_head)]


def write_timm_layout(
    net: nn.Module,
    folder: Path,
    label_names: list[str] | None,
    data_config: Mapping[str, Any],
    drop_pretrained_fields: tuple[str, ...] = (),
) -> None:
    """timm's own public writer (``save_for_hf``: model.safetensors + config.json), then the one fix
    transformers' TimmWrapper needs: no num_classes inside model_args (it passes num_classes itself)."""
    if any(not p.is_contiguous() for p in net.state_dict().values()):
        net.to(memory_format=torch.contiguous_format)  # safetensors stores contiguous tensors only (channels_last)
    save_for_hf(
        net,
        str(folder),
        model_config={"label_names": list(label_names)} if label_names else None,
        safe_serialization=True,
        data_config={k: data_config[k] for k in DATA_CONFIG_KEYS if k in data_config},
    )
    config = json.loads((folder / CONFIG_NAME).read_text())
    config.get("model_args", {}).pop("num_classes", None)
    for key in drop_pretrained_fields:
        config["pretrained_cfg"].pop(key, None)
    (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")


def read_timm_net(folder: Path, config: Mapping[str, Any]) -> nn.Module:
    """The timm model a timm-layout folder describes, with its weights loaded strictly."""
    path = folder / CONFIG_NAME
    arch, num_classes = config.get("architecture"), config.get("num_classes")
    if not isinstance(arch, str):
        raise CheckpointError(f"{path}: required field 'architecture' is missing or not a string")
    if not isinstance(num_classes, int) or isinstance(num_classes, bool):
        raise CheckpointError(f"{path}: field 'num_classes' = {num_classes!r} must be an integer")
    if not timm.is_model(arch):
        raise CheckpointError(
            f"{path}: field 'architecture' = {arch!r} is not a timm architecture "
            f"(timm {timm.__version__}); upgrade timm or fix the field"
        )
    model_args = checked_model_args(config, path)  # an allow-list: create_model kwargs can load files
    pretrained_cfg = {**(config.get("pretrained_cfg") or {}), "architecture": arch}
    net = timm.create_model(
        arch, pretrained=False, num_classes=num_classes, pretrained_cfg=pretrained_cfg, **model_args
    )
    load_weights(net, folder / WEIGHTS_NAME, config_hint=f"{path} (architecture {arch!r}, num_classes {num_classes})")
    return net


@functools.lru_cache(maxsize=4096)
def _param_count_millions(arch: str) -> float | None:
    """Parameter count without allocating memory: build the model on the meta device."""
    try:
        with torch.device("meta"):
            model = timm.create_model(arch, pretrained=False)
        return round(sum(p.numel() for p in model.parameters()) / 1e6, 2)
    except Exception:  # noqa: BLE001 (a few exotic architectures cannot be built on meta; leave the cell blank)
        return None


class TimmSource(Source):
    description = "PyTorch Image Models (timm): ~1,300 architectures, pretrained tags as 'arch.tag'"
    max_param_rows = 120  # param counts cost ~20 ms per architecture; skip them in huge listings

    def list_models(self, pattern: str | None = None, pretrained: bool = False) -> list[ModelInfo]:
        tagged = timm.list_models(pretrained=True)
        archs_with_weights = {split_model_name_tag(n)[0] for n in tagged}
        ids = tagged if pretrained else tagged + [a for a in timm.list_models() if a not in archs_with_weights]
        ids = sorted(set(filter_ids(ids, pattern)) | set(filter_ids(ids, f"{pattern}.*") if pattern else set()))
        with_params = len({split_model_name_tag(i)[0] for i in ids}) <= self.max_param_rows
        rows = []
        for model_id in ids:
            arch, tag = split_model_name_tag(model_id)
            cfg = get_pretrained_cfg(model_id) if tag else None
            rows.append(
                ModelInfo(
                    name=f"timm:{model_id}",
                    source="timm",
                    id=model_id,
                    pretrained_tag=tag or None,
                    param_count=_param_count_millions(arch) if with_params else None,
                    resolution=cfg.input_size[-1] if cfg else None,
                    pretrain_data=tag or None,
                    license=getattr(cfg, "license", None) if cfg else None,
                    family=arch,
                )
            )
        return rows

    def known_ids(self) -> list[str]:
        return timm.list_models() + timm.list_models(pretrained=True)

    def check_id(self, model_id: str) -> None:
        kind, _, rest = model_id.partition(":")
        if kind == "local-dir" and not Path(rest).expanduser().is_dir():
            raise UnknownModelError(f"timm:{model_id}: no such folder {rest!r}")
        native = model_id.split(":", 1)[0] in ("hf-hub", "hf_hub", "local-dir")
        if not native and not timm.is_model(split_model_name_tag(model_id)[0]):
            raise unknown_model("timm", model_id, self.known_ids())

    def read_layout(self, folder: Path, layout: str, config: Mapping[str, Any], meta: Mapping[str, Any]) -> Backbone:
        if layout == GENERIC_LAYOUT:
            return super().read_layout(folder, layout, config, meta)
        net = read_timm_net(folder, config)
        return TimmBackbone(str(meta.get("model") or f"timm:{config['architecture']}"), net)

    def create(
        self, model_id: str, num_classes: int | None = None, pretrained: bool = True, **kwargs: Any
    ) -> TimmBackbone:
        self.check_id(model_id)
        if num_classes is not None:
            kwargs["num_classes"] = num_classes
        with wrap_weight_errors(f"timm:{model_id}", pretrained):
            model = timm.create_model(model_id, pretrained=pretrained, **kwargs)
        return TimmBackbone(f"timm:{model_id}", model)
