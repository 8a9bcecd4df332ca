"""What a finished run reports is what it ships: the final metrics are those of the exact weights in
model/ (EMA and best-epoch selection included), `zoo eval` reproduces them, the model card names the data,
and a resumed run either continues the same settings or refuses, naming what changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from synthetic_data import make_cifar_like

import zoo
from zoo.cli import main as zoo_main
from zoo.cli.train import main as train_main
from zoo.metrics import read_metrics


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> str:
    """A small image folder with train/validation/test splits (32-px images, ten classes)."""
    return str(make_cifar_like(tmp_path_factory.mktemp("data") / "cifar", n_per_class=12, size=32, fmt="disk"))


def _overrides(spec: str, out: Path, *extra: str) -> list[str]:
    return [
        "recipes/quickstart.yaml",
        "variants={}",
        "name=r",
        f"output.dir={out}",
        f"data.spec={spec}",
        "model.name=timm:test_resnet",
        "model.pretrained=false",
        "data.image_size=32",
        "data.batch_size=16",
        "train.epochs=3",
        "optim.lr=3e-3",
        "resume=never",
        *extra,
    ]


@pytest.fixture(scope="module")
def ema_run(photos, tmp_path_factory) -> Path:
    """EMA on and best-epoch selection on: the combination whose final figures were once the wrong weights'."""
    out = tmp_path_factory.mktemp("runs")
    assert train_main(_overrides(photos, out, "train.ema=true", "train.ema_decay=0.9", "train.select_best=true")) == 0
    return out / "r"


def test_final_metrics_are_those_of_the_saved_model(ema_run, photos, capsys):
    final = [m for m in read_metrics(ema_run / "metrics.jsonl") if m["kind"] == "final"][-1]
    model = zoo.load(ema_run / "model")
    data = zoo.load_dataset(photos)
    again = zoo.evaluate(model, data[final["split"]], label_names=data.label_names, progress=False)
    assert again["top1"] == final["top1"] and again["confusion"] == final["confusion"]


def test_zoo_eval_reproduces_the_runs_test_top1_exactly(ema_run, photos, capsys):
    final = [m for m in read_metrics(ema_run / "metrics.jsonl") if m["kind"] == "final"][-1]
    assert final["split"] == "test"
    capsys.readouterr()
    assert zoo_main(["eval", str(ema_run / "model"), "--data", photos, "--json", "--out", str(ema_run / "eval")]) == 0
    reported = json.loads(capsys.readouterr().out)
    assert reported["split"] == "test" and reported["top1"] == final["top1"]
    card = (ema_run / "model" / "README.md").read_text()
    assert f"| dataset | {photos}" in card and "| dataset | ?" not in card


def test_resume_refuses_changed_settings_and_names_them(photos, tmp_path, capsys):
    assert train_main(_overrides(photos, tmp_path, "train.epochs=1")) == 0
    assert "starting fresh in" in capsys.readouterr().out
    rc = train_main(_overrides(photos, tmp_path, "train.epochs=1", "resume=auto", "data.batch_size=8", "optim.lr=0.01"))
    err = capsys.readouterr().err
    assert rc == 2
    assert "data.batch_size: 16 -> 8" in err and "optim.lr: 0.003 -> 0.01" in err
    assert "resume=never" in err and "name=NEW_NAME" in err
    # run length and output settings may change: a longer run continues from the saved state
    assert train_main(_overrides(photos, tmp_path, "train.epochs=2", "resume=auto")) == 0
    out = capsys.readouterr().out
    assert "resuming from" in out and "states/state-" in out
    epochs = [m["epoch"] for m in read_metrics(tmp_path / "r" / "metrics.jsonl") if m["kind"] == "epoch"]
    assert epochs == [0, 1]


def test_hub_license_is_a_recipe_key_that_reaches_the_model_card(tmp_path):
    from zoo.artifact.modelcard import render
    from zoo.train.recipe import load_recipe

    recipe = load_recipe(Path(__file__).resolve().parents[1] / "recipes" / "quickstart.yaml", ["hub.license=mit"])
    assert recipe.hub.license == "mit"
    model = zoo.create_model("timm:test_resnet", num_classes=2, pretrained=False)
    folder = zoo.save(model, tmp_path / "m", recipe=recipe.to_dict())
    card = (folder / "README.md").read_text()
    assert "\nlicense: mit\n" in card
    assert "license: mit" in render(json.loads((folder / "zoo.json").read_text()))


def test_a_run_without_upsampling_is_evaluated_the_same_way_by_zoo_eval(photos, tmp_path, capsys):
    """data.upsample=false keeps 32-px images at 32 px: the saved model carries that, so zoo eval does too."""
    args = _overrides(photos, tmp_path, "train.epochs=1", "data.image_size=64", "data.upsample=false")
    assert train_main(args) == 0
    run = tmp_path / "r"
    final = [m for m in read_metrics(run / "metrics.jsonl") if m["kind"] == "final"][-1]
    model = zoo.load(run / "model")
    assert model.data_config["upsample"] is False
    capsys.readouterr()
    assert zoo_main(["eval", str(run / "model"), "--data", photos, "--json", "--out", str(tmp_path / "e")]) == 0
    assert json.loads(capsys.readouterr().out)["top1"] == final["top1"]
