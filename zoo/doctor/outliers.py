"""Outliers: images far from everything else in feature space (k-nearest-neighbour cosine distance).

The score of an image is its mean cosine distance to its ``k`` nearest neighbours among the other images
(duplicates of it excluded, so a copied outlier still stands out). An image is flagged when its score is far
above the typical one: more than ``z`` robust standard deviations (1.4826 x the median absolute deviation)
above the median. A scale-free rule, so the same ``z`` serves digits and photos.
"""

from __future__ import annotations

from typing import Any

import numpy as np

K = 5
Z = 3.0
BLOCK = 2048


def knn_distance(feats: np.ndarray, k: int = K, exclude_above: float = 0.995) -> np.ndarray:
    """Mean cosine distance to the ``k`` nearest other rows (rows at cosine >= ``exclude_above``, i.e.
    copies, are not neighbours). ``feats`` rows are L2-normalised."""
    n = len(feats)
    k = max(1, min(k, n - 1))
    norm = feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
    out = np.empty(n)
    for start in range(0, n, BLOCK):
        sim = norm[start : start + BLOCK] @ norm.T
        sim[sim >= exclude_above] = -np.inf  # itself and its copies
        top = -np.partition(-sim, k - 1, axis=1)[:, :k]
        top[~np.isfinite(top)] = -1.0
        out[start : start + BLOCK] = 1.0 - top.mean(1)
    return out


def find_outliers(feats: np.ndarray, *, k: int = K, z: float = Z) -> dict[str, Any]:
    """{"score": per-row kNN distance, "robust_z": its robust z-score, "flagged": rows, worst first}."""
    score = knn_distance(feats, k)
    med = float(np.median(score))
    mad = float(np.median(np.abs(score - med))) * 1.4826 or 1e-12
    rz = (score - med) / mad
    flagged = np.flatnonzero(rz > z)
    return {"score": score, "robust_z": rz, "flagged": flagged[np.argsort(-rz[flagged])], "k": k, "z": z}
