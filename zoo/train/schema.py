"""The recipe schema: one pydantic model per YAML section, with defaults, ranges and the cross-field rules.

The trainer reads these attributes directly (``recipe.optim.lr``): a renamed field breaks it. A range sits on its
field (``Field(ge=1)``), its ``description`` says in words what the value must be (zoo's error line quotes it),
and the rules across sections are one model validator. YAML, overrides, variants, error lines: zoo.train.recipe.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeAlias

import yaml
from huggingface_hub.utils import HFValidationError, validate_repo_id
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, model_validator
from pydantic_core import PydanticCustomError

from zoo.data.transforms import PRESETS
from zoo.data.validate import ON_BAD_IMAGE
from zoo.errors import ConfigError, UnknownModelError
from zoo.registry import parse_name

# Enumerated values that a lower layer defines are read from it, so each list is written once.
StrategyName = Literal["linear_probe", "finetune", "partial", "freeze_then_unfreeze", "llrd", "lp_ft", "scratch"]
OptimizerName = Literal["adamw", "sgd"]
ScheduleName = Literal["cosine", "onecycle", "constant"]
AugmentName = Literal[PRESETS]  # type: ignore[valid-type]
OnBadImage = Literal[ON_BAD_IMAGE]  # type: ignore[valid-type]
TrackerName = Literal["tensorboard", "trackio", "wandb"]
SamplerName = Literal["random", "balanced"]
ClassWeights = Literal["none", "balanced"]
SelectBy = Literal["val_top1", "val_balanced_acc", "val_macro_f1", "val_loss"]
TTA = Literal["none", "flip", "five_crop", "ten_crop"]
# YAML 1.1 reads a bare `no` as false
MixedPrecision = Annotated[Literal["auto", "no", "fp16", "bf16"], BeforeValidator(lambda v: "no" if v is False else v)]
ALPHA, NONBLANK = "the Beta distribution's alpha; 0 = off", r"\S"
RUN_NAME = "a non-empty name without '/' (it names the run directory)"


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):  # pydantic's lax mode reads true as 1; in a recipe it is a mistake
        raise PydanticCustomError("bool_for_number", "a bool is not a number")
    return value


Int: TypeAlias = Annotated[int, BeforeValidator(_no_bool)]
Float: TypeAlias = Annotated[float, BeforeValidator(_no_bool)]


def check(test: Callable[[Any], object], *errors: type[Exception]) -> AfterValidator:
    """A value rule: ``test`` returns False or raises one of ``errors`` for a bad value, and the error line quotes
    the field's description. Null passes (optional fields)."""

    def run(value: Any) -> Any:
        with contextlib.suppress(*errors):
            if value is None or test(value) is not False:
                return value
        raise ValueError("out of range")

    return AfterValidator(run)


def is_run_name(value: str) -> bool:
    return bool(value) and "/" not in value and "\\" not in value and value not in {".", ".."}


class Section(BaseModel):
    # unknown keys are errors; '3e-4' (text to YAML 1.1) is a number; nan is not; `revision: 2024` is text
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, coerce_numbers_to_str=True)


class ModelConfig(Section):
    name: Annotated[
        str,
        check(lambda n: bool(parse_name(n)[1].strip()) and not any(c.isspace() for c in n.strip()), UnknownModelError),
    ] = Field(
        "timm:resnet50.a1_in1k",
        description=("a zoo model name 'source:id' such as 'timm:resnet50.a1_in1k' or 'hf:facebook/dinov2-small'"),
    )
    pretrained: bool = True
    drop_path: Float | None = Field(None, ge=0, lt=1)
    kwargs: dict[str, Any] = {}  # passed on to zoo.create_model


class DataConfig(Section):
    spec: str = Field("cifar10", pattern=NONBLANK, description="a dataset spec such as 'cifar10' or 'imagefolder:PATH'")
    val_size: Annotated[Int | Float, check(lambda v: v >= 1 if isinstance(v, int) else 0 < v < 1)] = Field(
        0.1, description="a fraction in (0, 1) or a count >= 1"
    )
    seed: Int = 0
    image_column: str | None = None
    label_column: str | None = None
    on_bad_image: OnBadImage = "error"
    upsample: bool = True  # low-resolution images go to the model's resolution
    image_size: Int | None = Field(None, ge=1)  # override the model's input resolution
    augment: AugmentName = "flip-crop"
    fast: bool = True  # uint8 tensor-store fast path; false = per-sample PIL reference path
    batch_size: Int = Field(128, ge=1)
    # None: 2 x batch_size on a GPU (no gradients, so twice fits); 16 on a CPU (zoo.inference.CPU_EVAL_BATCH_SIZE)
    eval_batch_size: Int | None = Field(None, ge=1)
    num_workers: Int = Field(2, ge=0)
    limit: Int | None = Field(None, ge=1)  # use only the first N training images (smoke runs)
    sampler: SamplerName = "random"  # balanced: every class equally likely per draw (imbalanced data; DDP-safe)
    exclude: str | None = None  # a file of image paths/ids to drop from every split (e.g. zoo data doctor's CSV)


