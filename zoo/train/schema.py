"""The recipe schema: one typed dataclass per YAML section, defaults included, and the rules on values.

The shape (names, types, defaults, allowed values) and the value rules (ranges, impossible combinations)
live here; reading YAML, coercing values, overrides and variants live in :mod:`zoo.train.recipe`. The trainer and
the strategies read these attributes directly (``recipe.optim.lr``), so a renamed field breaks them.
``Literal[...]`` marks an enumerated field: the loader rejects any other value and lists the valid ones.
"""
from __future__ import annotations

from dataclasses import Field, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from zoo.data.transforms import PRESETS
from zoo.data.validate import ON_BAD_IMAGE
from zoo.errors import ConfigError, UnknownModelError
from zoo.registry import parse_name

# Enumerated values that a lower layer defines are read from it, so each list is written once.
StrategyName = Literal["linear_probe", "finetune", "partial", "freeze_then_unfreeze", "llrd", "lp_ft", "scratch"]
OptimizerName = Literal["adamw", "sgd"]
ScheduleName = Literal["cosine", "onecycle", "constant"]
AugmentName = Literal[PRESETS]  # type: ignore[valid-type]
MixedPrecision = Literal["auto", "no", "fp16", "bf16"]  # auto: what the device runs natively (zoo.train.precision)
OnBadImage = Literal[ON_BAD_IMAGE]  # type: ignore[valid-type]
TrackerName = Literal["tensorboard", "trackio", "wandb"]
SamplerName = Literal["random", "balanced"]
ClassWeights = Literal["none", "balanced"]
SelectBy = Literal["val_top1", "val_balanced_acc", "val_macro_f1", "val_loss"]

INTERNAL = {"internal": True}  # field metadata: bookkeeping, not a recipe key (never read from or written to YAML)


@dataclass
class ModelConfig:
    name: str = "timm:resnet50.a1_in1k"  # a zoo model name, 'source:id'
    pretrained: bool = True
    drop_path: float | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)  # passed on to zoo.create_model


@dataclass
class DataConfig:
    spec: str = "cifar10"  # a zoo.load_dataset spec
    val_size: float | int = 0.1  # fraction in (0, 1) or a count >= 1
    seed: int = 0
    image_column: str | None = None
    label_column: str | None = None
    on_bad_image: OnBadImage = "error"
    upsample: bool = True  # low-resolution images go to the model's resolution
    image_size: int | None = None  # override the model's input resolution
    augment: AugmentName = "flip-crop"
    fast: bool = True  # uint8 tensor-store fast path; false = per-sample PIL reference path
    batch_size: int = 128
    eval_batch_size: int | None = None  # None: 2 x batch_size (no gradients, so twice fits)
    num_workers: int = 2
    limit: int | None = None  # use only the first N training images (smoke runs)
    sampler: SamplerName = "random"  # balanced: every class equally likely per draw (imbalanced data; DDP-safe)


@dataclass
class StrategyConfig:
    name: StrategyName = "finetune"
    unfreeze_stages: int = 1  # partial: last k stages + head; freeze_then_unfreeze: stages at the switch (-1 = all)
    unfreeze_epoch: int = 1  # freeze_then_unfreeze: 0-based epoch at which they unfreeze
    llrd_decay: float = 0.75  # llrd: lr multiplier per group going down from the head, in (0, 1]
    probe_epochs: int = 3  # lp_ft: head-only epochs before the fine-tune
    cache_features: bool = True  # linear_probe: extract features once, train the head on the cache
    head_lr_scale: float = 1.0  # lr multiplier for the head relative to optim.lr


@dataclass
class OptimConfig:
    name: OptimizerName = "adamw"
    lr: float = 1.0e-3
    weight_decay: float = 0.05
    momentum: float = 0.9  # sgd
    betas: tuple[float, float] = (0.9, 0.999)  # adamw


@dataclass
class ScheduleConfig:
    name: ScheduleName = "cosine"
    warmup_epochs: float = 0.0
    min_lr: float = 0.0


@dataclass
class TrainConfig:
    epochs: int = 10
    grad_accum: int = 1
    clip_grad: float | None = None  # max gradient norm
    label_smoothing: float = 0.0
    mixup: float = 0.0
    cutmix: float = 0.0
    ema: bool = False
    ema_decay: float = 0.999
    mixed_precision: MixedPrecision = "auto"
    channels_last: bool = False
    compile: bool = False
    seed: int = 0
    early_stopping: int | None = None  # patience in epochs
    select_best: bool = True  # the final model is the best validation epoch
    select_by: SelectBy = "val_top1"  # the validation metric that picks the best epoch (and early stopping)
    class_weights: ClassWeights = "none"  # balanced: loss weight n / (k * n_class) per class (imbalanced data)
    save_every_steps: int = 0  # resumable state every N optimizer steps (0 = only at epoch ends)
    keep_last: int = 2  # resumable states kept
    log_every: int = 20


