"""Run reports: zoo train leaves report.html (and a comparison page), zoo report writes them for any run folder.

The runs are real (tiny timm model, CIFAR-schema images on disk); the checks read the HTML the way a browser
would get it (every image an inline PNG that decodes) and recompute the top losses through zoo.predict.
"""

from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image
from sklearn.metrics import precision_recall_fscore_support
from synthetic_data import make_cifar_like

import zoo
from zoo.cli import main as zoo_main
from zoo.data import load_dataset
from zoo.inference import evaluate, predict
from zoo.report import most_confused, per_class, read_run, run_context, write_report
from zoo.train.run import train


def recipe(spec: str, out: Path, **sections) -> dict:
    base = {
        "name": "r",
        "model": {"name": "timm:test_resnet", "pretrained": False},
        "data": {"spec": spec, "image_size": 32, "batch_size": 32, "augment": "none", "val_size": 0.25},
        # the head trains first, then everything: the per-group learning rates change between epochs
        "strategy": {"name": "freeze_then_unfreeze", "unfreeze_epoch": 1, "unfreeze_stages": -1},
        "optim": {"lr": 1e-2, "weight_decay": 0.0},
        "train": {"epochs": 2},
        "output": {"dir": str(out)},
        "resume": "never",
    }
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return base


@pytest.fixture(scope="module")
def data_spec(tmp_path_factory) -> str:
    return str(make_cifar_like(tmp_path_factory.mktemp("data") / "cifar", n_per_class=12, size=32, fmt="disk"))


@pytest.fixture(scope="module")
def runs(data_spec, tmp_path_factory) -> tuple[Path, list]:
    """A two-variant recipe, as `zoo train` runs it."""
    out = tmp_path_factory.mktemp("runs")
    summaries = train(recipe(data_spec, out, variants={"ftu": {}, "scratch": {"strategy.name": "scratch"}}))
    return out, summaries


