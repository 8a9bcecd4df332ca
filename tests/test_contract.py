"""The backbone contract, checked the same way on every source with tiny models built offline."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import zoo

TIMM = ["timm:test_resnet", "timm:test_vit", "timm:test_convnext", "timm:test_efficientnet", "timm:resnet18"]
TV = ["tv:resnet18", "tv:mobilenet_v3_small", "tv:efficientnet_b0"]
HF = ["vit", "resnet", "convnext", "dinov2"]
PYPI = ["pypi:efficientnet_lite0"]
CASES = TIMM + TV + [f"hf-tiny:{k}" for k in HF] + PYPI


@pytest.fixture
def make(tiny_hf_dir):
    def build(case: str, num_classes: int = 10) -> zoo.Backbone:
        if case.startswith("hf-tiny:"):
            return zoo.create_model(f"hf:{tiny_hf_dir(case.split(':')[1])}", num_classes=num_classes)
        return zoo.create_model(case, num_classes=num_classes, pretrained=False)

    return build


def _input(model: zoo.Backbone, batch: int = 2, small: bool = True) -> torch.Tensor:
    _, h, w = model.data_config["input_size"]
    if small and h > 64 and model.source != "hf":  # conv nets accept any size; keep CPU tests fast
        h = w = 64 if "vit" not in model.name else h
    return torch.randn(batch, 3, h, w)


@pytest.mark.parametrize("case", CASES)
def test_shapes_and_head_consistency(make, case):
    model = make(case).eval()
    x = _input(model)
    logits, feats = model(x), model.forward_features(x)
    assert logits.shape == (2, 10)
    assert model.num_classes == 10
    assert feats.shape == (2, model.num_features)
    torch.testing.assert_close(model.forward_head(feats), logits)


@pytest.mark.parametrize("case", CASES)
def test_reset_classifier(make, case):
    model = make(case).eval()
    x = _input(model)
    model.reset_classifier(7, label_names=[f"c{i}" for i in range(7)])
    assert model(x).shape == (2, 7) and model.num_classes == 7 and model.label_names[6] == "c6"
    model.reset_classifier(0)
    torch.testing.assert_close(model(x), model.forward_features(x))
    with pytest.raises(ValueError, match="2 label names given for num_classes=3"):
        model.reset_classifier(3, label_names=["a", "b"])


@pytest.mark.parametrize("case", CASES)
def test_layer_groups_partition_parameters_in_order(make, case):
    model = make(case)
    groups = model.layer_groups()
    names = [n for g in groups for n in g.names]
    all_names = [n for n, _ in model.model.named_parameters()]
    assert sorted(names) == sorted(all_names), "every parameter exactly once"
    assert len(names) == len(set(names))
    assert groups[0].name == "stem" and groups[-1].name == "head"
    assert len(groups) >= 4, [g.name for g in groups]  # stem, >= 2 stages, head
    assert len({g.name for g in groups}) == len(groups)
    assert set(groups[-1].names) == model.head_param_names() != set()
    head_ids = {id(p) for p in model.get_classifier().parameters()}
    assert {id(p) for p in groups[-1].params} == head_ids
    # stages come in forward order: each group's first parameter is registered after the previous group's
    order = {n: i for i, n in enumerate(all_names)}
    firsts = [min(order[n] for n in g.names) for g in groups[1:-1]]
    assert firsts == sorted(firsts)


@pytest.mark.parametrize("case", CASES)
def test_freeze_all_but_head_trains_only_the_head(make, case):
    model = make(case)
    model.freeze(keep_trainable=["head"])
    model.train()
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    before = {id(m): m.running_mean.clone() for m in bns}
    loss = model(_input(model)).logsumexp(-1).mean()
    loss.backward()
    groups = model.layer_groups()
    for g in groups:
        for name, p in zip(g.names, g.params):
            has_grad = p.grad is not None and p.grad.abs().sum() > 0
            assert has_grad == (g.name == "head"), f"{g.name}:{name}"
    for m in bns:
        assert not m.training, "frozen BatchNorm must stay in eval mode"
        torch.testing.assert_close(m.running_mean, before[id(m)], rtol=0, atol=0)
    model.unfreeze()
    model.train()
    assert all(p.requires_grad for p in model.parameters())
    assert all(m.training for m in bns)


@pytest.mark.parametrize("case", CASES)
def test_data_config(make, case):
    cfg = make(case).data_config
    c, h, w = cfg["input_size"]
    assert c == 3 and h >= 32 and w >= 32
    assert len(cfg["mean"]) == 3 and len(cfg["std"]) == 3 and all(s > 0 for s in cfg["std"])
    assert cfg["interpolation"] in {"bilinear", "bicubic", "nearest", "lanczos", "box", "hamming"}
    assert 0.5 < cfg["crop_pct"] <= 1.0


def test_resnet18_same_structure_in_timm_and_torchvision():
    t = zoo.create_model("timm:resnet18", pretrained=False)
    v = zoo.create_model("tv:resnet18", pretrained=False)
    assert (
        [g.name for g in t.layer_groups()]
        == [g.name for g in v.layer_groups()]
        == ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
    )
    assert [g.num_params for g in t.layer_groups()] == [g.num_params for g in v.layer_groups()]
    assert t.num_features == v.num_features == 512


def test_freeze_unknown_group_names_the_groups():
    model = zoo.create_model("timm:test_resnet", pretrained=False)
    with pytest.raises(KeyError, match="no layer group named \\['layer9'\\]"):
        model.freeze(["layer9"])
