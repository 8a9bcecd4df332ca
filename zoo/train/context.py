"""Everything one run trains with, built once, in the order of Accelerate's ``complete_cv_example.py``:
accelerator, seed, data, model, loaders, loss, optimizer, ``prepare``, schedule. The loop, the resume and the
finish all take the :class:`RunContext`; nothing else carries run state.

Two ways to train share it: end to end (the prepared model over image batches) and a linear probe on
cached features (the prepared head over a tensor of features extracted once). Each fills the same fields:
``net`` is what the optimizer trains, ``prepare_batch`` turns a loader batch into its input, and
``evaluate(split)`` judges the weights the run would ship (``shipped``: the EMA copy when EMA is on).
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from timm.data import Mixup
from timm.utils import ModelEmaV3
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from zoo.backbones.base import Backbone
from zoo.data import load_dataset
from zoo.data.balance import loss_weights, train_sampler
from zoo.data.dataset import ImageDataset
from zoo.data.loaders import Loaders, build_loaders
from zoo.data.mixing import build_mixup, check_even_batch
from zoo.inference import CPU_EVAL_BATCH_SIZE
from zoo.metrics import classification_metrics
from zoo.registry import create_model
from zoo.train.accelerator import flat_scalars, new_accelerator
from zoo.train.feature_cache import FeatureCache, feature_key
from zoo.train.features import extract_features
from zoo.train.layout import RunLayout
from zoo.train.losses import build_loss
from zoo.train.progress import Progress
from zoo.train.schedule import GroupLRScheduler
from zoo.train.schema import Recipe
from zoo.train.state import clear_states
from zoo.train.strategies import Strategy

log = logging.getLogger("zoo.train")

Metrics = dict[str, Any]


@dataclass(frozen=True)
class Console:
    """The run's lines on the terminal, from the main process only, prefixed with the run's name."""

    name: str
    main: bool

    def say(self, message: str) -> None:
        if self.main:
            tqdm.write(f"[{self.name}] {message}")

    def warn(self, message: str) -> None:
        """Through zoo.train's logger only, as the precision warning: `zoo train` shows that logger on stderr,
        and a script sees it through logging (Python's last-resort handler when it set none up). Also writing
        the line here showed every warning twice."""
        if self.main:
            log.warning(f"[{self.name}] {message}")


@dataclass
class RunContext:
    """One run's objects. ``model`` is the unwrapped backbone (what is saved); ``net`` the prepared module the
    optimizer steps (the DDP-wrapped model, or the head of a cached probe)."""

    recipe: Recipe
    layout: RunLayout
    accelerator: Accelerator
    console: Console
    data: ImageDataset
    model: Backbone
    strategy: Strategy
    loaders: Loaders
    mixup: Mixup | None  # None when neither mixup nor cutmix is on
    loss: nn.Module
    net: nn.Module
    optimizer: torch.optim.Optimizer
    train_loader: DataLoader[Any]
    prepare_batch: Callable[[torch.Tensor], torch.Tensor]
    evaluate: Callable[[str], Metrics]
    schedule: GroupLRScheduler
    ema: ModelEmaV3 | None
    shipped: nn.Module  # the weights the run ships and judges epochs by: the EMA copy when EMA is on
    progress: Progress
    started: float  # perf_counter() when the run began
    extract_seconds: float = 0.0  # a cached probe's feature extraction

    @property
    def steps_per_epoch(self) -> int:
        return steps_per_epoch(self.train_loader, self.recipe.train.grad_accum)


def steps_per_epoch(train_loader: DataLoader[Any], grad_accum: int) -> int:
    """Optimizer steps per epoch: batches / accumulation, rounded up (the last partial group steps too)."""
    return max(math.ceil(len(train_loader) / grad_accum), 1)


@dataclass
class _Trainable:
    """What one way to train gives the context: its prepared module, optimizer and loader, and its judge."""

    net: nn.Module
    optimizer: torch.optim.Optimizer
    train_loader: DataLoader[Any]
    prepare_batch: Callable[[torch.Tensor], torch.Tensor]
    evaluate: Callable[[str], Metrics]
    shipped: nn.Module
    ema: ModelEmaV3 | None = None
    extract_seconds: float = 0.0


def build_context(recipe: Recipe, layout: RunLayout, started: float) -> RunContext:
    """Accelerator, run folder, seed, data, model with its new head, strategy, loaders, loss; then the way to
    train (prepared by accelerate) and its schedule. The order is fixed: it decides the random streams."""
    r = recipe
    acc = new_accelerator(r, layout.root)
    console = Console(cast(str, r.name), acc.is_main_process)  # load_recipe fills the name in
    if acc.num_processes > 1:  # one write per line: ranks share stdout
        sys.stdout.write(f"[{r.name}] rank {acc.process_index} of {acc.num_processes}\n")
        sys.stdout.flush()
    if acc.is_main_process:
        if r.resume == "never":
            clear_states(layout)
            layout.metrics.unlink(missing_ok=True)
            layout.best_weights.unlink(missing_ok=True)
        layout.root.mkdir(parents=True, exist_ok=True)
        layout.recipe.write_text(r.to_yaml())
    acc.wait_for_everyone()
    set_seed(r.train.seed)
    if acc.device.type == "cpu":
        # Pretrained weights push some activations into denormal floats, which x86 CPUs compute
        # very slowly: flushing them to zero measured 1.8x faster on EfficientNet-Lite0 here.
        torch.set_flush_denormal(True)
    with acc.main_process_first():
        data = load_dataset(
            r.data.spec,
            val_size=r.data.val_size,
            seed=r.data.seed,
            image_column=r.data.image_column,
            label_column=r.data.label_column,
            on_bad_image=r.data.on_bad_image,
            run_dir=layout.root,
            exclude=r.data.exclude,
        )
    if data.exclude_file:  # the run says what data.exclude dropped (listed in RUN_DIR/excluded.txt)
        console.say(f"data.exclude: dropped {len(data.excluded)} image(s) listed in {data.exclude_file}")
    if r.data.limit:
        train = data.splits["train"]
        data.splits["train"] = train.shuffle(seed=r.data.seed).select(range(min(r.data.limit, len(train))))
    model = build_model(r, data)
    strategy = Strategy(model, r.strategy)
    strategy.apply(r.train.epochs)
    with acc.main_process_first():
        loaders = build_loaders(
            data,
            model.data_config,
            r.data,
            layout.root,
            seed=r.data.seed,
            warn=console.warn,
            # a CPU evaluates faster in small batches (zoo.inference.CPU_EVAL_BATCH_SIZE); in a throwaway
            # measurement the photo job's first validation took 6.1 s at 64 images a batch and 2.4 s at 16
            default_eval_batch=CPU_EVAL_BATCH_SIZE if acc.device.type == "cpu" else None,
        )
    mixup = build_mixup(r.train.mixup, r.train.cutmix, r.train.label_smoothing, data.num_classes)
    check_even_batch(mixup, cast(int, loaders.train.batch_size))  # a batched loader: never None
    weights = loss_weights(data["train"]["label"], data.num_classes, r.train.class_weights)
    loss = build_loss(mixup, r.train.label_smoothing, weights).to(acc.device)
    if r.train.channels_last:
        model.to(memory_format=torch.channels_last)

    way = _cached_probe if strategy.uses_feature_cache else _end_to_end
    t = way(r, acc, console, layout, data, model, strategy, loaders)
    steps = steps_per_epoch(t.train_loader, r.train.grad_accum)
    schedule = GroupLRScheduler(
        t.optimizer,
        r.schedule.name,
        r.optim.lr,
        steps * r.train.epochs,
        int(r.schedule.warmup_epochs * steps),
        r.schedule.min_lr,
    )
    acc.register_for_checkpointing(schedule)
    if r.output.trackers:
        acc.init_trackers(r.name, config=flat_scalars(r.to_dict()))
    return RunContext(
        recipe=r,
        layout=layout,
        accelerator=acc,
        console=console,
        data=data,
        model=model,
        strategy=strategy,
        loaders=loaders,
        mixup=mixup,
        loss=loss,
        net=t.net,
        optimizer=t.optimizer,
        train_loader=t.train_loader,
        prepare_batch=t.prepare_batch,
        evaluate=t.evaluate,
        schedule=schedule,
        ema=t.ema,
        shipped=t.shipped,
        progress=Progress(),
        started=started,
        extract_seconds=t.extract_seconds,
    )


def build_model(r: Recipe, data: ImageDataset) -> Backbone:
    """The recipe's backbone with a new head for the data's classes, and the preprocessing the run uses."""
    kwargs = dict(r.model.kwargs)
    if r.model.drop_path is not None:
        kwargs["drop_path_rate"] = r.model.drop_path
    model = create_model(r.model.name, pretrained=r.model.pretrained and r.strategy.name != "scratch", **kwargs)
    model.reset_classifier(data.num_classes, label_names=data.label_names)
    if r.data.image_size:
        model.data_config["input_size"] = (3, r.data.image_size, r.data.image_size)
    if not r.data.upsample:  # saved with the model, so zoo eval / predict preprocess as the run did
        model.data_config["upsample"] = False
    return model


def build_optimizer(r: Recipe, strategy: Strategy) -> torch.optim.Optimizer:
    o = r.optim
    groups = strategy.param_groups(o.weight_decay)
    if o.name == "sgd":
        return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, nesterov=o.momentum > 0)
    return torch.optim.AdamW(groups, lr=o.lr, betas=o.betas)


# ---- the two ways to train -----------------------------------------------------------------------------
def _end_to_end(
    r: Recipe,
    acc: Accelerator,
    console: Console,
    layout: RunLayout,
    data: ImageDataset,
    model: Backbone,
    strategy: Strategy,
    loaders: Loaders,
) -> _Trainable:
    optimizer = build_optimizer(r, strategy)
    train_tf = loaders.train_transform.to(acc.device)
    eval_tf = loaders.eval_transform.to(acc.device)
    net = torch.compile(model) if r.train.compile else model
    net, optimizer, train_loader = acc.prepare(net, optimizer, loaders.train)
    evals = {k: acc.prepare(v) for k, v in loaders.eval.items()}
    ema = None
    if r.train.ema:
        ema = ModelEmaV3(model, decay=r.train.ema_decay, device=acc.device)
        acc.register_for_checkpointing(ema)
    # the one place that decides: the weights the run ships, saves as best and judges epochs by
    shipped: nn.Module = ema.module if ema is not None else model

    def prepare_batch(x: torch.Tensor) -> torch.Tensor:
        x = train_tf(x)
        return x.contiguous(memory_format=torch.channels_last) if r.train.channels_last else x

    def evaluate(split: str) -> Metrics:
        return evaluate_loader(acc, lambda x: shipped(eval_tf(x)), evals[split], shipped, data.num_classes)

    return _Trainable(net, optimizer, train_loader, prepare_batch, evaluate, shipped, ema)


def _cached_probe(
    r: Recipe,
    acc: Accelerator,
    console: Console,
    layout: RunLayout,
    data: ImageDataset,
    model: Backbone,
    strategy: Strategy,
    loaders: Loaders,
) -> _Trainable:
    """Linear probe on cached features: extract once, then each epoch is a pass over a tensor."""
    model = model.to(acc.device)
    eval_tf = loaders.eval_transform.to(acc.device)
    t0 = time.perf_counter()
    # on disk beside the image stores, shared with `zoo rank` (same model weights, split and preprocessing)
    cache = FeatureCache(layout.feature_cache)

    def features(split: str, loader: DataLoader[Any]) -> tuple[torch.Tensor, torch.Tensor]:
        key = feature_key(
            model,
            data[split],
            model.data_config,
            fast=r.data.fast,
            upsample=r.data.upsample,
            precision=str(acc.mixed_precision),
        )  # as resolved: "auto" is not a precision
        hit = cache.get(key)
        if hit is not None:
            console.say(f"features {split}: read from the cache {cache.path(key)}")
            return hit
        out = extract_features(model, acc.prepare(loader), acc, eval_tf, desc=f"features {split}")
        if acc.is_main_process:
            cache.put(key, *out)
        return out

    feats, labels = features("train", loaders.train_plain)
    cached = {split: features(split, loader) for split, loader in loaders.eval.items()}
    extract_seconds = time.perf_counter() - t0
    optimizer = build_optimizer(r, strategy)
    generator = torch.Generator().manual_seed(r.data.seed)
    sampler = train_sampler(labels, r.data.sampler, r.data.seed)
    loader = DataLoader(
        TensorDataset(feats, labels),
        batch_size=r.data.batch_size,
        sampler=sampler,
        shuffle=sampler is None,
        generator=generator,
    )
    head, optimizer, loader = acc.prepare(model.get_classifier(), optimizer, loader)

    def evaluate(split: str) -> Metrics:
        f, y = cached[split]
        with torch.no_grad():
            logits = torch.cat([head(chunk.to(acc.device)).float().cpu() for chunk in torch.split(f, 4096)])
        return classification_metrics(logits, y, data.num_classes, prefix="")

    return _Trainable(head, optimizer, loader, lambda x: x, evaluate, model, None, extract_seconds)


@torch.no_grad()
def evaluate_loader(
    acc: Accelerator,
    predict: Callable[[torch.Tensor], torch.Tensor],
    loader: DataLoader[Any],
    module: nn.Module,
    num_classes: int,
) -> Metrics:
    """Metrics of ``predict`` over a prepared loader, gathered from every process (``module`` in eval mode)."""
    was = module.training
    module.eval()
    logits, labels = [], []
    for x, y in loader:
        with acc.autocast():
            out = predict(x)
        out, y = acc.gather_for_metrics((out.float().contiguous(), y))
        logits.append(out.cpu())
        labels.append(y.cpu())
    module.train(was)
    return classification_metrics(torch.cat(logits), torch.cat(labels), num_classes)