class Page(HTMLParser):
    """The images, links and text of a page, as a browser would read it."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.images: list[dict[str, str]] = []
        self.urls: list[str] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a)
        for key in ("src", "href"):
            if a.get(key):
                self.urls.append(a[key])

    def handle_data(self, data):
        self.text.append(data)


def decode(uri: str) -> Image.Image:
    assert uri.startswith("data:image/png;base64,"), uri[:40]
    image = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    image.load()
    return image


def test_train_writes_a_self_contained_report_per_run(runs):
    out, summaries = runs
    for s in summaries:
        html = (Path(s.run_dir) / "report.html").read_text()
        page = Page(html)
        # nothing fetched at view time: every URL is inline or an in-page anchor
        assert all(u.startswith(("data:", "#")) for u in page.urls), [u for u in page.urls if not u.startswith("data:")]
        classes = [img.get("class", "") for img in page.images]
        for figure in ("curves", "lr", "confusion"):
            [img] = [i for i in page.images if figure in i.get("class", "").split()]
            assert min(decode(img["src"]).size) > 100, figure
        thumbs = [decode(i["src"]) for i in page.images if i.get("class") == "thumb"]
        assert thumbs and all(t.size == (112, 112) for t in thumbs), classes
        text = " ".join(page.text)
        for words in (
            "timm:test_resnet",
            "Top losses",
            "Most confidently wrong",
            "Least confident right",
            "Recipe that ran",
            "precision",
            "torch",
            s.strategy,
        ):
            assert words in text, words
        splits = read_run(s.run_dir).dataset["splits"]
        assert splits["validation"] == 30 and splits["train"] == 90
        assert ", ".join(f"{k} {v}" for k, v in splits.items()) in re.sub(r"\s+", " ", text)


def test_trainer_logs_lr_per_layer_group_and_environment(runs):
    out, summaries = runs
    run = read_run(summaries[0].run_dir)
    first, second = (r["lr_groups"] for r in run.epochs)
    assert list(first)[0] == "stem" and list(first)[-1] == "head" and len(first) > 2
    assert first["head"] > 0 and all(v == 0 for k, v in first.items() if k != "head")  # only the head trains
    assert all(v > 0 for v in second.values())  # everything unfrozen at epoch 2
    env = run.environment
    assert env["device"] == "cpu" and env["num_processes"] == 1 and "torch" in env["versions"]


def test_top_losses_are_the_models_real_mistakes(runs, data_spec):
    out, summaries = runs
    run = read_run(summaries[1].run_dir)  # scratch: plenty of mistakes
    ctx = run_context(run, top_n=50, progress=False)  # the data reloaded from the recipe's spec
    gallery = ctx["gallery"]
    model = zoo.load(run.path / "model")
    val = load_dataset(data_spec, val_size=0.25, progress=False)["validation"]
    assert gallery["scored"] == len(val) == 30
    result = evaluate(model, val, progress=False)
    assert gallery["errors"] == round((1 - result["top1"]) * len(val)) > 0
    losses = [it["loss"] for it in gallery["wrong"]]
    assert losses == sorted(losses, reverse=True) and len(losses) == gallery["errors"]
    for it in gallery["wrong"] + gallery["unsure"]:
        [[(label, p)]] = predict(model, val[it["index"]]["image"], top_k=1)
        assert label == it["predicted"] and p == pytest.approx(it["probability"], abs=1e-5)
        assert model.label_names[val[it["index"]]["label"]] == it["true"]
    assert all(it["true"] != it["predicted"] for it in gallery["wrong"])
    sure = [it["p_true"] for it in gallery["unsure"]]
    assert sure == sorted(sure) and all(it["true"] == it["predicted"] for it in gallery["unsure"])


def test_per_class_and_most_confused_agree_with_sklearn(runs):
    run = read_run(runs[1][1].run_dir)
    matrix = run.final["confusion"]
    y_true = [i for i, row in enumerate(matrix) for j, c in enumerate(row) for _ in range(c)]
    y_pred = [j for i, row in enumerate(matrix) for j, c in enumerate(row) for _ in range(c)]
    p, r, f, support = precision_recall_fscore_support(y_true, y_pred, labels=range(10), zero_division=0)
    rows = per_class(matrix, run.label_names)
    assert [x["support"] for x in rows] == list(support)
    assert [x["recall"] or 0 for x in rows] == pytest.approx(list(r))
    assert [x["precision"] or 0 for x in rows] == pytest.approx(list(p))
    assert [x["f1"] or 0 for x in rows] == pytest.approx(list(f))
    pairs = most_confused(matrix, run.label_names, n=3)
    counts = sorted((c for i, row in enumerate(matrix) for j, c in enumerate(row) if i != j), reverse=True)
    assert [x["count"] for x in pairs] == [c for c in counts[:3] if c]


def test_multi_variant_recipe_writes_a_comparison_page(runs):
    out, summaries = runs
    page = Page((out / "r-comparison.html").read_text())
    text = re.sub(r"\s+", " ", " ".join(page.text))
    assert "Side by side" in text and "r-ftu" in text and "r-scratch" in text
    for s in summaries:  # the side-by-side row carries the run's own numbers
        assert f"{s.val_top1:.4f}" in text and f"{s.final_top1:.4f} (test)" in text
    [overlay] = [i for i in page.images if i.get("id") == "overlay"]
    assert decode(overlay["src"]).size[0] > 500
    assert json.loads((out / "r-comparison.json").read_text())[0]["name"] == "r-ftu"


def test_zoo_report_cli(runs, tmp_path, capsys):
    out, summaries = runs
    target = tmp_path / "both.html"
    assert zoo_main(["report", *(s.run_dir for s in summaries), "-o", str(target), "--top-losses", "4"]) == 0
    page = Page(target.read_text())
    assert sum(i.get("class") == "thumb" for i in page.images) > 0
    assert str(target) in capsys.readouterr().out
    single = write_report(summaries[0].run_dir, tmp_path / "one.html", top_n=0, progress=False)
    assert "Top losses not shown: disabled" in single.read_text()


def test_zoo_report_names_a_bad_folder(tmp_path, capsys):
    assert zoo_main(["report", str(tmp_path / "nope")]) == 2
    assert "nope" in capsys.readouterr().err
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "metrics.jsonl").write_text(json.dumps({"kind": "epoch", "epoch": 0}) + "\n")
    assert zoo_main(["report", str(tmp_path / "half")]) == 2
    assert "did not finish" in capsys.readouterr().err
