"""Benchmark results as files: rows of dicts -> CSV, a Markdown file (table through ``zoo.markdown``) and a
scatter plot; and the backbone table's own columns and files (:func:`write_backbone_results`).

Generic on purpose: the backbone table, the transfer table and ``zoo rank`` all write rows of dicts and only
differ in which columns they show and plot. CSV stays the source of truth (:func:`read_csv` reads it back
with numbers parsed), so Markdown and PNG can be rebuilt from it at any time. Where a result was measured
(device, versions, load) comes from ``zoo.env``.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from zoo.bench.measure import BenchConfig
from zoo.env import device_name, device_slug, load_average, run_metadata
from zoo.errors import ConfigError
from zoo.markdown import format_value, markdown_table

Row = Mapping[str, Any]

# timm's benchmark.py column names first, then ours (memory, the timm comparison, the run settings).
COLUMNS = (
    "model",
    "param_count",
    "infer_gmacs",
    "infer_img_size",
    "infer_batch_size",
    "infer_samples_per_sec",
    "infer_step_time",
    "infer_peak_mem_mb",
    "train_batch_size",
    "train_samples_per_sec",
    "train_step_time",
    "train_peak_mem_mb",
    "timm_model",
    "timm_infer_samples_per_sec",
    "infer_vs_timm",
    "timm_train_samples_per_sec",
    "train_vs_timm",
    "device",
    "precision",
    "channels_last",
    "compile",
    "threads",
    "warmup",
    "iters",
    "runs",
    "error",
)
# The Markdown table: every figure with its spread; the CSV has every column.
TABLE_COLUMNS = (
    "model",
    "param_count",
    "infer_gmacs",
    "infer_img_size",
    "infer_batch_size",
    *(
        f"{pre}{p}_samples_per_sec{suf}"
        for p in ("infer", "train")
        for pre in ("", "timm_")
        for suf in ("", "_min", "_max")
    ),
    *(f"{p}_vs_timm{suf}" for p in ("infer", "train") for suf in ("", "_min", "_max")),
    "infer_peak_mem_mb",
    "train_peak_mem_mb",
    "runs",
    "error",
)


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
def write_markdown(
    rows: Sequence[Row],
    path: str | Path,
    columns: Sequence[str] | None = None,
    title: str | None = None,
    meta: Mapping[str, Any] | None = None,
    notes: Sequence[str] = (),
    image: str | Path | None = None,
) -> Path:
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
def scatter_plot(
    rows: Sequence[Row],
    x: str,
    y: str,
    path: str | Path,
    label: str | None = "model",
    logx: bool = False,
    logy: bool = False,
    title: str | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
    front: str | None = None,
) -> Path:
    """One labelled point per row of ``y`` against ``x`` (rows missing either are skipped). With ``front``,
    the rows whose ``front`` column is true are joined by a line (a Pareto front)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt

    points = [
        (float(r[x]), float(r[y]), r.get(label) if label else None)
        for r in rows
        if isinstance(r.get(x), (int, float)) and isinstance(r.get(y), (int, float))
    ]
    if not points:
        raise ValueError(f"no row has numeric {x!r} and {y!r} to plot; columns seen: {columns_of(rows)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 5), dpi=120)
    ax.scatter([p[0] for p in points], [p[1] for p in points], s=36, zorder=3)
    if front:
        on = sorted((float(r[x]), float(r[y])) for r in rows if r.get(front) in (True, "True", "yes"))
        if on:
            ax.step(
                [p[0] for p in on],
                [p[1] for p in on],
                where="post",
                color="tab:orange",
                alpha=0.7,
                zorder=2,
                label="Pareto front",
            )
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


# ---- the backbone table ------------------------------------------------------------------------
def default_output(cfg: BenchConfig) -> Path:
    """benchmarks/results/backbones_<device>_<precision>[_cl][_compile].csv"""
    suffix = ("_cl" if cfg.channels_last else "") + ("_compile" if cfg.compile else "")
    return Path("benchmarks") / "results" / f"backbones_{device_slug(cfg.device)}_{cfg.precision}{suffix}.csv"


def write_backbone_results(
    rows: Sequence[dict[str, Any]],
    out: str | Path,
    cfg: BenchConfig,
    plot: bool = True,
    command: str | None = None,
    notes: Sequence[str] = (),
) -> list[Path]:
    """CSV at ``out``, a Markdown table (``.md``) and a throughput-vs-GMACs plot (``.png``) beside it.
    ``notes`` (e.g. "the machine was shared") go into the Markdown as they are."""
    out = Path(out)
    if out.suffix != ".csv":
        raise ConfigError(f"--out {out} must end in .csv (the .md and .png are written beside it).")
    columns = list(COLUMNS) + [c for c in columns_of(rows) if c not in COLUMNS]  # every run: same columns
    paths = [write_csv(rows, out, columns)]
    meta = run_metadata(
        device=device_name(cfg.device),
        precision=cfg.precision,
        channels_last=cfg.channels_last,
        compile=cfg.compile,
        batch_size=cfg.batch_size,
        threads=cfg.threads or "torch default",
        timing=f"{cfg.runs} fresh processes per model and tool (zoo, timm, zoo, timm, ...), each {cfg.warmup} "
        f"warm-up steps then {cfg.iters} timed steps; median [min, max] over the runs",
        load_average_at_write=load_average(),
        timm_script_sha256=next((r["timm_script_sha256"] for r in rows if r.get("timm_script_sha256")), None),
        command=f"`{command}`" if command else None,
    )
    png: Path | None = None
    if plot and any(isinstance(r.get("infer_samples_per_sec"), (int, float)) for r in rows):
        png = out.with_suffix(".png")
        ok = [r for r in rows if isinstance(r.get("infer_gmacs"), (int, float))]
        scatter_plot(
            ok,
            "infer_gmacs",
            "infer_samples_per_sec",
            png,
            label="model",
            logx=all(r["infer_gmacs"] > 0 for r in ok),
            logy=True,
            title=f"inference throughput vs GMACs - {meta['device']}, {cfg.precision}",
            xlabel="GMACs per image",
            ylabel="inference images/s",
        )
    notes = [
        *notes,
        "GMACs: torch.utils.flop_counter FLOPs of one image / 2 (matmul, conv and attention ops).",
        "Peak memory: CUDA max_memory_allocated (weights included); on CPU the peak RSS added by the "
        "phase on top of the built model (Linux VmHWM).",
        "*_batch_size is the batch used after any out-of-memory halving.",
    ]
    if cfg.protocol_shortfalls():
        notes.append("BELOW THE PROTOCOL (a smoke run, not a table): " + ", ".join(cfg.protocol_shortfalls()))
    if any(r.get("infer_vs_timm") is not None for r in rows):
        notes.append(
            "*_vs_timm = zoo images/s / timm benchmark.py images/s of the adjacent run pair; median "
            "[min, max] over the pairs. timm's script (sha256 in the header, unchanged) ran with the "
            "same model, batch, --img-size, precision, memory format, compile, steps and threads. "
            "Inference grad mode differs by design: zoo's path uses torch.no_grad (as zoo.predict), "
            "timm's script torch.inference_mode."
        )
    if not cfg.device.startswith("cuda"):
        notes.append("CPU figures from a shared machine: use them for ratios between rows, not as absolutes.")
    table_cols = [c for c in TABLE_COLUMNS if any(r.get(c) is not None for r in rows)]
    paths.append(
        write_markdown(
            rows, out.with_suffix(".md"), table_cols, title="Backbone benchmark", meta=meta, notes=notes, image=png
        )
    )
    if png is not None:
        paths.append(png)
    return paths
