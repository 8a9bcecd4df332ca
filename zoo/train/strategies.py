"""Transfer strategies, all defined on ``Backbone.layer_groups()`` so one recipe works on every backbone.

A strategy answers three questions for the trainer:
- which groups may ever train (set *before* ``accelerator.prepare``, so DDP registers exactly those);
- per epoch, the learning-rate scale of each group (0 = held frozen this epoch);
- whether the linear probe may train on cached features instead of running the backbone every epoch.

Groups that unfreeze later (``freeze_then_unfreeze``, ``lp_ft``) keep ``requires_grad=True`` from the start
and sit at learning rate 0 while frozen: DDP then synchronises every parameter in every step, so the switch
can't hang or silently leave a parameter unsynchronised, and an update with lr 0 leaves weights bit-exact
(AdamW's decoupled weight decay is scaled by the lr too). Their BatchNorm layers are put in eval mode while
frozen so running statistics don't drift.
"""

from __future__ import annotations

from typing import Any, get_args

from torch import nn

from zoo.backbones.base import Backbone, LayerGroup
from zoo.errors import ConfigError, did_you_mean
from zoo.train.schema import StrategyConfig, StrategyName

STRATEGIES: tuple[str, ...] = get_args(StrategyName)


class Strategy:
    """Which layer groups train, and at what learning-rate scale, epoch by epoch."""

    def __init__(self, model: Backbone, cfg: StrategyConfig) -> None:
        self.cfg = cfg
        if self.cfg.name not in STRATEGIES:
            raise ConfigError(
                f"unknown strategy {self.cfg.name!r}; choose one of {', '.join(STRATEGIES)}."
                f"{did_you_mean(self.cfg.name, STRATEGIES)}"
            )
        self.name = self.cfg.name
        self.groups: list[LayerGroup] = model.layer_groups()
        self.stem, self.stages, self.head = self.groups[0], self.groups[1:-1], self.groups[-1]
        self._model = model

    # ---- what trains ----------------------------------------------------------------------------
    def _last_stages(self, k: int) -> list[str]:
        """Names of the last k stages; k = -1 means every stage and the stem."""
        if k < 0:
            return [g.name for g in self.groups[:-1]]
        return [g.name for g in self.stages[len(self.stages) - min(k, len(self.stages)) :]] if k else []

    def trainable_groups(self, epoch: int) -> set[str]:
        """Groups whose weights change in ``epoch`` (0-based)."""
        head = {self.head.name}
        everything = {g.name for g in self.groups}
        name = self.name
        if name == "linear_probe":
            return head
        if name in ("finetune", "scratch", "llrd"):
            return everything
        if name == "partial":
            return head | set(self._last_stages(self.cfg.unfreeze_stages))
        if name == "freeze_then_unfreeze":
            return head if epoch < self.cfg.unfreeze_epoch else head | set(self._last_stages(self.cfg.unfreeze_stages))
        if name == "lp_ft":
            return head if epoch < self.cfg.probe_epochs else everything
        raise AssertionError(name)

    def ever_trainable(self, epochs: int) -> set[str]:
        return set().union(*(self.trainable_groups(e) for e in range(max(epochs, 1))))

    def apply(self, epochs: int) -> None:
        """Set requires_grad once, before ``accelerator.prepare``: True for every group that ever trains."""
        ever = self.ever_trainable(epochs)
        for g in self.groups:
            g.requires_grad_(g.name in ever)

    @property
    def uses_feature_cache(self) -> bool:
        return self.name == "linear_probe" and self.cfg.cache_features

    # ---- learning rates ---------------------------------------------------------------------------
    def base_scales(self) -> dict[str, float]:
        """Learning-rate multiplier of each group, before per-epoch freezing."""
        scales = {g.name: 1.0 for g in self.groups}
        if self.name == "llrd":
            # head 1, last stage decay, ... stem decay**len(stages): the closer to the input, the smaller
            body = self.groups[:-1]
            for depth, g in enumerate(reversed(body), start=1):
                scales[g.name] = self.cfg.llrd_decay**depth
        scales[self.head.name] = self.cfg.head_lr_scale
        return scales

    def lr_scales(self, epoch: int) -> dict[str, float]:
        live = self.trainable_groups(epoch)
        return {n: (s if n in live else 0.0) for n, s in self.base_scales().items()}

    def param_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """Optimizer parameter groups: one (or two: with/without weight decay) per layer group that ever
        trains. Biases and norm weights (1-d tensors) get no weight decay, as in timm's optimizer factory."""
        out = []
        for g in self.groups:
            params = [(n, p) for n, p in zip(g.names, g.params) if p.requires_grad]
            decay = [p for n, p in params if p.ndim > 1]
            no_decay = [p for n, p in params if p.ndim <= 1]
            for ps, wd in ((decay, weight_decay), (no_decay, 0.0)):
                if ps:
                    out.append({"params": ps, "weight_decay": wd, "group_name": g.name})
        return out

    # ---- BatchNorm of groups frozen this epoch ------------------------------------------------------
    def frozen_norm_modules(self, epoch: int) -> list[nn.Module]:
        """BatchNorm modules inside groups held at lr 0 this epoch (requires_grad is still True there,
        so Backbone.train() can't see they are frozen)."""
        live = self.trainable_groups(epoch)
        frozen_params = {id(p) for g in self.groups if g.name not in live for p in g.params}
        return [
            m
            for m in self._model.modules()
            if isinstance(m, nn.modules.batchnorm._NormBase)
            and any(id(p) in frozen_params for p in m.parameters(recurse=False))
        ]

    def summary(self, epoch: int = 0) -> list[tuple[str, int, float]]:
        """(group, params, lr scale) rows for the run log."""
        scales = self.lr_scales(epoch)
        return [(g.name, g.num_params, scales[g.name]) for g in self.groups]
