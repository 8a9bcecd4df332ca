"""Test-time augmentation: views built on the eval transform, logits averaged, and said in every figure."""

from __future__ import annotations

import json

import datasets
import pytest
import torch
from PIL import Image

import zoo
from zoo.cli import main as cli
from zoo.errors import ConfigError
from zoo.inference import eval_transform, evaluate, tta_views


def _photos():
    from skimage import data

    return [Image.fromarray(a).convert("RGB") for a in (data.chelsea(), data.coffee(), data.astronaut(), data.rocket())]


def _cfg(size: int = 64) -> dict:
    return {
        "input_size": (3, size, size),
        "mean": (0.5,) * 3,
        "std": (0.25,) * 3,
        "interpolation": "bilinear",
        "crop_pct": 0.875,
        "crop_mode": "center",
    }


def test_views_are_built_on_the_eval_transform():
    img, cfg = _photos()[0], _cfg()
    plain = eval_transform(cfg)(img)
    flip = tta_views(cfg, "flip")(img)
    assert flip.shape == (2, 3, 64, 64) and torch.equal(flip[0], plain) and torch.equal(flip[1], plain.flip(-1))
    five = tta_views(cfg, "five_crop")(img)
    ten = tta_views(cfg, "ten_crop")(img)
    assert five.shape == (5, 3, 64, 64) and ten.shape == (10, 3, 64, 64)
    assert torch.equal(ten[5:], five.flip(-1))
    # the centre view is (within one pixel of offset) the eval crop; the corners differ from it
    assert (five[4] - plain).abs().mean() < 0.25 * (five[0] - plain).abs().mean()
    with pytest.raises(ConfigError, match="'mirror' is not one of none, flip, five_crop, ten_crop"):
        tta_views(cfg, "mirror")


def _dataset(images, labels, names):
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)})
    return datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)


def _make(case: str, tiny_hf_dir):
    if case == "hf":
        model = zoo.create_model(f"hf:{tiny_hf_dir('vit', num_labels=3)}", pretrained=True)
        model.label_names = None
        return model
    model = zoo.create_model(case, pretrained=case.startswith("pypi"), num_classes=3)
    model.reset_classifier(3)
    return model


@pytest.mark.parametrize("case", ["timm:test_resnet", "timm:test_vit", "hf", "tv:resnet18", "pypi:efficientnet_lite0"])
def test_flip_tta_averages_the_logits_of_the_image_and_its_mirror_on_every_source(case, tiny_hf_dir):
    model = _make(case, tiny_hf_dir).eval()
    if not case.startswith("hf"):
        model.data_config["input_size"] = (3, 64, 64)
    photos = _photos()
    ds = _dataset(photos, [0, 1, 2, 0], [str(i) for i in range(3)])
    plain = evaluate(model, ds, progress=False)
    flip = evaluate(model, ds, progress=False, tta="flip")
    assert plain["tta"] == "none" and flip["tta"] == "flip"
    x = torch.stack([eval_transform(model.data_config)(p) for p in photos])
    with torch.no_grad():
        mean = (model(x) + model(x.flip(-1))) / 2
    assert flip["loss"] == pytest.approx(
        float(torch.nn.functional.cross_entropy(mean, torch.tensor([0, 1, 2, 0]))), abs=1e-4
    )
    assert flip["loss"] != pytest.approx(plain["loss"], abs=1e-6)


def test_zoo_eval_tta_says_which_tta_produced_the_figures(tmp_path, capsys):
    model = zoo.create_model("timm:test_resnet", pretrained=False, num_classes=3)
    model.reset_classifier(3, ["a", "b", "c"])
    model.data_config["input_size"] = (3, 64, 64)
    zoo.save(model.eval(), tmp_path / "m")
    root = tmp_path / "photos"
    for split in ("train", "test"):
        for i, p in enumerate(_photos() * 2):
            (root / split / "abc"[i % 3]).mkdir(parents=True, exist_ok=True)
            p.save(root / split / "abc"[i % 3] / f"{i}.png")
    for tta in ("none", "ten_crop"):
        assert (
            cli(
                [
                    "eval",
                    str(tmp_path / "m"),
                    "--data",
                    f"imagefolder:{root}",
                    "--tta",
                    tta,
                    "--json",
                    "--out",
                    str(tmp_path / tta),
                ]
            )
            == 0
        )
        out = json.loads(capsys.readouterr().out)
        assert out["tta"] == tta and out["calibration"]["ece_bins"] == 15
        assert json.loads((tmp_path / tta / "metrics.json").read_text())["tta"] == tta


def test_recipe_eval_tta_is_checked():
    from zoo.train.recipe import load_recipe

    assert load_recipe({"eval": {"tta": "five_crop"}}).eval.tta == "five_crop"
    with pytest.raises(ConfigError, match="eval.tta"):
        load_recipe({"eval": {"tta": "mirror"}})
