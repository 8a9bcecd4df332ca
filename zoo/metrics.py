"""Classification metrics and the pictures that go with them (training curve, confusion matrix)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch


def classification_metrics(
    logits: torch.Tensor, labels: torch.Tensor, num_classes: int, prefix: str = ""
) -> dict[str, Any]:
    """top-1, top-5, loss, balanced accuracy, macro-F1, per-class accuracy and the confusion matrix (rows:
    true, columns: predicted). On imbalanced data top-1 rewards predicting the big classes; balanced accuracy
    (the mean recall over the classes present in the targets) and macro-F1 do not. Macro-F1 is scikit-learn's
    ``f1_score(average="macro")``: the mean F1 over every class that occurs in the targets or the predictions,
    so a class that is only ever predicted (wrongly) counts with F1 0."""
    logits, labels = logits.float().cpu(), labels.long().cpu()
    k = min(5, num_classes)
    topk = logits.topk(k, dim=1).indices
    pred = topk[:, 0]
    cm = torch.bincount(labels * num_classes + pred, minlength=num_classes**2).reshape(num_classes, num_classes)
    support = cm.sum(1)
    per_class = (cm.diag().float() / support.clamp(min=1)).tolist()
    n = max(len(labels), 1)
    present = support > 0
    seen = present | (cm.sum(0) > 0)  # in the targets or the predictions: scikit-learn's labels for macro-F1
    tp = cm.diag().float()
    f1 = 2 * tp / (support + cm.sum(0)).float().clamp(min=1)  # 2TP / (2TP + FP + FN)
    return {
        f"{prefix}top1": float((pred == labels).sum()) / n,
        f"{prefix}top5": float((topk == labels[:, None]).any(1).sum()) / n,
        f"{prefix}loss": float(torch.nn.functional.cross_entropy(logits, labels)) if len(labels) else float("nan"),
        f"{prefix}balanced_acc": float((tp / support.clamp(min=1))[present].mean()) if present.any() else float("nan"),
        f"{prefix}macro_f1": float(f1[seen].mean()) if seen.any() else float("nan"),
        f"{prefix}per_class_acc": [round(a, 4) if s else None for a, s in zip(per_class, support.tolist())],
        f"{prefix}confusion": cm.tolist(),
        f"{prefix}n": len(labels),
    }


def draw_confusion(matrix: Sequence[Sequence[int]], names: Sequence[str], title: str) -> Any:
    """A matplotlib figure: counts in the cells, colour by the share of the true class (row), so rare classes
    show too. The run's confusion.png and the run report draw the same picture."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(names)
    side = min(3 + 0.45 * n, 14)
    fig, ax = plt.subplots(figsize=(side, side * 0.9))
    shares = [[c / max(sum(row), 1) for c in row] for row in matrix]
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    if n <= 40:
        ax.set_xticks(range(n), names, rotation=90, fontsize=8)
        ax.set_yticks(range(n), names, fontsize=8)
        for i in range(n):
            for j in range(n):
                if matrix[i][j]:
                    ax.text(
                        j,
                        i,
                        str(matrix[i][j]),
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if shares[i][j] > 0.5 else "black",
                    )
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    fig.tight_layout()
    return fig


def plot_confusion(
    confusion: Sequence[Sequence[int]], label_names: Sequence[str], path: str | Path, title: str = "confusion matrix"
) -> Path:
    import matplotlib.pyplot as plt

    fig = draw_confusion(confusion, label_names, title)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    lines = Path(path).read_text().splitlines() if Path(path).exists() else []
    return [json.loads(line) for line in lines if line.strip()]


