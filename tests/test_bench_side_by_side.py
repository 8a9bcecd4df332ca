"""The tutorial probe's switches: each removes one cause of its accuracy gap, and only that one."""

from __future__ import annotations

import pytest
import torch

from zoo.bench import baselines
from zoo.data import load_dataset
from zoo.data.transforms import PerSampleTransform

# each builds EfficientNet-Lite0 with its real weights and runs an epoch: seconds each on a quiet machine,
# tens of seconds on a busy one
pytestmark = pytest.mark.slow


class _Small:
    """The first images of digits, in the ImageDataset shape the baselines read (num_classes, ds[split])."""

    def __init__(self, n: int = 32) -> None:
        ds = load_dataset("sklearn:digits", progress=False)
        self.num_classes = ds.num_classes
        self.splits = {s: ds[s].select(range(n)) for s in ("train", "validation")}

    def __getitem__(self, split: str):
        return self.splits[split]


@pytest.fixture(scope="module")
def small():
    return _Small()


def _probe(monkeypatch, small, **kw):
    seen = {}
    real_backbone, real_split = baselines._backbone, baselines._PILSplit

    def backbone(*a, **k):
        seen["model"] = real_backbone(*a, **k)
        seen["bn_before"] = {n: b.clone() for n, b in seen["model"].named_buffers() if n.endswith("running_mean")}
        return seen["model"]

    def split(data, transform):
        seen["transform"] = transform
        return real_split(data, transform)

    monkeypatch.setattr(baselines, "_backbone", backbone)
    monkeypatch.setattr(baselines, "_PILSplit", split)
    result = baselines.tutorial_linear_probe(
        "pypi:efficientnet_lite0", small, epochs=1, batch_size=16, lr=1e-2, image_size=32, **kw
    )
    after = {n: b for n, b in seen["model"].named_buffers() if n.endswith("running_mean")}
    drifted = any(not torch.equal(seen["bn_before"][n], after[n]) for n in after)
    return result, seen["transform"], drifted


def test_as_the_tutorials_write_it_batchnorm_drifts_and_resize_is_used(monkeypatch, small):
    result, transform, drifted = _probe(monkeypatch, small)
    assert drifted and not isinstance(transform, PerSampleTransform)
    assert result.name == "tutorial loop (linear probe)" and len(result.curve) == 1


def test_bn_eval_keeps_the_statistics_and_changes_nothing_else(monkeypatch, small):
    result, transform, drifted = _probe(monkeypatch, small, bn_eval=True)
    assert not drifted and not isinstance(transform, PerSampleTransform)
    assert result.name == "tutorial loop + BatchNorm eval"


def test_zoo_preprocessing_is_zoos_own_eval_transform(monkeypatch, small):
    result, transform, drifted = _probe(monkeypatch, small, bn_eval=True, preprocessing="zoo")
    assert isinstance(transform, PerSampleTransform) and not transform.train and not drifted
    assert result.name == "tutorial loop + BatchNorm eval + zoo preprocessing"
    with pytest.raises(ValueError, match="'other'"):
        baselines.tutorial_linear_probe(
            "pypi:efficientnet_lite0", small, epochs=1, batch_size=16, lr=1e-2, preprocessing="other"
        )
