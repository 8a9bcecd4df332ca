"""The training loop, on Accelerate: one class that turns a recipe into a run directory.

run_dir/
  recipe.yaml        the resolved recipe (what actually ran)
  metrics.jsonl      one line per epoch, then the final evaluation
  curve.png          loss and accuracy per epoch
  confusion.png      confusion matrix of the final evaluation
  states/state-N/    resumable training state (the last K kept), with the Progress and the recipe
  model/             the final model: model.safetensors + config.json + zoo.json + README.md

The run is a sequence of named steps: ``_start`` (resume or fresh), ``_setup`` (data, model, strategy,
loaders), then per epoch ``_train_epoch`` and ``_end_epoch``, and ``zoo.train.finish.finish_run``.
"""
from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import set_seed
from safetensors.torch import save_file
from timm.utils import ModelEmaV3
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from zoo.data import load_dataset
from zoo.data.balance import loss_weights, train_sampler
from zoo.data.loaders import build_loaders
from zoo.data.mixing import build_loss, build_mixup, check_even_batch
from zoo.errors import ConfigError
from zoo.fsutil import atomic_write_with
from zoo.metrics import classification_metrics, read_metrics, selection_score
from zoo.registry import create_model
from zoo.train.feature_cache import FeatureCache, feature_key
from zoo.train.accelerator import flat_scalars, new_accelerator
from zoo.train.features import extract_features
from zoo.train.finish import RunSummary, finish_run, push_checkpoint
from zoo.train.progress import Progress, changed_keys, refuse_changed_resume
from zoo.train.schedule import GroupLRScheduler
from zoo.train.state import clear_states, complete_states, load_latest_state, save_state, saved_recipe
from zoo.train.strategies import Strategy

log = logging.getLogger("zoo.train")
BEST_WEIGHTS = "best.safetensors"

__all__ = ["Trainer", "RunSummary"]