@dataclass
class OutputConfig:
    dir: str = "runs"  # run directory = <dir>/<name>
    trackers: list[TrackerName] = field(default_factory=list)  # accelerate trackers


@dataclass
class HubConfig:
    repo_id: str | None = None
    private: bool = False
    revision: str | None = None
    push_checkpoints: bool = False
    license: str | None = None  # model card license (an SPDX id such as apache-2.0); default: the weights' own


@dataclass
class Recipe:
    """A whole training run, as written in a recipe file (see ``recipes/``)."""

    name: str | None = None  # run name; the loader fills in the recipe file's stem
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    resume: str = "auto"  # auto | never | <path of a state folder>
    hub: HubConfig = field(default_factory=HubConfig)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)  # {variant: {dotted.key: value}}
    # bookkeeping, not recipe keys: where the recipe came from, and what expand_variants needs to rebuild variants
    source_path: Path | None = field(default=None, compare=False, repr=False, metadata=INTERNAL)
    base_raw: dict[str, Any] | None = field(default=None, compare=False, repr=False, metadata=INTERNAL)
    overrides: tuple[str, ...] = field(default=(), compare=False, repr=False, metadata=INTERNAL)

    def to_dict(self) -> dict[str, Any]:
        """Plain, resolved, YAML/JSON-able mapping (what a run directory saves); ``load_recipe(r.to_dict()) == r``."""
        return _plain(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)


def recipe_fields(cls: type) -> list[Field[Any]]:
    """The fields of a section that are recipe keys (bookkeeping fields left out)."""
    return [f for f in fields(cls) if not f.metadata.get("internal")]


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in recipe_fields(type(value))}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# ---- the rules: each value in its range, and only combinations the trainer can honour ---------------------------
def _need(ok: bool, key: str, value: Any, expectation: str) -> None:
    if not ok:
        raise ConfigError(f"recipe key '{key}' must be {expectation}, got {value!r}.")


def _check_name(key: str, value: str | None) -> None:
    _need(bool(value) and "/" not in value and "\\" not in value and value not in {".", ".."}, key, value,
          "a non-empty name without '/' (it names the run directory)")


def check_values(r: Recipe) -> None:
    """Each value in its own range."""
    _check_name("name", r.name)
    try:
        _, model_id = parse_name(r.model.name)
    except UnknownModelError:  # empty or not a string
        model_id = ""
    _need(bool(model_id.strip()) and not any(c.isspace() for c in r.model.name.strip()), "model.name", r.model.name,
          "a zoo model name 'source:id' such as 'timm:resnet50.a1_in1k' or 'hf:facebook/dinov2-small'")
    _need(r.model.drop_path is None or 0 <= r.model.drop_path < 1, "model.drop_path", r.model.drop_path,
          "in [0, 1) or null")
    d = r.data
    _need(bool(d.spec.strip()), "data.spec", d.spec, "a dataset spec such as 'cifar10' or 'imagefolder:PATH'")
    _need(d.val_size >= 1 if isinstance(d.val_size, int) else 0 < d.val_size < 1, "data.val_size", d.val_size,
          "a fraction in (0, 1) or a count >= 1")
    _need(d.image_size is None or d.image_size >= 1, "data.image_size", d.image_size, ">= 1 or null")
    _need(d.batch_size >= 1, "data.batch_size", d.batch_size, ">= 1")
    _need(d.eval_batch_size is None or d.eval_batch_size >= 1, "data.eval_batch_size", d.eval_batch_size,
          ">= 1 or null")
    _need(d.num_workers >= 0, "data.num_workers", d.num_workers, ">= 0")
    _need(d.limit is None or d.limit >= 1, "data.limit", d.limit, ">= 1 or null")
    s = r.strategy
    _need(0 < s.llrd_decay <= 1, "strategy.llrd_decay", s.llrd_decay, "in (0, 1] (1 = no decay)")
    _need(s.head_lr_scale > 0, "strategy.head_lr_scale", s.head_lr_scale, "> 0")
    o = r.optim
    _need(o.lr > 0, "optim.lr", o.lr, "> 0")
    _need(o.weight_decay >= 0, "optim.weight_decay", o.weight_decay, ">= 0")
    _need(0 <= o.momentum < 1, "optim.momentum", o.momentum, "in [0, 1)")
    _need(all(0 <= b < 1 for b in o.betas), "optim.betas", list(o.betas), "two numbers in [0, 1)")
    _need(r.schedule.warmup_epochs >= 0, "schedule.warmup_epochs", r.schedule.warmup_epochs, ">= 0")
    _need(0 <= r.schedule.min_lr <= o.lr, "schedule.min_lr", r.schedule.min_lr, f"in [0, optim.lr={o.lr}]")
    t = r.train
    _need(t.epochs >= 1, "train.epochs", t.epochs, ">= 1")
    _need(t.grad_accum >= 1, "train.grad_accum", t.grad_accum, ">= 1")
    _need(t.clip_grad is None or t.clip_grad > 0, "train.clip_grad", t.clip_grad, "> 0 or null")
    _need(0 <= t.label_smoothing < 1, "train.label_smoothing", t.label_smoothing, "in [0, 1)")
    _need(t.mixup >= 0, "train.mixup", t.mixup, ">= 0 (the Beta distribution's alpha; 0 = off)")
    _need(t.cutmix >= 0, "train.cutmix", t.cutmix, ">= 0 (the Beta distribution's alpha; 0 = off)")
    _need(0 < t.ema_decay < 1, "train.ema_decay", t.ema_decay, "in (0, 1)")
    _need(t.early_stopping is None or t.early_stopping >= 1, "train.early_stopping", t.early_stopping,
          "a patience >= 1 epoch or null")
    _need(t.save_every_steps >= 0, "train.save_every_steps", t.save_every_steps, ">= 0 (0 = only at epoch ends)")
    _need(t.keep_last >= 1, "train.keep_last", t.keep_last, ">= 1")
    _need(t.log_every >= 1, "train.log_every", t.log_every, ">= 1")
    _need(bool(r.output.dir.strip()), "output.dir", r.output.dir, "a directory path")
    _need(bool(r.resume.strip()), "resume", r.resume, "auto, never or the path of a state folder")
    if r.hub.repo_id is not None:
        from huggingface_hub.utils import HFValidationError, validate_repo_id

        try:
            validate_repo_id(r.hub.repo_id)
        except HFValidationError:
            _need(False, "hub.repo_id", r.hub.repo_id, "a Hub repository id such as 'user/resnet50-cifar10'")
    for variant in r.variants:
        _check_name(f"variants.{variant}", variant)


