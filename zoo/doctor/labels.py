"""Label issues: out-of-fold probabilities of a linear probe, then confident learning.

Written from the paper (Northcutt, Jiang and Chuang, "Confident Learning: Estimating Uncertainty in Dataset
Labels", JAIR 70, 2021), not from any implementation:
  1. per-class thresholds t_j = the mean self-confidence p_j(x) of the examples labelled j (Eq. 2);
  2. the confident joint C[i][j]: examples labelled i whose p_j(x) >= t_j, counted under the j with the largest
     p among those above threshold (Eq. 1); calibrated so each row sums to the count of label i (Eq. 3);
  3. prune (Sec. 3.2): "prune by class" removes, for each label i, the sum_{j != i} C[i][j] examples with the
     lowest self-confidence; "prune by noise rate" removes, for each off-diagonal (i, j), the C[i][j]
     examples labelled i with the largest margin p_j - p_i; "both" keeps what both flag.
Ranking (Sec. 3.2 and Northcutt et al.'s ranking scores): self-confidence p_y(x), or the normalised margin
p_y(x) - max_{j != y} p_j(x); lower is more likely wrong.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from zoo.errors import DataError

METHODS = ("prune_by_class", "prune_by_noise_rate", "both")
PCA_DIMS = 64
RANKINGS = ("normalized_margin", "self_confidence")


def check_judgeable(labels: np.ndarray, label_names: list[str], folds: int) -> None:
    """A clear error for data the probe cannot judge: one class, or a class with fewer images than folds."""
    counts = np.bincount(labels, minlength=len(label_names))
    present = np.flatnonzero(counts)
    if len(present) < 2:
        raise DataError(
            f"the data has images of {len(present)} class(es): a label check needs at least two "
            "classes (add a folder per class)"
        )
    small = [(label_names[c], int(counts[c])) for c in present if counts[c] < folds]
    if small:
        shown = ", ".join(f"{n!r} ({k})" for n, k in small[:8])
        raise DataError(
            f"too few images per fold to judge labels: {len(small)} class(es) have fewer than "
            f"--folds {folds} images: {shown}. Add images of them, or lower --folds (at least 2)"
        )


def probe_inputs(features: np.ndarray, dims: int = PCA_DIMS, seed: int = 0) -> np.ndarray:
    """Centred features projected on their first ``dims`` principal components, scaled to unit mean variance.

    Unsupervised (no label is read), so fitting it on every row leaks nothing into the folds. Measured on
    digits with 5% flipped labels (benchmarks/bench_doctor.py): a stronger-regularised probe on 64 components
    ranks the flips better than one on all 1280 features, and fits an order of magnitude faster."""
    from sklearn.decomposition import PCA

    z = features - features.mean(0)
    if dims and min(z.shape) > dims:
        z = PCA(dims, random_state=seed).fit_transform(z)
    return z / max(float(z.std(0).mean()), 1e-12)


def out_of_fold_probs(
    features: np.ndarray, labels: np.ndarray, num_classes: int, *, folds: int = 5, C: float = 0.1, seed: int = 0
) -> np.ndarray:
    """[N, K] probabilities, each row from a logistic regression fitted on the other folds only."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    probs = np.zeros((len(labels), num_classes))
    for train_idx, test_idx in StratifiedKFold(folds, shuffle=True, random_state=seed).split(features, labels):
        clf = LogisticRegression(C=C, max_iter=2000)
        clf.fit(features[train_idx], labels[train_idx])
        probs[np.ix_(test_idx, clf.classes_)] = clf.predict_proba(features[test_idx])
    return probs


def thresholds(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    k = probs.shape[1]
    return np.array([probs[labels == j, j].mean() if (labels == j).any() else 1.0 for j in range(k)])


def confident_joint(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """The calibrated confident joint C[given][true], rows summing to the count of each given label."""
    k = probs.shape[1]
    above = probs >= thresholds(labels, probs)[None, :] - 1e-12
    best = np.where(above, probs, -np.inf).argmax(1)
    has = above.any(1)
    cj = np.zeros((k, k))
    np.add.at(cj, (labels[has], best[has]), 1)
    counts = np.bincount(labels, minlength=k)
    rows = cj.sum(1, keepdims=True)
    return np.where(rows > 0, cj / np.maximum(rows, 1) * counts[:, None], 0.0)


def quality(labels: np.ndarray, probs: np.ndarray, ranking: str = "normalized_margin") -> np.ndarray:
    """Label quality per example in [-1, 1] (margin) or [0, 1] (self-confidence): lower is more likely wrong."""
    self_conf = probs[np.arange(len(labels)), labels]
    if ranking == "self_confidence":
        return self_conf
    others = probs.copy()
    others[np.arange(len(labels)), labels] = -np.inf
    return self_conf - others.max(1)


def find_label_issues(labels: np.ndarray, probs: np.ndarray, method: str = "prune_by_class") -> np.ndarray:
    """Boolean mask of the examples confident learning flags (see the module docstring)."""
    if method not in METHODS:
        raise ValueError(f"method {method!r}: use one of {METHODS}")
    n, k = probs.shape
    cj = confident_joint(labels, probs)
    self_conf = probs[np.arange(n), labels]
    by_class = np.zeros(n, bool)
    by_rate = np.zeros(n, bool)
    for i in range(k):
        members = np.flatnonzero(labels == i)
        if not len(members):
            continue
        n_off = int(round(cj[i].sum() - cj[i, i]))
        if n_off > 0:
            by_class[members[np.argsort(self_conf[members], kind="stable")[:n_off]]] = True
        for j in range(k):
            n_ij = int(round(cj[i, j])) if j != i else 0
            if n_ij > 0:
                margin = probs[members, j] - probs[members, i]
                by_rate[members[np.argsort(-margin, kind="stable")[:n_ij]]] = True
    # our choice: an example the probe itself predicts as its given label is never flagged (pruning by rank
    # can reach into agreeing examples when the joint overestimates a noise rate)
    agrees = probs.argmax(1) == labels
    if method == "prune_by_class":
        return by_class & ~agrees
    if method == "prune_by_noise_rate":
        return by_rate & ~agrees
    return by_class & by_rate & ~agrees


def suggested(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """The most likely other label of each example."""
    others = probs.copy()
    others[np.arange(len(labels)), labels] = -np.inf
    return others.argmax(1)


def label_issues(
    features: np.ndarray,
    labels: np.ndarray,
    label_names: list[str],
    *,
    folds: int = 5,
    C: float = 0.1,
    seed: int = 0,
    method: str = "prune_by_class",
    ranking: str = "normalized_margin",
    pca_dims: int = PCA_DIMS,
) -> dict[str, Any]:
    """Everything the doctor reports about labels: probabilities, the flagged rows ranked worst first."""
    check_judgeable(labels, label_names, folds)
    x = probe_inputs(features, pca_dims, seed)
    probs = out_of_fold_probs(x, labels, len(label_names), folds=folds, C=C, seed=seed)
    q = quality(labels, probs, ranking)
    flagged = np.flatnonzero(find_label_issues(labels, probs, method))
    flagged = flagged[np.argsort(q[flagged], kind="stable")]
    return {
        "probs": probs,
        "quality": q,
        "flagged": flagged,
        "suggested": suggested(labels, probs),
        "oof_accuracy": float((probs.argmax(1) == labels).mean()),
    }