class Trainer:
    """Runs one recipe (one variant): data -> model -> strategy -> loop -> artifact."""

    def __init__(self, recipe: Any) -> None:
        self.recipe = recipe
        self.run_dir = Path(recipe.output.dir) / recipe.name
        self.progress = Progress()

    # ---- the run ------------------------------------------------------------------------------------
    def fit(self) -> RunSummary:
        self._started = time.perf_counter()
        resume_from = self._start()
        self._setup()
        if self.strategy.uses_feature_cache:
            return self._fit_cached_probe(resume_from)
        return self._fit_end_to_end(resume_from)

    def _start(self) -> Path | None:
        """Decide, before anything is loaded or written, whether this run resumes; say which, first."""
        # the launcher's RANK, not PartialState(): a PartialState made here, before the Accelerator, fixes the
        # process-wide state without ACCELERATE_USE_CPU, and CPU ranks then each run alone
        r, main = self.recipe, int(os.environ.get("RANK", "0")) == 0
        state: Path | None = None
        if r.resume == "auto":
            found = complete_states(self.run_dir)
            state = found[0] if found else None
        elif r.resume != "never":
            state = Path(r.resume)
            if not (state / "COMPLETE").is_file():
                raise ConfigError(f"resume={r.resume!r} is not a complete state folder (states/state-N with a "
                                  f"COMPLETE file); use resume=auto to pick the newest, or resume=never")
        if state is not None:
            saved = saved_recipe(state)
            changes = changed_keys(saved, r.to_dict()) if saved is not None else []
            if changes:
                raise refuse_changed_resume(str(self.run_dir), str(state), changes)
        if main:
            fresh = f"starting fresh in {self.run_dir}" + (" (resume: never)" if r.resume == "never" else "")
            print(f"[{r.name}] " + (f"resuming from {state}" if state else fresh), flush=True)
        return state

    def _setup(self) -> None:
        """Accelerator, data, model with its new head, strategy, loaders, mixup and loss."""
        r = self.recipe
        self.accelerator = acc = new_accelerator(r, self.run_dir)
        if acc.num_processes > 1:  # one write per line: ranks share stdout
            sys.stdout.write(f"[{r.name}] rank {acc.process_index} of {acc.num_processes}\n")
            sys.stdout.flush()
        if acc.is_main_process:
            if r.resume == "never":
                clear_states(self.run_dir)
                for name in ("metrics.jsonl", BEST_WEIGHTS):
                    (self.run_dir / name).unlink(missing_ok=True)
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "recipe.yaml").write_text(r.to_yaml())
        acc.wait_for_everyone()
        set_seed(r.train.seed)
        if acc.device.type == "cpu":
            # Pretrained weights push some activations into denormal floats, which x86 CPUs compute
            # very slowly: flushing them to zero measured 1.8x faster on EfficientNet-Lite0 here.
            torch.set_flush_denormal(True)
        with acc.main_process_first():
            self.ds = load_dataset(
                r.data.spec, val_size=r.data.val_size, seed=r.data.seed, image_column=r.data.image_column,
                label_column=r.data.label_column, on_bad_image=r.data.on_bad_image, run_dir=self.run_dir,
            )
        if r.data.limit:
            train = self.ds.splits["train"]
            self.ds.splits["train"] = train.shuffle(seed=r.data.seed).select(range(min(r.data.limit, len(train))))
        self.model = self._build_model()
        self.strategy = Strategy(self.model, r.strategy)
        self.strategy.apply(r.train.epochs)
        with acc.main_process_first():
            self.loaders = build_loaders(self.ds, self.model.data_config, r.data, self.run_dir, seed=r.data.seed,
                                         warn=self._warn)
        self.mixup = build_mixup(r.train.mixup, r.train.cutmix, r.train.label_smoothing, self.ds.num_classes)
        check_even_batch(self.mixup, self.loaders.train.batch_size)
        weights = loss_weights(self.ds["train"]["label"], self.ds.num_classes, r.train.class_weights)
        self.criterion: nn.Module = build_loss(self.mixup, r.train.label_smoothing, weights).to(acc.device)
        if r.train.channels_last:
            self.model.to(memory_format=torch.channels_last)

    def _build_model(self) -> Any:
        r = self.recipe
        kwargs = dict(r.model.kwargs)
        if r.model.drop_path is not None:
            kwargs["drop_path_rate"] = r.model.drop_path
        model = create_model(r.model.name, pretrained=r.model.pretrained and r.strategy.name != "scratch", **kwargs)
        model.reset_classifier(self.ds.num_classes, label_names=self.ds.label_names)
        if r.data.image_size:
            model.data_config["input_size"] = (3, r.data.image_size, r.data.image_size)
        if not r.data.upsample:  # saved with the model, so zoo eval / predict preprocess as the run did
            model.data_config["upsample"] = False
        return model

    def _optimizer(self) -> torch.optim.Optimizer:
        o = self.recipe.optim
        groups = self.strategy.param_groups(o.weight_decay)
        if o.name == "sgd":
            return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, nesterov=o.momentum > 0)
        return torch.optim.AdamW(groups, lr=o.lr, betas=tuple(o.betas))

    # ---- the two ways to train ----------------------------------------------------------------------
    def _fit_end_to_end(self, resume_from: Path | None) -> RunSummary:
        r, acc = self.recipe, self.accelerator
        optimizer = self._optimizer()
        train_tf = self.loaders.train_transform.to(acc.device)
        eval_tf = self.loaders.eval_transform.to(acc.device)
        net = torch.compile(self.model) if r.train.compile else self.model
        net, optimizer, train_loader = acc.prepare(net, optimizer, self.loaders.train)
        evals = {k: acc.prepare(v) for k, v in self.loaders.eval.items()}
        self.ema = None
        if r.train.ema:
            self.ema = ModelEmaV3(self.model, decay=r.train.ema_decay, device=acc.device)
            acc.register_for_checkpointing(self.ema)

        def prepare_batch(x: torch.Tensor) -> torch.Tensor:
            x = train_tf(x)
            return x.contiguous(memory_format=torch.channels_last) if r.train.channels_last else x

        def evaluate(split: str) -> dict[str, Any]:
            # the weights an epoch is judged by are the weights that would be saved: EMA's when on
            target = self.ema.module if self.ema is not None else self.model
            return self._evaluate(lambda x: target(eval_tf(x)), evals[split], target)

        return self._run(net, optimizer, train_loader, prepare_batch, evaluate, resume_from)

    def _fit_cached_probe(self, resume_from: Path | None) -> RunSummary:
        """Linear probe on cached features: extract once, then each epoch is a pass over a tensor."""
        r, acc = self.recipe, self.accelerator
        model = self.model.to(acc.device)
        eval_tf = self.loaders.eval_transform.to(acc.device)
        t0 = time.perf_counter()
        # on disk beside the image stores, shared with `zoo rank` (same model weights, split and preprocessing)
        cache = FeatureCache(self.run_dir.parent / ".cache")

        def features(split: str, loader: Any) -> tuple[torch.Tensor, torch.Tensor]:
            key = feature_key(model, self.ds[split], model.data_config, fast=r.data.fast, upsample=r.data.upsample,
                              precision=str(acc.mixed_precision))
            hit = cache.get(key)
            if hit is not None:
                self._print(f"features {split}: read from the cache {cache.path(key)}")
                return hit
            out = extract_features(model, acc.prepare(loader), acc, eval_tf, desc=f"features {split}")
            if acc.is_main_process:
                cache.put(key, *out)
            return out

        feats, labels = features("train", self.loaders.train_plain)
        cached = {split: features(split, loader) for split, loader in self.loaders.eval.items()}
        self.extract_seconds = time.perf_counter() - t0
        self.ema = None
        optimizer = self._optimizer()
        generator = torch.Generator().manual_seed(r.data.seed)
        sampler = train_sampler(labels, r.data.sampler, r.data.seed)
        loader = DataLoader(TensorDataset(feats, labels), batch_size=r.data.batch_size, sampler=sampler,
                            shuffle=sampler is None, generator=generator)
        head, optimizer, loader = acc.prepare(model.get_classifier(), optimizer, loader)

        def evaluate(split: str) -> dict[str, Any]:
            f, y = cached[split]
            with torch.no_grad():
                logits = torch.cat([head(chunk.to(acc.device)).float().cpu() for chunk in f.split(4096)])
            return classification_metrics(logits, y, self.ds.num_classes, prefix="")

        return self._run(head, optimizer, loader, lambda x: x, evaluate, resume_from)

    @torch.no_grad()
    def _evaluate(self, predict: Callable[[torch.Tensor], torch.Tensor], loader: Any, module: nn.Module
                  ) -> dict[str, Any]:
        acc = self.accelerator
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
        return classification_metrics(torch.cat(logits), torch.cat(labels), self.ds.num_classes)

    # ---- epochs ---------------------------------------------------------------------------------------
    def _run(self, net: nn.Module, optimizer: Any, train_loader: Any, prepare_batch: Callable, evaluate: Callable,
             resume_from: Path | None) -> RunSummary:
        r, acc = self.recipe, self.accelerator
        steps_per_epoch = max(math.ceil(len(train_loader) / r.train.grad_accum), 1)
        self.scheduler = GroupLRScheduler(optimizer, r.schedule.name, r.optim.lr, steps_per_epoch * r.train.epochs,
                                          int(r.schedule.warmup_epochs * steps_per_epoch), r.schedule.min_lr)
        acc.register_for_checkpointing(self.scheduler)
        if r.output.trackers:
            acc.init_trackers(r.name, config=flat_scalars(r.to_dict()))
        self._restore(resume_from)
        self.net, self.optimizer, self.train_loader = net, optimizer, train_loader
        self.prepare_batch, self.evaluate = prepare_batch, evaluate
        start, announced = self.progress.epoch, None
        for epoch in range(start, r.train.epochs):
            scales = self.strategy.lr_scales(epoch)
            self.scheduler.set_scales(scales)
            # each layer group's lr as the epoch begins: the run report plots it
            self._lr_groups = {g.get("group_name", str(i)): g["lr"] for i, g in enumerate(optimizer.param_groups)}
            live = [g for g in scales if scales[g] > 0]
            if live != announced:
                self._print(f"epoch {epoch + 1}: training {', '.join(live)}")
                announced = live
            self._train_epoch(epoch, skip=self.progress.batch_in_epoch if epoch == start else 0)
            if self._end_epoch(epoch):
                break
        return finish_run(self)

    def _restore(self, state: Path | None) -> None:
        """Load the state ``_start`` chose (or an earlier one if it is corrupt); trim metrics to match."""
        acc, metrics_path = self.accelerator, self.run_dir / "metrics.jsonl"
        if state is not None:
            explicit = None if self.recipe.resume == "auto" else state
            loaded = load_latest_state(acc, self.run_dir, explicit, warn=self._warn)
            if loaded:
                self.progress, path = loaded
                self._print(f"resumed from {path} (epoch {self.progress.epoch}, batch {self.progress.batch_in_epoch})")
        if acc.is_main_process and metrics_path.exists():  # drop lines written after the state we continue from
            kept = [m for m in read_metrics(metrics_path)
                    if m.get("kind") == "epoch" and m["epoch"] < self.progress.epoch]
            metrics_path.write_text("".join(json.dumps(m) + "\n" for m in kept))
        acc.wait_for_everyone()

    def _train_epoch(self, epoch: int, skip: int) -> None:
        r, acc, p = self.recipe, self.accelerator, self.progress
        self.net.train()
        for m in self.strategy.frozen_norm_modules(epoch):
            m.eval()
        if hasattr(self.train_loader, "set_epoch"):
            self.train_loader.set_epoch(epoch)
        batches = acc.skip_first_batches(self.train_loader, skip) if skip else self.train_loader
        self._running = torch.zeros(3, device=acc.device)  # loss sum, correct, seen since the last fold
        self._clock = time.perf_counter()
        bar = tqdm(batches, total=len(self.train_loader), initial=skip, desc=f"epoch {epoch + 1}/{r.train.epochs}",
                   disable=not acc.is_local_main_process, leave=False)
        for i, (x, y) in enumerate(bar, start=skip):
            loss = self._train_step(x, y)
            p.batch_in_epoch = i + 1
            if acc.sync_gradients:
                self.scheduler.step()
                p.global_step += 1
                if self.ema is not None:
                    self.ema.update(acc.unwrap_model(self.net), step=p.global_step)
                if acc.is_local_main_process and p.global_step % max(r.train.log_every, 1) == 0:
                    bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{self.scheduler.get_last_lr()[-1]:.2e}")
                if r.train.save_every_steps and p.global_step % r.train.save_every_steps == 0:
                    self._fold()
                    save_state(acc, self.run_dir, p, r.train.keep_last, r.to_dict())
        bar.close()
        self._fold()

    def _train_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        r, acc = self.recipe, self.accelerator
        x = self.prepare_batch(x)
        target = y
        if self.mixup is not None:  # train loaders drop their last short batch, so batches are even
            x, target = self.mixup(x, y)
        with acc.accumulate(self.net):
            logits = self.net(x)
            loss = self.criterion(logits, target)
            acc.backward(loss)
            if acc.sync_gradients and r.train.clip_grad:
                acc.clip_grad_norm_(self.net.parameters(), r.train.clip_grad)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        self._running += torch.stack([loss.detach().float() * len(y), (logits.detach().argmax(1) == y).sum().float(),
                                      torch.tensor(float(len(y)), device=acc.device)])
        return loss.detach()  # a tensor: reading it syncs the device, so only the progress bar does, now and then

    def _fold(self) -> None:
        """Move the running sums (all processes) and the elapsed time into the progress."""
        total, p = self.accelerator.reduce(self._running.clone(), "sum"), self.progress
        p.ep_loss += float(total[0])
        p.ep_correct += float(total[1])
        p.ep_seen += float(total[2])
        p.images_seen += int(total[2])
        p.train_seconds += time.perf_counter() - self._clock
        self._running.zero_()
        self._clock = time.perf_counter()

    def _end_epoch(self, epoch: int) -> bool:
        """Validate, record, keep the best weights, save state; True when early stopping ends the run."""
        r, acc, p = self.recipe, self.accelerator, self.progress
        val = self.evaluate("validation")
        seen = max(p.ep_seen, 1.0)
        record = {"kind": "epoch", "epoch": epoch, "step": p.global_step, "train_loss": p.ep_loss / seen,
                  "train_top1": p.ep_correct / seen, "val_top1": val["top1"], "val_top5": val["top5"],
                  "val_loss": val["loss"], "val_balanced_acc": val["balanced_acc"], "val_macro_f1": val["macro_f1"],
                  "lr": self.scheduler.get_last_lr()[-1],
                  "train_seconds": round(p.train_seconds, 3), "lr_groups": getattr(self, "_lr_groups", {}),
                  # wall clock since this process started the run: set-up, extraction and evaluation too
                  "elapsed_seconds": round(time.perf_counter() - self._started, 3)}
        score = selection_score(val, r.train.select_by)
        if score > p.best_score or p.best_epoch < 0:
            p.best_score, p.best_top1, p.best_epoch, p.bad_epochs = score, val["top1"], epoch, 0
            if r.train.select_best and acc.is_main_process:
                self._save_best()
        else:
            p.bad_epochs += 1
        if acc.is_main_process:
            with open(self.run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
        if r.output.trackers:
            acc.log({k: v for k, v in record.items() if isinstance(v, (int, float))}, step=p.global_step)
        self._print(f"epoch {epoch + 1}: train loss {record['train_loss']:.4f}  val top-1 {val['top1']:.4f}  "
                    f"val top-5 {val['top5']:.4f}  balanced {val['balanced_acc']:.4f}  macro-F1 {val['macro_f1']:.4f}")
        if r.hub.repo_id and r.hub.push_checkpoints and acc.is_main_process:
            push_checkpoint(self, epoch, record)
        p.end_epoch()
        stop = r.train.early_stopping is not None and p.bad_epochs >= r.train.early_stopping
        if stop:
            p.epoch = r.train.epochs  # a resumed run must not train on past the stop
        save_state(acc, self.run_dir, p, r.train.keep_last, r.to_dict())
        if stop:
            self._print(f"early stopping: no improvement for {r.train.early_stopping} epochs")
        return stop

    def final_weights_source(self) -> nn.Module:
        """The module whose weights the run ships: the EMA copy when EMA is on, else the model."""
        return self.ema.module if self.ema is not None else self.model

    def _save_best(self) -> None:
        state = {k: v.detach().cpu().contiguous() for k, v in self.final_weights_source().state_dict().items()}
        atomic_write_with(self.run_dir / BEST_WEIGHTS, lambda tmp: save_file(state, str(tmp)))

    # ---- messages ------------------------------------------------------------------------------------
    def _print(self, message: str) -> None:
        if self.accelerator.is_main_process:
            tqdm.write(f"[{self.recipe.name}] {message}")

    def _warn(self, message: str) -> None:
        if self.accelerator.is_main_process:
            log.warning(message)
            tqdm.write(f"[{self.recipe.name}] warning: {message}")
