"""Strategies on layer groups: what trains, at which learning rate, epoch by epoch, on every source."""

from __future__ import annotations

import pytest
import torch

import zoo
from zoo.errors import ConfigError
from zoo.train.schedule import GroupLRScheduler, schedule_factor
from zoo.train.schema import StrategyConfig
from zoo.train.strategies import Strategy

RESNET_GROUPS = ["stem", "layer1", "layer2", "layer3", "layer4", "head"]


@pytest.fixture
def resnet():
    return zoo.create_model("timm:resnet18", num_classes=4, pretrained=False)


def strat(model, **kw):
    return Strategy(model, StrategyConfig(**kw))


def describe_phases(strategy: Strategy, epochs: int) -> list[tuple[int, list[str]]]:
    """[(first epoch, trainable groups)] each time the trainable set changes (a test helper: zoo never needed it)."""
    phases: list[tuple[int, list[str]]] = []
    for e in range(epochs):
        live = sorted(strategy.trainable_groups(e), key=[g.name for g in strategy.groups].index)
        if not phases or list(phases[-1][1]) != live:
            phases.append((e, live))
    return phases


def test_linear_probe_trains_only_head(resnet):
    s = strat(resnet, name="linear_probe")
    s.apply(epochs=3)
    assert [g.name for g in s.groups] == RESNET_GROUPS
    assert {n for n, p in resnet.model.named_parameters() if p.requires_grad} == resnet.head_param_names()
    assert s.uses_feature_cache
    assert not strat(resnet, name="linear_probe", cache_features=False).uses_feature_cache


def test_partial_unfreezes_last_k_stages(resnet):
    s = strat(resnet, name="partial", unfreeze_stages=2)
    s.apply(epochs=2)
    assert s.trainable_groups(0) == {"layer3", "layer4", "head"}
    live = {g.name for g in s.groups if g.trainable}
    assert live == {"layer3", "layer4", "head"}
    assert strat(resnet, name="partial", unfreeze_stages=99).trainable_groups(0) == set(RESNET_GROUPS) - {"stem"}


def test_freeze_then_unfreeze_phases(resnet):
    s = strat(resnet, name="freeze_then_unfreeze", unfreeze_epoch=2, unfreeze_stages=1)
    s.apply(epochs=4)
    assert describe_phases(s, 4) == [(0, ["head"]), (2, ["layer4", "head"])]
    # DDP safety: everything that will ever train has requires_grad from the start, frozen ones sit at lr 0
    assert {g.name for g in s.groups if g.trainable} == {"layer4", "head"}
    assert s.lr_scales(0) == {"stem": 0, "layer1": 0, "layer2": 0, "layer3": 0, "layer4": 0.0, "head": 1.0}
    assert s.lr_scales(3)["layer4"] == 1.0
    frozen_bn = s.frozen_norm_modules(0)
    assert resnet.model.layer4[0].bn1 in frozen_bn and resnet.model.bn1 in frozen_bn
    assert resnet.model.layer4[0].bn1 not in s.frozen_norm_modules(2)
    all_stages = strat(resnet, name="freeze_then_unfreeze", unfreeze_epoch=1, unfreeze_stages=-1)
    assert all_stages.trainable_groups(1) == set(RESNET_GROUPS)


def test_lp_ft_and_scratch_and_finetune(resnet):
    s = strat(resnet, name="lp_ft", probe_epochs=2)
    assert describe_phases(s, 3) == [(0, ["head"]), (2, RESNET_GROUPS)]
    for name in ("finetune", "scratch"):
        assert strat(resnet, name=name).trainable_groups(0) == set(RESNET_GROUPS)


def test_llrd_scales_decay_towards_the_input(resnet):
    scales = strat(resnet, name="llrd", llrd_decay=0.5, head_lr_scale=2.0).lr_scales(0)
    assert scales == {"head": 2.0, "layer4": 0.5, "layer3": 0.25, "layer2": 0.125, "layer1": 0.0625, "stem": 0.03125}


