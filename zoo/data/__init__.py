"""The data layer: specs -> normalised splits (``image``/``label``) -> the model's own transforms.

``load_dataset(spec)`` is the entry point; ``transforms.build_transform`` is the per-sample PIL reference
path; ``fast.TensorStore`` + ``crops`` the decode-once fast path (crops cut in DataLoader workers).
"""

from __future__ import annotations

from zoo.data.dataset import ImageDataset, load_dataset
from zoo.data.specs import Spec, parse_spec

__all__ = ["ImageDataset", "Spec", "load_dataset", "parse_spec"]
