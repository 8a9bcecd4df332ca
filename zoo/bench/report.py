"""Benchmark results as files: rows of dicts -> CSV, a Markdown table and a scatter plot.

Generic on purpose: the backbone table and the transfer table both write rows of dicts and only
differ in which columns they show and plot. CSV stays the source of truth (:func:`read_csv` reads
it back with numbers parsed), so Markdown and PNG can be rebuilt from it at any time.
"""
from __future__ import annotations

import csv
import datetime as _dt
import math
import platform
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

Row = Mapping[str, Any]


# ---- values ------------------------------------------------------------------------------------
def parse_value(text: str) -> Any:
    """CSV text back to a Python value: '' -> None, '12' -> 12, '1.5' -> 1.5, 'True' -> True."""
    if text == "":
        return None
    if text in ("True", "False"):
        return text == "True"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def format_value(value: Any, digits: int = 2) -> str:
    """A cell for humans: None -> '', floats with ``digits`` decimals (3 significant when small)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != 0 and abs(value) < 10 ** (-digits + 1):
            return f"{value:.3g}"
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    return str(value)


def slugify(text: str) -> str:
    """'NVIDIA H100 80GB HBM3' -> 'nvidia-h100-80gb-hbm3': safe in a file name."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


# ---- CSV ---------------------------------------------------------------------------------------
def columns_of(rows: Sequence[Row], preferred: Sequence[str] = ()) -> list[str]:
    """``preferred`` first (those present in some row), then any other key in first-seen order."""
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(key, None)
    return [c for c in preferred if c in seen] + [c for c in seen if c not in preferred]


def write_csv(rows: Sequence[Row], path: str | Path, columns: Sequence[str] | None = None) -> Path:
    """Write rows (missing keys become empty cells); the parent folder is created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = list(columns) if columns is not None else columns_of(rows)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: "" if row.get(c) is None else row.get(c) for c in cols})
    return path


def read_csv(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a CSV with numbers parsed back (see :func:`parse_value`)."""
    with Path(path).open(newline="") as fh:
        return [{k: parse_value(v) for k, v in row.items()} for row in csv.DictReader(fh)]


# ---- Markdown ----------------------------------------------------------------------------------
def run_metadata(**extra: Any) -> dict[str, Any]:
    """Who measured what with which libraries: goes into a results header so a table is never orphaned."""
    import torch

    meta: dict[str, Any] = dict(extra)
    meta.setdefault("date", _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"))
    meta["torch"] = torch.__version__
    try:
        import timm

        meta["timm"] = timm.__version__
    except ImportError:  # pragma: no cover - timm is a dependency
        meta["timm"] = None
    meta["python"] = platform.python_version()
    meta["platform"] = platform.platform(terse=True)
    return meta


def markdown_table(rows: Sequence[Row], columns: Sequence[str], digits: int = 2) -> str:
    """A GitHub-flavoured Markdown table; the first column left-aligned, numbers right-aligned."""
    head = "| " + " | ".join(columns) + " |"
    align = "|" + "|".join(":---" if i == 0 else "---:" for i in range(len(columns))) + "|"
    body = ["| " + " | ".join(format_value(row.get(c), digits).replace("|", "\\|") for c in columns) + " |"
            for row in rows]
    return "\n".join([head, align, *body])


def write_markdown(rows: Sequence[Row], path: str | Path, columns: Sequence[str] | None = None,
                   title: str | None = None, meta: Mapping[str, Any] | None = None,
                   notes: Sequence[str] = (), image: str | Path | None = None) -> Path:
    """A Markdown file: title, a metadata list (device, precision, versions, date), the table, notes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = list(columns) if columns is not None else columns_of(rows)
    parts: list[str] = []
    if title:
        parts.append(f"# {title}\n")
    if meta:
        parts.append("\n".join(f"- **{k}**: {format_value(v)}" for k, v in meta.items() if v is not None) + "\n")
    parts.append(markdown_table(rows, cols) + "\n")
    if image is not None:
        rel = Path(image).name if Path(image).parent == path.parent else str(image)
        parts.append(f"![{Path(image).stem}]({rel})\n")
    if notes:
        parts.append("\n".join(f"- {n}" for n in notes) + "\n")
    path.write_text("\n".join(parts))
    return path


# ---- plot --------------------------------------------------------------------------------------
def scatter_plot(rows: Sequence[Row], x: str, y: str, path: str | Path, label: str | None = "model",
                 logx: bool = False, logy: bool = False, title: str | None = None,
                 xlabel: str | None = None, ylabel: str | None = None, front: str | None = None) -> Path:
    """One labelled point per row of ``y`` against ``x`` (rows missing either are skipped). With ``front``,
    the rows whose ``front`` column is true are joined by a line (a Pareto front)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt

    points = [(float(r[x]), float(r[y]), r.get(label) if label else None) for r in rows
              if isinstance(r.get(x), (int, float)) and isinstance(r.get(y), (int, float))]
    if not points:
        raise ValueError(f"no row has numeric {x!r} and {y!r} to plot; columns seen: {columns_of(rows)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 5), dpi=120)
    ax.scatter([p[0] for p in points], [p[1] for p in points], s=36, zorder=3)
    if front:
        on = sorted((float(r[x]), float(r[y])) for r in rows if r.get(front) in (True, "True", "yes"))
        if on:
            ax.step([p[0] for p in on], [p[1] for p in on], where="post", color="tab:orange", alpha=0.7,
                    zorder=2, label="Pareto front")
            ax.legend(loc="lower right", fontsize=8)
    for px, py, text in points:
        if text is not None:
            ax.annotate(str(text), (px, py), textcoords="offset points", xytext=(5, 4), fontsize=8)
    from matplotlib.ticker import FuncFormatter

    plain = FuncFormatter(lambda v, _pos: f"{v:g}")  # '8' rather than '8 x 10^0' on log axes
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    for axis, log in ((ax.xaxis, logx), (ax.yaxis, logy)):
        if log:
            axis.set_major_formatter(plain)
            axis.set_minor_formatter(plain)
    ax.margins(0.15)  # room for the labels of the outermost points
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel(ylabel or y)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
