"""What a run folder holds, read once into plain data the templates and figures use.

A run folder (``zoo train`` writes it) has ``recipe.yaml``, ``metrics.jsonl`` (one record per epoch, then the
final evaluation) and ``model/`` (``zoo.json`` with the dataset's label names and split sizes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from zoo.errors import ConfigError
from zoo.metrics import read_metrics


@dataclass
class RunData:
    """One run, as the report shows it."""

    path: Path
    name: str
    recipe_text: str
    recipe: dict[str, Any]
    epochs: list[dict[str, Any]]
    final: dict[str, Any]
    meta: dict[str, Any]
    label_names: list[str]
    gallery: dict[str, Any] = field(default_factory=dict)  # top losses, filled by zoo.report.gallery

    @property
    def strategy(self) -> str:
        return str(self.recipe.get("strategy", {}).get("name", "?"))

    @property
    def backbone(self) -> str:
        return str(self.recipe.get("model", {}).get("name") or self.meta.get("model", "?"))

    @property
    def dataset(self) -> dict[str, Any]:
        return self.meta.get("dataset") or {}

    @property
    def split(self) -> str:
        return str(self.final.get("split", "validation"))

    @property
    def environment(self) -> dict[str, Any]:
        env = dict(self.final.get("environment") or {})
        env.setdefault("num_processes", self.final.get("num_processes"))
        if "versions" not in env and self.meta.get("zoo_version"):
            env["versions"] = {"zoo": self.meta["zoo_version"]}
        return env

    def summary_row(self) -> dict[str, Any]:
        """The side-by-side table's row."""
        f = self.final
        return {
            "run": self.name,
            "strategy": self.strategy,
            "best_val_top1": f.get("best_val_top1"),
            "final_top1": f.get("top1"),
            "split": self.split,
            "train_seconds": f.get("train_seconds"),
            "images_per_sec": f.get("images_per_sec"),
            "peak_mem_mb": f.get("peak_mem_mb"),
            "epochs": len(self.epochs),
            "best_epoch": f.get("best_epoch"),
        }


def read_run(run_dir: str | Path) -> RunData:
    """A run folder's recipe, metrics and model metadata; a ConfigError naming the folder if it is not one."""
    path = Path(run_dir)
    metrics_path = path / "metrics.jsonl"
    if not path.is_dir():
        raise ConfigError(
            f"run folder {str(path)!r} does not exist; pass a folder `zoo train` wrote, e.g. runs/quickstart-finetune"
        )
    if not metrics_path.is_file():
        raise ConfigError(
            f"{str(path)!r} is not a zoo run folder (no metrics.jsonl); pass a folder `zoo train` "
            f"wrote, e.g. runs/quickstart-finetune"
        )
    try:
        records = read_metrics(metrics_path)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{metrics_path} is not valid JSON lines ({exc})") from exc
    finals = [r for r in records if r.get("kind") == "final"]
    if not finals:
        raise ConfigError(
            f"{str(path)!r} holds no final evaluation in metrics.jsonl: the run did not finish. "
            f"Resume it with `zoo train {path / 'recipe.yaml'}` (resume: auto) and report again."
        )
    recipe_path = path / "recipe.yaml"
    recipe_text = recipe_path.read_text() if recipe_path.is_file() else ""
    recipe = (yaml.safe_load(recipe_text) or {}) if recipe_text else {}
    meta_path = path / "model" / "zoo.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    final = finals[-1]
    n = len(final.get("confusion") or [])
    names = meta.get("label_names") or (meta.get("dataset") or {}).get("label_names") or [str(i) for i in range(n)]
    return RunData(
        path=path,
        name=str(recipe.get("name") or path.name),
        recipe_text=recipe_text,
        recipe=recipe,
        epochs=[r for r in records if r.get("kind") == "epoch"],
        final=final,
        meta=meta,
        label_names=list(names),
    )


def per_class(confusion: list[list[int]], names: list[str]) -> list[dict[str, Any]]:
    """Precision, recall, F1 and support per class from a confusion matrix (rows true, columns predicted)."""
    rows = []
    for i, name in enumerate(names):
        tp = confusion[i][i]
        support = sum(confusion[i])
        predicted = sum(row[i] for row in confusion)
        precision = tp / predicted if predicted else None
        recall = tp / support if support else None
        f1 = (
            (2 * precision * recall / (precision + recall))
            if precision and recall
            else (0.0 if precision is not None and recall is not None else None)
        )
        rows.append({"label": name, "precision": precision, "recall": recall, "f1": f1, "support": support})
    return rows


def most_confused(confusion: list[list[int]], names: list[str], n: int = 10) -> list[dict[str, Any]]:
    """The ``n`` largest off-diagonal cells: which true class is most often taken for which other."""
    cells = [
        (confusion[i][j], i, j) for i in range(len(names)) for j in range(len(names)) if i != j and confusion[i][j]
    ]
    cells.sort(key=lambda c: (-c[0], c[1], c[2]))
    return [
        {"true": names[i], "predicted": names[j], "count": count, "share": count / max(sum(confusion[i]), 1)}
        for count, i, j in cells[:n]
    ]
