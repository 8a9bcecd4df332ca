"""Every path in a run folder, named once: the trainer, the resume, the state saver and the finish all ask
the layout instead of joining strings.

    <output.dir>/<name>/
      recipe.yaml        the resolved recipe (what actually ran)
      metrics.jsonl      one line per epoch, then the final evaluation
      best.safetensors   the best epoch's weights so far (train.select_best)
      states/state-N/    resumable training state (the last K kept), with the Progress and the recipe
      checkpoint/        the latest epoch's artifact, pushed to the Hub's `checkpoints` branch
      model/             the final model: model.safetensors + config.json + zoo.json + README.md
      curve.png, confusion.png, report.html, logs/
    <output.dir>/.cache/ features shared by the runs beside it (and `zoo rank`)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import cast

from zoo.train.schema import Recipe


@dataclass(frozen=True)
class RunLayout:
    """The run folder of one recipe (one variant)."""

    root: Path

    @classmethod
    def of(cls, recipe: Recipe) -> RunLayout:
        return cls(Path(recipe.output.dir) / cast(str, recipe.name))  # load_recipe fills the name in

    @property
    def recipe(self) -> Path:
        return self.root / "recipe.yaml"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def best_weights(self) -> Path:
        return self.root / "best.safetensors"

    @property
    def states(self) -> Path:
        return self.root / "states"

    @property
    def checkpoint(self) -> Path:
        return self.root / "checkpoint"

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def curve(self) -> Path:
        return self.root / "curve.png"

    @property
    def confusion(self) -> Path:
        return self.root / "confusion.png"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def feature_cache(self) -> Path:
        return self.root.parent / ".cache"
