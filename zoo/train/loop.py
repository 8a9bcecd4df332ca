"""The training loop, on Accelerate: a recipe in, a run folder (see zoo.train.layout) out.

state = choose_state(recipe, layout)          resume or fresh, decided and said first (zoo.train.resume)
ctx = build_context(recipe, layout, started)  accelerator, data, model, loaders, loss, optimizer,
                                              prepare, schedule, EMA (zoo.train.context)
restore(ctx, state)                           load the state, trim metrics.jsonl
for epoch ...: train_epoch, end_epoch         this module: the step, the epoch, validation, states
finish_run(ctx)                               the shipped weights, evaluated, saved (zoo.train.finish)
"""

from __future__ import annotations

import json
import time

import torch
from tqdm.auto import tqdm

from zoo.metrics import selection_score
from zoo.train.context import RunContext, build_context
from zoo.train.finish import RunSummary, finish_run
from zoo.train.layout import RunLayout
from zoo.train.resume import choose_state, restore
from zoo.train.schema import Recipe
from zoo.train.state import push_checkpoint, save_best, save_state

__all__ = ["Trainer", "RunSummary", "train_epochs"]


class Trainer:
    """Runs one recipe (one variant): data -> model -> strategy -> loop -> artifact. ``context`` holds the
    run's objects once ``fit`` has built them (the run report reads its dataset)."""

    def __init__(self, recipe: Recipe) -> None:
        self.recipe = recipe
        self.layout = RunLayout.of(recipe)
        self.context: RunContext | None = None

    def fit(self) -> RunSummary:
        started = time.perf_counter()
        state = choose_state(self.recipe, self.layout)
        ctx = self.context = build_context(self.recipe, self.layout, started)
        restore(ctx, state)
        train_epochs(ctx)
        return finish_run(ctx)


def train_epochs(ctx: RunContext) -> None:
    """From the restored position to the last epoch (or an early stop)."""
    start, announced = ctx.progress.epoch, None
    for epoch in range(start, ctx.recipe.train.epochs):
        scales = ctx.strategy.lr_scales(epoch)
        ctx.schedule.set_scales(scales)
        # each layer group's lr as the epoch begins: the run report plots it
        lr_groups = {g.get("group_name", str(i)): g["lr"] for i, g in enumerate(ctx.optimizer.param_groups)}
        live = [g for g in scales if scales[g] > 0]
        if live != announced:
            ctx.console.say(f"epoch {epoch + 1}: training {', '.join(live)}")
            announced = live
        train_epoch(ctx, epoch, skip=ctx.progress.batch_in_epoch if epoch == start else 0)
        if end_epoch(ctx, epoch, lr_groups):
            break


class RunningSums:
    """Loss sum, correct and seen since the last fold, on the device (no sync per step), and the clock."""

    def __init__(self, device: torch.device) -> None:
        self.sums = torch.zeros(3, device=device)
        self.clock = time.perf_counter()

    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        self.sums += torch.stack(
            [
                loss.float() * len(y),
                (logits.argmax(1) == y).sum().float(),
                torch.tensor(float(len(y)), device=self.sums.device),
            ]
        )

    def fold(self, ctx: RunContext) -> None:
        """Move the sums (all processes) and the elapsed time into the progress."""
        total, p = ctx.accelerator.reduce(self.sums.clone(), "sum"), ctx.progress
        p.ep_loss += float(total[0])
        p.ep_correct += float(total[1])
        p.ep_seen += float(total[2])
        p.images_seen += int(total[2])
        p.train_seconds += time.perf_counter() - self.clock
        self.sums.zero_()
        self.clock = time.perf_counter()