class StrategyConfig(Section):
    name: StrategyName = "finetune"
    unfreeze_stages: Int = 1  # partial: last k stages + head; freeze_then_unfreeze: stages at the switch (-1 = all)
    unfreeze_epoch: Int = 1  # freeze_then_unfreeze: 0-based epoch at which they unfreeze
    llrd_decay: Float = Field(0.75, gt=0, le=1, description="1 = no decay")  # lr multiplier per group below the head
    probe_epochs: Int = 3  # lp_ft: head-only epochs before the fine-tune
    cache_features: bool = True  # linear_probe: extract features once, train the head on the cache
    head_lr_scale: Float = Field(1.0, gt=0)  # lr multiplier for the head relative to optim.lr


class OptimConfig(Section):
    name: OptimizerName = "adamw"
    lr: Float = Field(1.0e-3, gt=0)
    weight_decay: Float = Field(0.05, ge=0)
    momentum: Float = Field(0.9, ge=0, lt=1)  # sgd
    betas: Annotated[tuple[Float, Float], check(lambda b: all(0 <= x < 1 for x in b))] = Field(
        (0.9, 0.999), description="two numbers in [0, 1)"
    )  # adamw


class ScheduleConfig(Section):
    name: ScheduleName = "cosine"
    warmup_epochs: Float = Field(0.0, ge=0)
    min_lr: Float = 0.0  # in [0, optim.lr]: Recipe checks it


class TrainConfig(Section):
    epochs: Int = Field(10, ge=1)
    grad_accum: Int = Field(1, ge=1)
    clip_grad: Float | None = Field(None, gt=0)  # max gradient norm
    label_smoothing: Float = Field(0.0, ge=0, lt=1)
    mixup: Float = Field(0.0, ge=0, description=ALPHA)
    cutmix: Float = Field(0.0, ge=0, description=ALPHA)
    ema: bool = False
    ema_decay: Float = Field(0.999, gt=0, lt=1)
    mixed_precision: MixedPrecision = "auto"
    channels_last: bool = False
    compile: bool = False
    seed: Int = 0
    early_stopping: Annotated[Int | None, check(lambda v: v >= 1)] = Field(
        None, description="a patience >= 1 epoch or null"
    )
    select_best: bool = True  # the final model is the best validation epoch
    select_by: SelectBy = "val_top1"  # the validation metric that picks the best epoch (and early stopping)
    class_weights: ClassWeights = "none"  # balanced: loss weight n / (k * n_class) per class (imbalanced data)
    save_every_steps: Int = Field(0, ge=0, description="0 = only at epoch ends")  # a resumable state every N steps
    keep_last: Int = Field(2, ge=1)  # resumable states kept
    log_every: Int = Field(20, ge=1)
    calibrate: bool = True  # fit a temperature on the validation split after training


class EvalConfig(Section):
    tta: TTA = "none"  # test-time augmentation at evaluation


class OutputConfig(Section):
    dir: str = Field("runs", pattern=NONBLANK, description="a directory path")  # run directory = <dir>/<name>
    # accelerate trackers; `trackers: tensorboard` means a list of one
    trackers: Annotated[list[TrackerName], BeforeValidator(lambda v: [v] if isinstance(v, str) else v)] = []


class HubConfig(Section):
    repo_id: Annotated[str | None, check(validate_repo_id, HFValidationError)] = Field(
        None, description="a Hub repository id such as 'user/resnet50-cifar10'"
    )
    private: bool = False
    revision: str | None = None
    push_checkpoints: bool = False
    license: str | None = None  # model card license (an SPDX id such as apache-2.0); default: the weights' own