def test_param_groups_no_decay_on_biases_and_norms(resnet):
    s = strat(resnet, name="partial", unfreeze_stages=1)
    s.apply(epochs=1)
    groups = s.param_groups(weight_decay=0.05)
    names = {(g["group_name"], g["weight_decay"]) for g in groups}
    assert names == {("layer4", 0.05), ("layer4", 0.0), ("head", 0.05), ("head", 0.0)}
    assert all(p.ndim <= 1 for g in groups if g["weight_decay"] == 0 for p in g["params"])
    n_params = sum(p.numel() for g in groups for p in g["params"])
    assert n_params == sum(g.num_params for g in s.groups if g.name in ("layer4", "head"))


def test_unknown_strategy_error(resnet):
    # the schema refuses the name first; a config built without validation still meets Strategy's own check
    with pytest.raises(ConfigError, match="unknown strategy 'finetuen'.*Did you mean: finetune"):
        Strategy(resnet, StrategyConfig.model_construct(name="finetuen"))


@pytest.mark.parametrize("optim", ["adamw", "sgd"])
def test_groups_at_lr_zero_stay_bit_exact(optim):
    """freeze_then_unfreeze's frozen phase: grads flow (DDP-safe) but weights, weight decay included, don't move."""
    model = zoo.create_model("timm:test_resnet", num_classes=3, pretrained=False)
    s = strat(model, name="freeze_then_unfreeze", unfreeze_epoch=1, unfreeze_stages=-1)
    s.apply(epochs=2)
    groups = s.param_groups(weight_decay=0.1)
    opt = torch.optim.AdamW(groups, lr=0.1) if optim == "adamw" else torch.optim.SGD(groups, lr=0.1, momentum=0.9)
    sched = GroupLRScheduler(opt, "constant", 0.1, total_steps=10)
    sched.set_scales(s.lr_scales(0))
    before = {n: p.detach().clone() for n, p in model.model.named_parameters()}
    for _ in range(2):
        model(torch.randn(4, 3, 32, 32)).logsumexp(1).mean().backward()
        opt.step()
        opt.zero_grad()
        sched.step()
    head = model.head_param_names()
    for n, p in model.model.named_parameters():
        assert torch.equal(p, before[n]) == (n not in head), n


def test_schedule_shapes():
    assert schedule_factor("constant", 5, 10, 0, 0) == 1.0
    assert schedule_factor("cosine", 0, 100, 0, 0) == pytest.approx(1.0)
    assert schedule_factor("cosine", 50, 100, 0, 0) == pytest.approx(0.5)
    assert schedule_factor("cosine", 100, 100, 0, 0.1) == pytest.approx(0.1)
    assert schedule_factor("cosine", 0, 100, 10, 0) == pytest.approx(1 / 11)  # warm-up starts low
    assert schedule_factor("cosine", 10, 100, 10, 0) == pytest.approx(1.0)
    peak = schedule_factor("onecycle", 30, 100, 0, 0)
    assert peak == pytest.approx(1.0) and schedule_factor("onecycle", 0, 100, 0, 0) == pytest.approx(0.04)
    assert schedule_factor("onecycle", 100, 100, 0, 0) < 1e-4


def test_scheduler_state_round_trip():
    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([{"params": [p], "group_name": "head"}], lr=1.0)
    a = GroupLRScheduler(opt, "cosine", 1.0, total_steps=10, warmup_steps=2)
    a.set_scales({"head": 0.5})
    for _ in range(4):
        a.step()
    lr = opt.param_groups[0]["lr"]
    b = GroupLRScheduler(opt, "cosine", 1.0, total_steps=10, warmup_steps=2)
    b.load_state_dict(a.state_dict())
    assert opt.param_groups[0]["lr"] == lr == pytest.approx(0.5 * schedule_factor("cosine", 4, 10, 2, 0))


@pytest.mark.parametrize("name", ["timm:test_vit", "timm:test_convnext", "tv:mobilenet_v3_small", "hf-tiny"])
def test_partial_on_every_source(name, tiny_hf_dir):
    model = zoo.create_model(f"hf:{tiny_hf_dir('vit')}" if name == "hf-tiny" else name, num_classes=3, pretrained=False)
    s = strat(model, name="partial", unfreeze_stages=1)
    s.apply(epochs=1)
    last_stage = s.groups[-2].name
    trainable = {n for n, p in model.model.named_parameters() if p.requires_grad}
    assert trainable == set(s.groups[-2].names) | set(s.groups[-1].names), last_stage
