"""The training loop, on Accelerate: one class that turns a recipe into a run directory.

run_dir/
  recipe.yaml        the resolved recipe (what actually ran)
  metrics.jsonl      one line per epoch, then the final evaluation
  curve.png          loss and accuracy per epoch
  confusion.png      confusion matrix of the final evaluation
  states/state-N/    resumable training state (the last K kept)
  model/             the final model: model.safetensors + config.json + zoo.json + README.md
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from zoo.errors import ConfigError
from zoo.metrics import classification_metrics, plot_confusion, plot_curves, read_metrics
from zoo.run_state import clear_states, load_latest_state, save_state
from zoo.schedule import GroupLRScheduler
from zoo.strategies import Strategy

log = logging.getLogger("zoo.train")


@dataclass
class RunSummary:
    """What a run reports back (and the comparison table prints)."""

    name: str
    strategy: str
    model: str
    run_dir: str
    best_epoch: int = -1
    val_top1: float = float("nan")
    test_top1: float | None = None
    eval_split: str = "validation"
    final_top1: float = float("nan")
    epochs_run: int = 0
    train_seconds: float = 0.0
    images_per_sec: float = 0.0
    peak_mem_mb: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _new_accelerator(recipe: Any, run_dir: Path) -> Any:
    """A fresh Accelerator per run: several variants may run in one process."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState
    from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration

    # accelerate keeps its state in process-wide singletons; reset the per-run parts (keeping the
    # distributed process group) so a second variant may choose its own precision or accumulation.
    AcceleratorState._reset_state()
    GradientState._reset_state()
    accelerator = Accelerator(
        mixed_precision=recipe.train.mixed_precision,
        gradient_accumulation_steps=recipe.train.grad_accum,
        log_with=list(recipe.output.trackers) or None,
        project_config=ProjectConfiguration(project_dir=str(run_dir), logging_dir=str(run_dir / "logs")),
        # a seedable sampler gives each epoch the same order after a resume, so skipping the batches
        # already seen continues the epoch exactly where it stopped
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
        step_scheduler_with_optimizer=False,
    )
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched > 1 and accelerator.num_processes == 1:
        # accelerate's torchrun path on a machine without GPUs runs each worker alone unless told to use
        # the CPU: N copies of the same run writing to one folder. Refuse rather than do that.
        raise ConfigError(
            f"{launched} processes were launched but each sees only itself (no GPU, and accelerate was not told "
            f"to use the CPU). For CPU ranks set ACCELERATE_USE_CPU=1, e.g. `ACCELERATE_USE_CPU=1 accelerate "
            f"launch --config_file recipes/accelerate/cpu-2proc.yaml -m zoo.train RECIPE`."
        )
    return accelerator