def plot_curves(records: Sequence[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Loss and accuracy per epoch: a curve says more than a column of numbers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r for r in records if r.get("kind") == "epoch"]
    x = [r["epoch"] + 1 for r in epochs]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(x, [r.get("train_loss") for r in epochs], marker="o", label="train loss")
    if any("val_loss" in r for r in epochs):
        left.plot(x, [r.get("val_loss") for r in epochs], marker="o", label="validation loss")
    left.set_xlabel("epoch")
    left.set_ylabel("loss")
    left.legend()
    for key, label in (("train_top1", "train top-1"), ("val_top1", "validation top-1")):
        if any(key in r for r in epochs):
            right.plot(x, [r.get(key) for r in epochs], marker="o", label=label)
    right.set_xlabel("epoch")
    right.set_ylabel("accuracy")
    right.set_ylim(0, 1)
    right.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


# the validation metrics a recipe may select the best epoch by (train.select_by); loss is the one to minimise
SELECTABLE = {"val_top1": "top1", "val_balanced_acc": "balanced_acc", "val_macro_f1": "macro_f1", "val_loss": "loss"}


def selection_score(val: dict[str, Any], select_by: str) -> float:
    """The score of a validation result under ``train.select_by``, higher is better (val_loss is negated);
    NaN (an empty split) scores lowest so it never becomes the best epoch."""
    value = float(val[SELECTABLE[select_by]])
    if value != value:
        return float("-inf")
    return -value if select_by == "val_loss" else value


# ---- calibration: does "0.9" mean right 9 times in 10? ---------------------------------------------------
ECE_BINS = 15  # equal-width confidence bins, as Guo et al. (2017) report ECE


def reliability_bins(probs: torch.Tensor, labels: torch.Tensor, bins: int = ECE_BINS) -> list[dict[str, float | None]]:
    """Per equal-width bin of top-1 confidence: image count, mean confidence and accuracy (the reliability
    diagram's bars and the ECE's terms)."""
    conf, pred = probs.max(1)
    correct = (pred == labels).float()
    # bin b holds confidences in (b/bins, (b+1)/bins]; a confidence of exactly 0 joins the first bin
    index = (conf * bins).ceil().long().clamp(1, bins) - 1
    out = []
    for b in range(bins):
        mask = index == b
        n = int(mask.sum())
        out.append(
            {
                "lo": b / bins,
                "hi": (b + 1) / bins,
                "n": n,
                "confidence": float(conf[mask].mean()) if n else None,
                "accuracy": float(correct[mask].mean()) if n else None,
            }
        )
    return out


def calibration_scores(
    logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0, bins: int = ECE_BINS
) -> dict[str, Any]:
    """ECE (``bins`` equal-width bins of top-1 confidence), NLL (mean cross-entropy) and the multi-class
    Brier score (mean over images of the squared error summed over classes) of softmax(logits / T)."""
    logits, labels = logits.float().cpu(), labels.long().cpu()
    n = len(labels)
    if n == 0:
        return {"ece": float("nan"), "nll": float("nan"), "brier": float("nan"), "bins": []}
    scaled = logits / temperature
    probs = scaled.softmax(dim=1)
    table = reliability_bins(probs, labels, bins)
    ece = sum(
        float(b["n"] or 0) / n * abs(float(b["accuracy"] or 0) - float(b["confidence"] or 0)) for b in table if b["n"]
    )
    onehot = torch.nn.functional.one_hot(labels, probs.shape[1]).float()
    return {
        "ece": float(ece),
        "nll": float(torch.nn.functional.cross_entropy(scaled, labels)),
        "brier": float(((probs - onehot) ** 2).sum(1).mean()),
        "bins": table,
    }


def calibration_report(logits: torch.Tensor, labels: torch.Tensor, temperature: float | None) -> dict[str, Any]:
    """Before (raw softmax) and after (softmax(logits / T)) scores, with the temperature and the binning stated."""
    t = float(temperature) if temperature else 1.0
    return {
        "temperature": t,
        "ece_bins": ECE_BINS,
        "ece_binning": f"{ECE_BINS} equal-width bins of top-1 confidence",
        "before": calibration_scores(logits, labels, 1.0),
        "after": calibration_scores(logits, labels, t),
    }


def draw_reliability(report: dict[str, Any], title: str = "reliability") -> Any:
    """The reliability diagram (Guo et al. 2017, fig. 1): accuracy per confidence bin before and after
    temperature scaling, against the diagonal a calibrated model would follow."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 4), sharey=True)
    for ax, key, label in zip(axes, ("before", "after"), ("raw softmax", f"T = {report['temperature']:.3f}")):
        scores = report[key]
        bars = [b for b in scores["bins"] if b["n"]]
        width = 1.0 / max(len(scores["bins"]), 1)
        ax.bar(
            [b["lo"] for b in bars],
            [b["accuracy"] for b in bars],
            width=width,
            align="edge",
            edgecolor="black",
            color="C0",
            label="accuracy",
        )
        ax.bar(
            [b["lo"] for b in bars],
            [b["confidence"] - b["accuracy"] for b in bars],
            bottom=[b["accuracy"] for b in bars],
            width=width,
            align="edge",
            color="C3",
            alpha=0.35,
            label="gap to confidence",
        )
        ax.plot([0, 1], [0, 1], "k--", lw=1)
        ax.set(
            xlim=(0, 1),
            ylim=(0, 1),
            xlabel="confidence (top-1 probability)",
            title=f"{label}: ECE {scores['ece']:.4f}, NLL {scores['nll']:.4f}",
        )
        ax.legend(fontsize=7, loc="upper left")
    axes[0].set_ylabel("accuracy")
    fig.suptitle(f"{title} ({report.get('ece_bins', ECE_BINS)} equal-width bins)")
    fig.tight_layout()
    return fig
