"""timm backbones: ``timm:resnet50.a1_in1k``, bare ``resnet50``, and timm's ``hf-hub:``/``local-dir:``."""
from __future__ import annotations

import functools
from typing import Any

import timm
import torch
from timm.models import get_pretrained_cfg, split_model_name_tag
from timm.models._manipulate import group_parameters
from torch import nn

from zoo.backbones.base import Backbone, common_prefix_name, group_by_stage_regex
from zoo.backbones.weights import wrap_weight_errors
from zoo.registry import ModelInfo, Source, filter_ids, register_source, unknown_model

# Fallback for timm models without a group_matcher: the usual stage containers.
GENERIC_STAGE_REGEX = r"^(layer\d+|layers\.\d+|stages?\.\d+|blocks\.\d+|features\.\d+)\."


class TimmBackbone(Backbone):
    """A timm model behind the zoo contract. timm already has the interface; this maps names."""

    source = "timm"

    def __init__(self, name: str, model: nn.Module) -> None:
        num_features = getattr(model, "head_hidden_size", None) or model.num_features
        super().__init__(
            name=name,
            model=model,
            data_config=timm.data.resolve_model_data_config(model),
            num_features=num_features,
            num_classes=model.num_classes,
            pretrained_tag=(getattr(model, "pretrained_cfg", None) or {}).get("tag"),
        )

    @property
    def architecture(self) -> str:
        return self.model.pretrained_cfg.get("architecture") or type(self.model).__name__.lower()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def get_classifier(self) -> nn.Module:
        return self.model.get_classifier()

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


@functools.lru_cache(maxsize=4096)
def _param_count_millions(arch: str) -> float | None:
    """Parameter count without allocating memory: build the model on the meta device."""
    try:
        with torch.device("meta"):
            model = timm.create_model(arch, pretrained=False)
        return round(sum(p.numel() for p in model.parameters()) / 1e6, 2)
    except Exception:  # a few exotic architectures cannot be built on meta; leave the cell blank
        return None


@register_source("timm")
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
            rows.append(ModelInfo(
                name=f"timm:{model_id}", source="timm", id=model_id, pretrained_tag=tag or None,
                param_count=_param_count_millions(arch) if with_params else None,
                resolution=cfg.input_size[-1] if cfg else None,
                pretrain_data=tag or None, license=getattr(cfg, "license", None) if cfg else None,
                family=arch,
            ))
        return rows

    def known_ids(self) -> list[str]:
        return timm.list_models() + timm.list_models(pretrained=True)

    def create(self, model_id: str, num_classes: int | None = None, pretrained: bool = True,
               **kwargs: Any) -> TimmBackbone:
        native = model_id.split(":", 1)[0] in ("hf-hub", "hf_hub", "local-dir")
        if not native and not timm.is_model(split_model_name_tag(model_id)[0]):
            raise unknown_model("timm", model_id, self.known_ids())
        if num_classes is not None:
            kwargs["num_classes"] = num_classes
        with wrap_weight_errors(f"timm:{model_id}", pretrained):
            model = timm.create_model(model_id, pretrained=pretrained, **kwargs)
        return TimmBackbone(f"timm:{model_id}", model)
