"""A third-party source, installed as an entry point, goes through zoo's whole cycle: create, train one epoch
with `zoo train`, save, load bit-exact, predict, push to the Hub (test server) and pull back bit-exact.

The plugin defines no saved layout of its own, so zoo's generic layout carries it; nothing in zoo knows it.
Everything runs in a fresh interpreter, as a user's would, with the plugin found through its entry point.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from hub_server import HubServer

ROOT = Path(__file__).resolve().parents[1]

PLUGIN = '''
"""A toy third-party backbone source: a two-stage conv net under the prefix 'toyplug:'."""
import torch
from torch import nn

from zoo.backbones.base import Backbone, make_data_config
from zoo.backbones.source import ModelInfo, Source, unknown_model


class _Net(nn.Module):
    def __init__(self, num_classes, width):
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, stride=2, padding=1)
        self.stage1 = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.fc = nn.Linear(width, num_classes)

    def features(self, x):
        return self.stage1(torch.relu(self.stem(x))).mean((2, 3))

    def forward(self, x):
        return self.fc(self.features(x))


class ToyBackbone(Backbone):
    def forward_features(self, x):
        return self.model.features(x)

    def get_classifier(self):
        return self.model.fc

    def _set_classifier(self, n):
        self.model.fc = nn.Linear(self.num_features, n)

    def _layer_group_names(self):
        names = [n for n, _ in self.model.named_parameters()]
        return [("stem", [n for n in names if n.startswith("stem.")]),
                ("stage1", [n for n in names if n.startswith("stage1.")]),
                ("head", [n for n in names if n.startswith("fc.")])]


class ToySource(Source):
    WIDTHS = {"tiny": 8, "small": 16}

    def list_models(self, pattern=None, pretrained=False):
        return [ModelInfo(name=f"toyplug:{i}", source="toyplug", id=i) for i in self.WIDTHS]

    def check_id(self, model_id):
        if model_id not in self.WIDTHS:
            raise unknown_model("toyplug", model_id, self.WIDTHS)

    def create(self, model_id, num_classes=None, pretrained=True, **kwargs):
        self.check_id(model_id)
        width = self.WIDTHS[model_id]
        n = num_classes or 10
        return ToyBackbone(f"toyplug:{model_id}", _Net(n, width), make_data_config(32, crop_pct=1.0), width, n)
'''

CYCLE = """
import json, sys
from pathlib import Path

import torch
from PIL import Image
from sklearn.datasets import load_digits

import zoo
from zoo.cli.train import main as train_main

work = Path(sys.argv[1])
rc = train_main(["recipes/quickstart.yaml", "variants={}", "name=plug", f"output.dir={work}/runs",
                 "model.name=toyplug:tiny", "strategy.name=finetune", "train.epochs=1", "data.image_size=32",
                 "data.batch_size=64", "train.mixed_precision=no", "resume=never"])
assert rc == 0, rc
model_dir = work / "runs" / "plug" / "model"
loaded = zoo.load(model_dir)
assert type(loaded).__name__ == "ToyBackbone" and loaded.source == "toyplug", (type(loaded), loaded.source)
meta = json.loads((model_dir / "zoo.json").read_text())
assert meta["layout"] == "zoo" and meta["source"] == "toyplug", meta

# the saved tensors are bit-exact in the reloaded model
from safetensors.torch import load_file
saved = load_file(str(model_dir / "model.safetensors"))
assert all(torch.equal(saved[k], v) for k, v in loaded.model.state_dict().items())
again = zoo.load(model_dir)
assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), again.state_dict().values()))

digit = load_digits().images[0]
img = Image.fromarray((digit * 255 / 16).astype("uint8")).convert("RGB").resize((64, 64))
img.save(work / "digit.png")
preds = zoo.predict(loaded, [work / "digit.png"], top_k=3)[0]
assert len(preds) == 3 and all(name in loaded.label_names for name, _ in preds), preds

url = zoo.push_to_hub(model_dir, "plugin-user/toy-digits")
pulled = zoo.load("plugin-user/toy-digits")
assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), pulled.state_dict().values()))
assert zoo.predict(pulled, [work / "digit.png"], top_k=3)[0] == preds
print(json.dumps({"url": url, "top": preds[0][0], "label_names": loaded.label_names}))
"""


def _install_plugin(site: Path) -> None:
    pkg = site / "toyplug_zoo"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    dist = site / "toyplug_zoo-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toyplug-zoo\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[zoo.sources]\ntoyplug = toyplug_zoo:ToySource\n")


def test_plugin_source_goes_through_the_whole_cycle(tmp_path):
    site = tmp_path / "site"
    _install_plugin(site)
    with HubServer(lifetime=240) as hub:
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]),
            HF_ENDPOINT=hub.url,
            HF_HUB_OFFLINE="0",
            HF_HOME=str(tmp_path / "hf-home"),
            HF_TOKEN="test-token",
        )
        out = subprocess.run(
            [sys.executable, "-c", CYCLE, str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
        )
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
        result = json.loads(out.stdout.strip().splitlines()[-1])
        assert result["url"].endswith("plugin-user/toy-digits")
        assert result["label_names"] == [str(i) for i in range(10)]
        pushed = hub.state.files("plugin-user/toy-digits")
        assert {"model.safetensors", "config.json", "zoo.json", "README.md"} <= set(pushed)
        assert json.loads(pushed["config.json"])["zoo_source"] == "toyplug"