class Recipe(Section):
    """A whole training run, as written in a recipe file (see ``recipes/``)."""

    name: Annotated[str | None, check(is_run_name)] = Field(None, description=RUN_NAME)  # the loader fills it in
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    strategy: StrategyConfig = StrategyConfig()
    optim: OptimConfig = OptimConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    output: OutputConfig = OutputConfig()
    resume: str = Field("auto", pattern=NONBLANK, description="auto, never or the path of a state folder")
    hub: HubConfig = HubConfig()
    # {variant: {dotted.key: value}}; a variant left empty in YAML (null) changes nothing
    variants: dict[str, Annotated[dict[str, Any], BeforeValidator(lambda v: {} if v is None else v)]] = {}
    # bookkeeping, not recipe keys: where it came from, and what expand_variants needs to rebuild the variants
    _source_path: Path | None = PrivateAttr(None)
    _base_raw: dict[str, Any] | None = PrivateAttr(None)
    _overrides: tuple[str, ...] = PrivateAttr(())

    @model_validator(mode="after")
    def _combinations(self) -> Recipe:
        """Keys that are each fine alone but that the trainer cannot honour together."""
        s, t, epochs, sched = self.strategy, self.train, self.train.epochs, self.schedule
        if s.name == "scratch":
            if self.model.pretrained and "pretrained" in self.model.model_fields_set:
                raise ConfigError(
                    "strategy.name=scratch trains the same architecture from random initialisation, but "
                    "model.pretrained=true asks for pretrained weights. Set model.pretrained=false (or leave it "
                    "out: scratch implies false), or choose another strategy, e.g. strategy.name=finetune."
                )
            self.model.pretrained = False
        if not 0 <= sched.min_lr <= self.optim.lr:
            raise ConfigError(
                f"recipe key 'schedule.min_lr' must be in [0, optim.lr={self.optim.lr}], got {sched.min_lr!r}."
            )
        for bad in (v for v in self.variants if not is_run_name(v)):
            raise ConfigError(f"recipe key 'variants.{bad}' must be {RUN_NAME}, got {bad!r}.")
        if s.name == "linear_probe" and s.cache_features:
            pairs = [
                ("data.augment", self.data.augment, "none"),
                ("train.mixup", t.mixup, 0),
                ("train.cutmix", t.cutmix, 0),
            ]  # (key, value, the value that works)
            clash = {k: (v, ok) for k, v, ok in pairs if v != ok}
            if clash:
                raise ConfigError(
                    "strategy.name=linear_probe with strategy.cache_features=true trains the head on one cached, "
                    "augmentation-free pass of features, which conflicts with "
                    f"{' and '.join(f'{k}={v}' for k, (v, _) in clash.items())}. Set "
                    f"{' and '.join(f'{k}={ok}' for k, (_, ok) in clash.items())}, or strategy.cache_features=false "
                    "to probe with augmentation (slower: the backbone runs every epoch)."
                )
        if s.name == "partial" and s.unfreeze_stages < 1:
            raise ConfigError(
                f"strategy.name=partial trains the last strategy.unfreeze_stages stages and the head, "
                f"so strategy.unfreeze_stages must be >= 1, got {s.unfreeze_stages}. "
                "Use strategy.name=linear_probe to train the head alone."
            )
        if s.name == "freeze_then_unfreeze" and (s.unfreeze_stages == 0 or s.unfreeze_stages < -1):
            raise ConfigError(
                f"strategy.name=freeze_then_unfreeze needs strategy.unfreeze_stages >= 1 "
                f"(or -1 for all stages), got {s.unfreeze_stages}."
            )
        if s.name == "freeze_then_unfreeze" and not 1 <= s.unfreeze_epoch < epochs:
            raise ConfigError(
                f"strategy.name=freeze_then_unfreeze trains the head alone until strategy.unfreeze_epoch, so it "
                f"must be in [1, train.epochs), but strategy.unfreeze_epoch={s.unfreeze_epoch} and "
                f"train.epochs={epochs}. Lower strategy.unfreeze_epoch or raise train.epochs."
            )
        if s.name == "lp_ft" and not 1 <= s.probe_epochs < epochs:
            raise ConfigError(
                f"strategy.name=lp_ft probes for strategy.probe_epochs and fine-tunes for the rest of train.epochs, "
                f"so it needs 1 <= strategy.probe_epochs < train.epochs, but strategy.probe_epochs={s.probe_epochs} "
                f"and train.epochs={epochs}. Lower strategy.probe_epochs or raise train.epochs."
            )
        if sched.warmup_epochs >= epochs and sched.warmup_epochs > 0:
            raise ConfigError(
                f"schedule.warmup_epochs={sched.warmup_epochs} must be less than "
                f"train.epochs={epochs}: the run would end before the warmup does."
            )
        if self.hub.push_checkpoints and not self.hub.repo_id:
            raise ConfigError(
                "hub.push_checkpoints=true needs hub.repo_id, the Hub repository to push to. "
                "Set hub.repo_id=user/name, or hub.push_checkpoints=false."
            )
        return self

    @property
    def source_path(self) -> Path | None:  # the recipe file, if it came from one
        return self._source_path

    @property
    def overrides(self) -> tuple[str, ...]:  # the key=value overrides it was loaded with
        return self._overrides

    def __eq__(self, other: object) -> bool:  # where a recipe came from is not part of what it says
        return isinstance(other, Recipe) and self.to_dict() == other.to_dict()

    def to_dict(self) -> dict[str, Any]:
        """Plain, resolved, YAML/JSON-able mapping (what a run directory saves); ``load_recipe(r.to_dict()) == r``."""
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        text: str = yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)
        return text