def check_combinations(r: Recipe) -> None:
    """Keys that are each fine alone but that the trainer cannot honour together."""
    s, t, epochs = r.strategy, r.train, r.train.epochs
    if s.name == "linear_probe" and s.cache_features:
        clash = {"data.augment": (r.data.augment, "none")} if r.data.augment != "none" else {}
        clash |= {f"train.{k}": (getattr(t, k), 0) for k in ("mixup", "cutmix") if getattr(t, k) > 0}
        if clash:
            raise ConfigError(
                "strategy.name=linear_probe with strategy.cache_features=true trains the head on one cached, "
                "augmentation-free pass of features, which conflicts with "
                f"{' and '.join(f'{k}={v}' for k, (v, _) in clash.items())}. "
                f"Set {' and '.join(f'{k}={ok}' for k, (_, ok) in clash.items())}, or strategy.cache_features=false "
                "to probe with augmentation (slower: the backbone runs every epoch).")
    if s.name == "partial" and s.unfreeze_stages < 1:
        raise ConfigError(f"strategy.name=partial trains the last strategy.unfreeze_stages stages and the head, "
                          f"so strategy.unfreeze_stages must be >= 1, got {s.unfreeze_stages}. "
                          "Use strategy.name=linear_probe to train the head alone.")
    if s.name == "freeze_then_unfreeze":
        if s.unfreeze_stages == 0 or s.unfreeze_stages < -1:
            raise ConfigError(f"strategy.name=freeze_then_unfreeze needs strategy.unfreeze_stages >= 1 "
                              f"(or -1 for all stages), got {s.unfreeze_stages}.")
        if not 1 <= s.unfreeze_epoch < epochs:
            raise ConfigError(
                f"strategy.name=freeze_then_unfreeze trains the head alone until strategy.unfreeze_epoch, so it "
                f"must be in [1, train.epochs), but strategy.unfreeze_epoch={s.unfreeze_epoch} and "
                f"train.epochs={epochs}. Lower strategy.unfreeze_epoch or raise train.epochs.")
    if s.name == "lp_ft" and not 1 <= s.probe_epochs < epochs:
        raise ConfigError(
            f"strategy.name=lp_ft probes for strategy.probe_epochs and fine-tunes for the rest of train.epochs, "
            f"so it needs 1 <= strategy.probe_epochs < train.epochs, but strategy.probe_epochs={s.probe_epochs} "
            f"and train.epochs={epochs}. Lower strategy.probe_epochs or raise train.epochs.")
    if r.schedule.warmup_epochs >= epochs and r.schedule.warmup_epochs > 0:
        raise ConfigError(f"schedule.warmup_epochs={r.schedule.warmup_epochs} must be less than "
                          f"train.epochs={epochs}: the run would end before the warmup does.")
    if r.hub.push_checkpoints and not r.hub.repo_id:
        raise ConfigError("hub.push_checkpoints=true needs hub.repo_id, the Hub repository to push to. "
                          "Set hub.repo_id=user/name, or hub.push_checkpoints=false.")