class Trainer:
    """Runs one recipe (one variant): data -> model -> strategy -> loop -> artifact."""

    def __init__(self, recipe: Any) -> None:
        self.recipe = recipe
        self.run_dir = Path(recipe.output.dir) / recipe.name

    # ---- set-up ------------------------------------------------------------------------------------
    def _setup(self) -> None:
        from accelerate.utils import set_seed

        import zoo
        from zoo.data import load_dataset
        from zoo.loaders import build_loaders

        r = self.recipe
        self.accelerator = acc = _new_accelerator(r, self.run_dir)
        if acc.is_main_process:
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

        pretrained = r.model.pretrained and r.strategy.name != "scratch"
        kwargs = dict(r.model.kwargs)
        if r.model.drop_path is not None:
            kwargs["drop_path_rate"] = r.model.drop_path
        model = zoo.create_model(r.model.name, pretrained=pretrained, **kwargs)
        model.reset_classifier(self.ds.num_classes, label_names=self.ds.label_names)
        if r.data.image_size:
            model.data_config["input_size"] = (3, r.data.image_size, r.data.image_size)
        self.model = model
        self.strategy = Strategy(model, r.strategy)
        self.strategy.apply(r.train.epochs)

        with acc.main_process_first():
            self.loaders = build_loaders(self.ds, model.data_config, r.data, self.run_dir, seed=r.data.seed,
                                         warn=self._warn)
        from zoo.data.mixing import build_loss, build_mixup, check_even_batch

        self.mixup = build_mixup(r.train.mixup, r.train.cutmix, r.train.label_smoothing, self.ds.num_classes)
        check_even_batch(self.mixup, self.loaders.train.batch_size)
        self.criterion: nn.Module = build_loss(self.mixup, r.train.label_smoothing)
        if r.train.channels_last:
            model.to(memory_format=torch.channels_last)

    def _optimizer(self) -> torch.optim.Optimizer:
        o = self.recipe.optim
        groups = self.strategy.param_groups(o.weight_decay)
        if o.name == "sgd":
            return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, nesterov=o.momentum > 0)
        return torch.optim.AdamW(groups, lr=o.lr, betas=tuple(o.betas))

    # ---- the run ------------------------------------------------------------------------------------
    def fit(self) -> RunSummary:
        self._started = time.perf_counter()
        self._setup()
        if self.strategy.uses_feature_cache:
            return self._fit_cached_probe()
        return self._fit_end_to_end()

    def _fit_end_to_end(self) -> RunSummary:
        r, acc = self.recipe, self.accelerator
        model = self.model
        optimizer = self._optimizer()
        train_loader = self.loaders.train
        evals = self.loaders.eval
        train_tf = self.loaders.train_transform.to(acc.device)
        eval_tf = self.loaders.eval_transform.to(acc.device)
        net = torch.compile(model) if r.train.compile else model
        net, optimizer, train_loader = acc.prepare(net, optimizer, train_loader)
        evals = {k: acc.prepare(v) for k, v in evals.items()}
        ema = None
        if r.train.ema:
            from timm.utils import ModelEmaV3

            ema = ModelEmaV3(model, decay=r.train.ema_decay, device=acc.device)
            acc.register_for_checkpointing(ema)

        def forward(x: torch.Tensor) -> torch.Tensor:
            x = train_tf(x)
            return x.contiguous(memory_format=torch.channels_last) if r.train.channels_last else x

        def evaluate(split: str) -> dict[str, Any]:
            target = ema.module if ema is not None else model
            return self._evaluate(lambda x: target(eval_tf(x)), evals[split], target)

        return self._loop(net, optimizer, train_loader, forward, evaluate, ema=ema)

    def _fit_cached_probe(self) -> RunSummary:
        """Linear probe on cached features: extract once, then each epoch is a pass over a tensor."""
        from torch.utils.data import DataLoader, TensorDataset

        from zoo.features import extract_features

        r, acc = self.recipe, self.accelerator
        model = self.model.to(acc.device)
        eval_tf = self.loaders.eval_transform.to(acc.device)
        t0 = time.perf_counter()
        plain = acc.prepare(self.loaders.train_plain)
        feats, labels = extract_features(model, plain, acc, eval_tf, desc="features train")
        cached = {}
        for split, loader in self.loaders.eval.items():
            cached[split] = extract_features(model, acc.prepare(loader), acc, eval_tf, desc=f"features {split}")
        extract_seconds = time.perf_counter() - t0

        head = model.get_classifier()
        optimizer = self._optimizer()
        generator = torch.Generator().manual_seed(r.data.seed)
        loader = DataLoader(TensorDataset(feats, labels), batch_size=r.data.batch_size, shuffle=True,
                            generator=generator)
        head, optimizer, loader = acc.prepare(head, optimizer, loader)

        def evaluate(split: str) -> dict[str, Any]:
            f, y = cached[split]
            with torch.no_grad():
                logits = torch.cat([head(chunk.to(acc.device)).float().cpu() for chunk in f.split(4096)])
            return classification_metrics(logits, y, self.ds.num_classes, prefix="")

        summary = self._loop(head, optimizer, loader, lambda x: x, evaluate, ema=None,
                             extra_seconds=extract_seconds)
        summary.extra["feature_extract_seconds"] = round(extract_seconds, 3)
        return summary

    @torch.no_grad()
    def _evaluate(self, predict: Any, loader: Any, module: nn.Module) -> dict[str, Any]:
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

    def _loop(self, net: nn.Module, optimizer: Any, train_loader: Any, prepare_batch: Any, evaluate: Any,
              ema: Any, extra_seconds: float = 0.0) -> RunSummary:
        r, acc = self.recipe, self.accelerator
        steps_per_epoch = max(math.ceil(len(train_loader) / r.train.grad_accum), 1)
        total_steps = steps_per_epoch * r.train.epochs
        scheduler = GroupLRScheduler(optimizer, r.schedule.name, r.optim.lr, total_steps,
                                     int(r.schedule.warmup_epochs * steps_per_epoch), r.schedule.min_lr)
        acc.register_for_checkpointing(scheduler)
        if r.output.trackers:
            acc.init_trackers(r.name, config=_flat_scalars(r.to_dict()))

        progress: dict[str, Any] = {
            "epoch": 0, "batch_in_epoch": 0, "global_step": 0, "best_top1": -1.0, "best_epoch": -1,
            "bad_epochs": 0, "train_seconds": 0.0, "images_seen": 0,
            # running sums of the current epoch, summed over processes: saved with the state so a resumed
            # epoch reports the same train loss as an uninterrupted one
            "ep_loss": 0.0, "ep_correct": 0.0, "ep_seen": 0.0,
        }
        metrics_path = self.run_dir / "metrics.jsonl"
        best_path = self.run_dir / "best.safetensors"
        if r.resume == "never" and acc.is_main_process:
            clear_states(self.run_dir)
            metrics_path.unlink(missing_ok=True)
            best_path.unlink(missing_ok=True)
        acc.wait_for_everyone()
        if r.resume != "never":
            explicit = None if r.resume == "auto" else Path(r.resume)
            loaded = load_latest_state(acc, self.run_dir, explicit, warn=self._warn)
            if loaded:
                progress.update({k: v for k, v in loaded.items() if k in progress})
                self._print(f"resumed from {loaded['state_path']} (epoch {progress['epoch']}, "
                            f"batch {progress['batch_in_epoch']})")
            if acc.is_main_process:  # drop metric lines written after the state we continue from
                kept = [m for m in read_metrics(metrics_path)
                        if m.get("kind") == "epoch" and m["epoch"] < progress["epoch"]]
                metrics_path.write_text("".join(json.dumps(m) + "\n" for m in kept))
        acc.wait_for_everyone()

        running = torch.zeros(3, device=acc.device)  # loss sum, correct, seen since the last fold
        clock = [time.perf_counter()]

        def fold() -> None:
            """Move the running sums (all processes) and the elapsed time into ``progress``."""
            total = acc.reduce(running.clone(), "sum")
            progress["ep_loss"] += float(total[0])
            progress["ep_correct"] += float(total[1])
            progress["ep_seen"] += float(total[2])
            progress["images_seen"] += int(total[2])
            progress["train_seconds"] += time.perf_counter() - clock[0]
            running.zero_()

        start_epoch = progress["epoch"]
        announced: list[str] | None = None
        for epoch in range(start_epoch, r.train.epochs):
            scales = self.strategy.lr_scales(epoch)
            scheduler.set_scales(scales)
            live = [g for g in scales if scales[g] > 0]
            if live != announced:
                self._print(f"epoch {epoch + 1}: training {', '.join(live)}")
                announced = live
            net.train()
            for m in self.strategy.frozen_norm_modules(epoch):
                m.eval()
            if hasattr(train_loader, "set_epoch"):
                train_loader.set_epoch(epoch)
            skip = progress["batch_in_epoch"] if epoch == start_epoch else 0
            batches = acc.skip_first_batches(train_loader, skip) if skip else train_loader
            clock[0] = time.perf_counter()
            bar = tqdm(batches, total=len(train_loader), initial=skip, desc=f"epoch {epoch + 1}/{r.train.epochs}",
                       disable=not acc.is_local_main_process, leave=False)
            for i, (x, y) in enumerate(bar, start=skip):
                x = prepare_batch(x)
                target = y
                if self.mixup is not None:  # train batches are full and even (loaders drop the short last one)
                    x, target = self.mixup(x, y)
                with acc.accumulate(net):
                    logits = net(x)
                    loss = self.criterion(logits, target)
                    acc.backward(loss)
                    if acc.sync_gradients and r.train.clip_grad:
                        acc.clip_grad_norm_(net.parameters(), r.train.clip_grad)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                running += torch.stack([loss.detach().float() * len(y),
                                        (logits.detach().argmax(1) == y).sum().float(),
                                        torch.tensor(float(len(y)), device=acc.device)])
                progress["batch_in_epoch"] = i + 1
                if acc.sync_gradients:
                    scheduler.step()
                    progress["global_step"] += 1
                    if ema is not None:
                        ema.update(acc.unwrap_model(net), step=progress["global_step"])
                    if acc.is_local_main_process and progress["global_step"] % max(r.train.log_every, 1) == 0:
                        bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{scheduler.get_last_lr()[-1]:.2e}")
                    if r.train.save_every_steps and progress["global_step"] % r.train.save_every_steps == 0:
                        fold()
                        save_state(acc, self.run_dir, progress["global_step"], dict(progress), r.train.keep_last)
                        clock[0] = time.perf_counter()
            bar.close()
            fold()
            val = evaluate("validation")
            seen = max(progress["ep_seen"], 1.0)
            record = {"kind": "epoch", "epoch": epoch, "step": progress["global_step"],
                      "train_loss": progress["ep_loss"] / seen, "train_top1": progress["ep_correct"] / seen,
                      "val_top1": val["top1"], "val_top5": val["top5"], "val_loss": val["loss"],
                      "lr": scheduler.get_last_lr()[-1], "train_seconds": round(progress["train_seconds"], 3),
                      # wall clock since this process started the run: set-up, extraction and evaluation too
                      "elapsed_seconds": round(time.perf_counter() - self._started, 3)}
            if val["top1"] > progress["best_top1"]:
                progress.update(best_top1=val["top1"], best_epoch=epoch, bad_epochs=0)
                if r.train.select_best and acc.is_main_process:
                    self._save_weights(best_path, ema)
            else:
                progress["bad_epochs"] += 1
            if acc.is_main_process:
                with open(metrics_path, "a") as f:
                    f.write(json.dumps(record) + "\n")
            if r.output.trackers:
                acc.log({k: v for k, v in record.items() if isinstance(v, (int, float))}, step=progress["global_step"])
            self._print(f"epoch {epoch + 1}: train loss {record['train_loss']:.4f}  val top-1 {val['top1']:.4f}  "
                        f"val top-5 {val['top5']:.4f}")
            if r.hub.repo_id and r.hub.push_checkpoints and acc.is_main_process:
                self._push_checkpoint(epoch, record, ema)
            progress.update(epoch=epoch + 1, batch_in_epoch=0, ep_loss=0.0, ep_correct=0.0, ep_seen=0.0)
            stop = r.train.early_stopping is not None and progress["bad_epochs"] >= r.train.early_stopping
            if stop:
                progress["epoch"] = r.train.epochs  # a resumed run must not train on past the stop
            save_state(acc, self.run_dir, progress["global_step"], dict(progress), r.train.keep_last)
            if stop:
                self._print(f"early stopping: no improvement for {r.train.early_stopping} epochs")
                break

        return self._finish(net, ema, progress, best_path, evaluate, extra_seconds)

    # ---- the end of a run ---------------------------------------------------------------------------
    def _save_weights(self, path: Path, ema: Any) -> None:
        from safetensors.torch import save_file

        source = ema.module if ema is not None else self.model
        state = {k: v.detach().cpu().contiguous() for k, v in source.state_dict().items()}
        tmp = path.with_suffix(".tmp")
        save_file(state, str(tmp))
        os.replace(tmp, path)

    def _finish(self, net: nn.Module, ema: Any, progress: dict[str, Any], best_path: Path, evaluate: Any,
                extra_seconds: float) -> RunSummary:
        import zoo
        from safetensors.torch import load_file

        r, acc = self.recipe, self.accelerator
        acc.wait_for_everyone()
        if ema is not None:
            self.model.load_state_dict(ema.module.state_dict())
        if r.train.select_best and best_path.exists():
            self.model.load_state_dict(load_file(str(best_path), device="cpu"))
        in_sync = self._ranks_in_sync()
        split = "test" if "test" in self.loaders.eval else "validation"
        final = evaluate(split)
        val_best = progress["best_top1"]
        summary = RunSummary(
            name=r.name, strategy=r.strategy.name, model=r.model.name, run_dir=str(self.run_dir),
            best_epoch=progress["best_epoch"], val_top1=val_best, eval_split=split, final_top1=final["top1"],
            test_top1=final["top1"] if split == "test" else None, epochs_run=progress["epoch"],
            train_seconds=round(progress["train_seconds"] + extra_seconds, 3),
            # over all training time, feature extraction included: a probe's head epochs alone would
            # report feature vectors per second, not images
            images_per_sec=round(progress["images_seen"] / max(progress["train_seconds"] + extra_seconds, 1e-9), 2),
            peak_mem_mb=round(_peak_memory_mb(acc.device), 1),
        )
        if acc.is_main_process:
            record = {"kind": "final", "split": split, **{k: v for k, v in final.items()},
                      "best_epoch": progress["best_epoch"], "best_val_top1": val_best,
                      "train_seconds": summary.train_seconds, "images_per_sec": summary.images_per_sec,
                      "peak_mem_mb": summary.peak_mem_mb, "num_processes": acc.num_processes,
                      "ranks_in_sync": in_sync}
            with open(self.run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            records = read_metrics(self.run_dir / "metrics.jsonl")
            curve = plot_curves(records, self.run_dir / "curve.png", title=f"{r.name} ({r.strategy.name})")
            plot_confusion(final["confusion"], self.ds.label_names, self.run_dir / "confusion.png",
                           title=f"{r.name}: {split} confusion matrix")
            metrics = {f"{split}_top1": final["top1"], f"{split}_top5": final["top5"],
                       "best_val_top1": val_best, "best_epoch": progress["best_epoch"],
                       "per_class_acc": dict(zip(self.ds.label_names, final["per_class_acc"])),
                       "train_seconds": summary.train_seconds}
            self.model.eval()
            zoo.save(self.model.cpu(), self.run_dir / "model", recipe=r.to_dict(), metrics=metrics,
                     dataset=self.ds.info(), files={"curve.png": curve, "confusion.png": self.run_dir / "confusion.png"})
            if r.hub.repo_id:
                url = zoo.push_to_hub(self.run_dir / "model", r.hub.repo_id, private=r.hub.private,
                                      revision=r.hub.revision)
                self._print(f"pushed to {url}")
        acc.wait_for_everyone()
        acc.end_training()
        return summary

    def _push_checkpoint(self, epoch: int, record: dict[str, Any], ema: Any) -> None:
        """This epoch's weights as a full artifact on the repo's `checkpoints` branch (main process only).
        A failed push is reported and training goes on: the run must not die for the network."""
        import copy

        import zoo
        from zoo.errors import ZooError

        source = ema.module if ema is not None else self.model
        snapshot = copy.deepcopy(source).cpu().eval()
        folder = self.run_dir / "checkpoint"
        zoo.save(snapshot, folder, recipe=self.recipe.to_dict(), dataset=self.ds.info(),
                 metrics={"epoch": epoch + 1, "val_top1": record["val_top1"], "val_top5": record["val_top5"]})
        try:
            zoo.push_to_hub(folder, self.recipe.hub.repo_id, private=self.recipe.hub.private,
                            revision="checkpoints", commit_message=f"epoch {epoch + 1}: val top-1 {record['val_top1']:.4f}")
        except ZooError as exc:
            self._warn(f"checkpoint push failed, training continues: {exc}")

    def _ranks_in_sync(self) -> bool:
        """Every process must end with the same parameters (DDP averages gradients, so any difference
        means a parameter escaped synchronisation). Checked on a checksum; a mismatch is an error."""
        acc = self.accelerator
        if acc.num_processes == 1:
            return True
        with torch.no_grad():
            total = sum((p.detach().double() * (i % 7 + 1)).sum() for i, p in enumerate(self.model.parameters()))
        sums = acc.gather(total.reshape(1).to(acc.device))
        if not torch.all(sums == sums[0]):
            raise RuntimeError(f"parameters differ between processes after training: checksums {sums.tolist()}")
        return True

    # ---- messages ------------------------------------------------------------------------------------
    def _print(self, message: str) -> None:
        if self.accelerator.is_main_process:
            tqdm.write(f"[{self.recipe.name}] {message}")

    def _warn(self, message: str) -> None:
        if self.accelerator.is_main_process:
            log.warning(message)
            tqdm.write(f"[{self.recipe.name}] warning: {message}")


def _flat_scalars(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat_scalars(v, f"{prefix}{k}."))
        elif isinstance(v, (int, float, str, bool)) or v is None:
            out[f"{prefix}{k}"] = v
    return out