def train_epoch(ctx: RunContext, epoch: int, skip: int) -> None:
    r, acc, p = ctx.recipe, ctx.accelerator, ctx.progress
    ctx.net.train()
    for m in ctx.strategy.frozen_norm_modules(epoch):
        m.eval()
    if hasattr(ctx.train_loader, "set_epoch"):
        ctx.train_loader.set_epoch(epoch)
    batches = acc.skip_first_batches(ctx.train_loader, skip) if skip else ctx.train_loader
    running = RunningSums(acc.device)
    bar = tqdm(
        batches,
        total=len(ctx.train_loader),
        initial=skip,
        desc=f"epoch {epoch + 1}/{r.train.epochs}",
        disable=not acc.is_local_main_process,
        leave=False,
    )
    for i, (x, y) in enumerate(bar, start=skip):
        loss = train_step(ctx, x, y, running)
        p.batch_in_epoch = i + 1
        if acc.sync_gradients:
            ctx.schedule.step()
            p.global_step += 1
            if ctx.ema is not None:
                ctx.ema.update(acc.unwrap_model(ctx.net), step=p.global_step)
            if acc.is_local_main_process and p.global_step % max(r.train.log_every, 1) == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{ctx.schedule.get_last_lr()[-1]:.2e}")
            if r.train.save_every_steps and p.global_step % r.train.save_every_steps == 0:
                running.fold(ctx)
                save_state(acc, ctx.layout, p, r.train.keep_last, r.to_dict())
    bar.close()
    running.fold(ctx)


def train_step(ctx: RunContext, x: torch.Tensor, y: torch.Tensor, running: RunningSums) -> torch.Tensor:
    acc, clip = ctx.accelerator, ctx.recipe.train.clip_grad
    x = ctx.prepare_batch(x)
    target = y
    if ctx.mixup is not None:  # train loaders drop their last short batch, so batches are even
        x, target = ctx.mixup(x, y)
    with acc.accumulate(ctx.net):
        logits = ctx.net(x)
        loss: torch.Tensor = ctx.loss(logits, target)
        acc.backward(loss)
        if acc.sync_gradients and clip:
            acc.clip_grad_norm_(ctx.net.parameters(), clip)
        ctx.optimizer.step()
        ctx.optimizer.zero_grad(set_to_none=True)
    running.add(loss.detach(), logits.detach(), y)
    return loss.detach()  # a tensor: reading it syncs the device, so only the progress bar does, now and then


def end_epoch(ctx: RunContext, epoch: int, lr_groups: dict[str, float]) -> bool:
    """Validate, record, keep the best weights, save state; True when early stopping ends the run."""
    r, acc, p = ctx.recipe, ctx.accelerator, ctx.progress
    val = ctx.evaluate("validation")
    seen = max(p.ep_seen, 1.0)
    record = {
        "kind": "epoch",
        "epoch": epoch,
        "step": p.global_step,
        "train_loss": p.ep_loss / seen,
        "train_top1": p.ep_correct / seen,
        "val_top1": val["top1"],
        "val_top5": val["top5"],
        "val_loss": val["loss"],
        "val_balanced_acc": val["balanced_acc"],
        "val_macro_f1": val["macro_f1"],
        "lr": ctx.schedule.get_last_lr()[-1],
        "train_seconds": round(p.train_seconds, 3),
        "lr_groups": lr_groups,
        # wall clock since this process started the run: set-up, extraction and evaluation too
        "elapsed_seconds": round(time.perf_counter() - ctx.started, 3),
    }
    score = selection_score(val, r.train.select_by)
    if score > p.best_score or p.best_epoch < 0:
        p.best_score, p.best_top1, p.best_epoch, p.bad_epochs = score, val["top1"], epoch, 0
        if r.train.select_best and acc.is_main_process:
            save_best(ctx.shipped, ctx.layout)
    else:
        p.bad_epochs += 1
    if acc.is_main_process:
        with open(ctx.layout.metrics, "a") as f:
            f.write(json.dumps(record) + "\n")
    if r.output.trackers:
        acc.log({k: v for k, v in record.items() if isinstance(v, (int, float))}, step=p.global_step)
    ctx.console.say(
        f"epoch {epoch + 1}: train loss {record['train_loss']:.4f}  val top-1 {val['top1']:.4f}  "
        f"val top-5 {val['top5']:.4f}  balanced {val['balanced_acc']:.4f}  "
        f"macro-F1 {val['macro_f1']:.4f}"
    )
    if r.hub.repo_id and r.hub.push_checkpoints and acc.is_main_process:
        push_checkpoint(ctx.shipped, ctx.layout, r, ctx.data, epoch, record, ctx.console.warn)
    p.end_epoch()
    stop = r.train.early_stopping is not None and p.bad_epochs >= r.train.early_stopping
    if stop:
        p.epoch = r.train.epochs  # a resumed run must not train on past the stop
    save_state(acc, ctx.layout, p, r.train.keep_last, r.to_dict())
    if stop:
        ctx.console.say(f"early stopping: no improvement for {r.train.early_stopping} epochs")
    return stop
