"""The report's figures, drawn with matplotlib and returned as PNG data URIs (the page stays one file)."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from zoo.metrics import draw_confusion, draw_reliability  # noqa: E402
from zoo.report.run import RunData  # noqa: E402


def _data_uri(fig: Any) -> str:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _series(run: RunData, key: str) -> tuple[list[int], list[float]]:
    pts = [(r["epoch"] + 1, r[key]) for r in run.epochs if r.get(key) is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def curves(runs: Sequence[RunData]) -> str:
    """Loss and top-1 per epoch, train (dashed) and validation (solid); one colour per run when overlaid."""
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
    for n, run in enumerate(runs):
        colour = f"C{n % 10}"
        prefix = f"{run.name}: " if len(runs) > 1 else ""
        for ax, key, label, style in (
            (loss_ax, "train_loss", "train loss", "--"),
            (loss_ax, "val_loss", "validation loss", "-"),
            (acc_ax, "train_top1", "train top-1", "--"),
            (acc_ax, "val_top1", "validation top-1", "-"),
        ):
            x, y = _series(run, key)
            if x:
                ax.plot(x, y, style, marker="o", color=colour, label=prefix + label)
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss")
    acc_ax.set(xlabel="epoch", ylabel="top-1", title="accuracy", ylim=(0, 1.02))
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        ax.xaxis.get_major_locator().set_params(integer=True)
    return _data_uri(fig)


def learning_rates(run: RunData) -> str:
    """The learning rate of each layer group at the end of each epoch (a frozen group sits at 0)."""
    fig, ax = plt.subplots(figsize=(10, 3.4))
    if any("lr_groups" in r for r in run.epochs):
        groups = list(dict.fromkeys(g for r in run.epochs for g in r.get("lr_groups", {})))
        for n, group in enumerate(groups):
            pts = [(r["epoch"] + 1, r["lr_groups"][group]) for r in run.epochs if group in r.get("lr_groups", {})]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color=f"C{n % 10}", label=group)
    else:  # runs from before per-group logging: the one lr the trainer recorded
        x, y = _series(run, "lr")
        ax.plot(x, y, marker="o", label="lr (last group)")
    ax.set(xlabel="epoch", ylabel="learning rate", title="learning rate per layer group (start of each epoch)")
    ax.set_ylim(bottom=0)
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=4)
    ax.xaxis.get_major_locator().set_params(integer=True)  # type: ignore[call-arg]  # MaxNLocator takes it; the stubs type the base Locator
    return _data_uri(fig)


def confusion(matrix: list[list[int]], names: Sequence[str], title: str) -> str:
    """The run's confusion matrix, drawn as its confusion.png is (zoo.metrics.draw_confusion)."""
    return _data_uri(draw_confusion(matrix, names, title))


def reliability(report: dict[str, Any], title: str) -> str:
    """The reliability diagram before and after temperature scaling (zoo.metrics.draw_reliability)."""
    return _data_uri(draw_reliability(report, title))
