"""THE TUTORIALS' LOOP (a baseline for benchmarks/bench_photo_job.py, not zoo): a plain full fine-tune.

What the PyTorch transfer-learning tutorials teach: torchvision ImageFolder + DataLoader, a timm model with a
new head, AdamW, a loop over epochs, accuracy on the held-out folder at the end. Settings follow the fruits
recipe so the comparison is like for like (warm-up + cosine per step, label smoothing, clipping, the
precision zoo resolves, channels_last). Prints one JSON line for the benchmark to read.
"""

import argparse  # noqa: E401  (kept short on purpose: this is the "plain loop")
import json
import math
import time

import timm  # noqa: E401
import torch
from safetensors.torch import load_file
from torchvision import datasets
from torchvision import transforms as T

p = argparse.ArgumentParser()
p.add_argument("data"), p.add_argument("--weights"), p.add_argument("--epochs", type=int, default=1)
p.add_argument("--batch-size", type=int, default=32), p.add_argument("--lr", type=float, default=1e-4)
p.add_argument("--workers", type=int, default=2), p.add_argument("--precision", default="no")
p.add_argument("--device", default="cpu"), p.add_argument("--warmup-epochs", type=int, default=1)
a = p.parse_args()

model = timm.create_model("tf_efficientnet_lite0", num_classes=1000, drop_path_rate=0.1)
model.load_state_dict(load_file(a.weights))
cfg = timm.data.resolve_data_config({}, model=model)  # the model's own mean/std/interpolation/crop_pct
interp = T.InterpolationMode(cfg["interpolation"])
norm = [T.ToTensor(), T.Normalize(cfg["mean"], cfg["std"])]
train_tf = T.Compose(
    [T.RandomResizedCrop(224, interpolation=interp), T.RandomHorizontalFlip(), T.TrivialAugmentWide(), *norm]
)
test_tf = T.Compose([T.Resize(int(math.floor(224 / cfg["crop_pct"])), interpolation=interp), T.CenterCrop(224), *norm])
train_ds = datasets.ImageFolder(f"{a.data}/train", train_tf)
test_ds = datasets.ImageFolder(f"{a.data}/val", test_tf)
train_dl = torch.utils.data.DataLoader(
    train_ds, a.batch_size, shuffle=True, num_workers=a.workers, drop_last=False, persistent_workers=a.workers > 0
)
test_dl = torch.utils.data.DataLoader(test_ds, 2 * a.batch_size, num_workers=a.workers)
model.reset_classifier(len(train_ds.classes))
model = model.to(a.device, memory_format=torch.channels_last)
opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.05)
steps, warmup = a.epochs * len(train_dl), a.warmup_epochs * len(train_dl)  # linear warm-up, then cosine to 1e-6


def lr_at(s):
    if s < warmup:
        return (s + 1) / (warmup + 1)
    return 1e-2 + (1 - 1e-2) * 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(steps - warmup, 1)))


sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
amp = dict(
    device_type=torch.device(a.device).type,
    dtype=torch.float16 if a.precision == "fp16" else torch.bfloat16,
    enabled=a.precision in ("bf16", "fp16"),
)
scaler = torch.amp.GradScaler(enabled=a.precision == "fp16")

train_seconds, seen = 0.0, 0
for epoch in range(a.epochs):
    model.train()
    t0 = time.perf_counter()
    for x, y in train_dl:  # (the train time below is read after a device sync, for GPUs)
        with torch.autocast(**amp):
            loss = loss_fn(model(x.to(a.device, memory_format=torch.channels_last)), y.to(a.device))
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(opt), scaler.update(), sched.step()
        seen += len(y)
    if torch.device(a.device).type == "cuda":
        torch.cuda.synchronize()
    train_seconds += time.perf_counter() - t0
    model.eval()
    correct = 0
    with torch.no_grad(), torch.autocast(**amp):
        for x, y in test_dl:
            correct += (model(x.to(a.device, memory_format=torch.channels_last)).argmax(1).cpu() == y).sum().item()
    print(f"epoch {epoch + 1}: loss {loss.item():.4f}  test top-1 {correct / len(test_ds):.4f}", flush=True)
print(json.dumps({"train_seconds": train_seconds, "train_images": seen, "test_top1": correct / len(test_ds)}))
