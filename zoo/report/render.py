"""Turn run folders into one self-contained HTML page (Jinja2 templates, matplotlib figures inline)."""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2

from zoo import __version__
from zoo.errors import ConfigError
from zoo.report import figures
from zoo.report.gallery import top_losses
from zoo.report.run import RunData, most_confused, per_class, read_run

REPORT_NAME = "report.html"

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("zoo.report", "templates"),
    autoescape=jinja2.select_autoescape(["html", "j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


_env.filters["fmt"] = _fmt


def run_context(run: RunData, *, top_n: int = 12, dataset: Any = None, progress: bool = True) -> dict[str, Any]:
    """Everything one run's section shows. The top losses need the model and the data: when either is
    missing (a run folder copied without its data), the section says why instead of failing the report."""
    matrix = run.final.get("confusion") or []
    try:
        gallery = top_losses(run, n=top_n, dataset=dataset, progress=progress) if top_n else None
        gallery_error = None if top_n else "disabled (--top-losses 0)"
    except Exception as exc:  # noqa: BLE001 - the rest of the report is still worth writing
        gallery, gallery_error = None, f"{type(exc).__name__}: {exc}"
    return {
        "run": run,
        "rows": run.summary_row(),
        "curves": figures.curves([run]) if run.epochs else None,
        "lr": figures.learning_rates(run) if run.epochs else None,
        "confusion": figures.confusion(matrix, run.label_names, f"{run.name}: {run.split} confusion matrix")
        if matrix
        else None,
        "reliability": figures.reliability(run.final["calibration"], f"{run.name}: {run.split} reliability")
        if run.final.get("calibration")
        else None,
        "per_class": per_class(matrix, run.label_names) if matrix else [],
        "confused": most_confused(matrix, run.label_names),
        "gallery": gallery,
        "gallery_error": gallery_error,
        "splits": run.dataset.get("splits") or {},
    }


def render(contexts: Sequence[Mapping[str, Any]], title: str | None = None) -> str:
    """The HTML of a report on one run, or a side-by-side comparison of several (each run in full below)."""
    runs = [c["run"] for c in contexts]
    return _env.get_template("report.html.j2").render(
        title=title or (runs[0].name if len(runs) == 1 else f"{len(runs)} runs: " + ", ".join(r.name for r in runs)),
        sections=contexts,
        overlay=figures.curves(runs) if len(runs) > 1 else None,
        created=_dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        zoo_version=__version__,
    )


def write_report(
    run_dirs: str | os.PathLike | Sequence[str | os.PathLike],
    out: str | os.PathLike | None = None,
    *,
    top_n: int = 12,
    contexts: Sequence[Mapping[str, Any]] | None = None,
    progress: bool = True,
) -> Path:
    """Write the report of one or several run folders to ``out`` (default: RUN_DIR/report.html for one run,
    ./report.html for several) and return its path. ``contexts`` reuses sections already computed."""
    dirs = [run_dirs] if isinstance(run_dirs, (str, os.PathLike)) else list(run_dirs)
    if not dirs and not contexts:
        raise ConfigError("no run folder given; pass one or more folders `zoo train` wrote")
    sections = (
        list(contexts) if contexts else [run_context(read_run(Path(d)), top_n=top_n, progress=progress) for d in dirs]
    )
    target = Path(out) if out else (sections[0]["run"].path / REPORT_NAME if len(sections) == 1 else Path(REPORT_NAME))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(render(sections), encoding="utf-8")
    os.replace(tmp, target)
    return target
