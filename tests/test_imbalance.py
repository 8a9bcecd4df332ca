"""Data sets that cannot teach or that mislead: one class, a class too small to stratify, imbalanced
folders (class weights, a balanced sampler, balanced accuracy / macro-F1, train.select_by), and the Hub's
image layout written by plain pyarrow."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from data_fixtures import good_folder
from PIL import Image
from synthetic_data import digits_folder

import zoo
from zoo.cli import main
from zoo.data.balance import BalancedSampler, balanced_class_weights, imbalance_warning, train_sampler
from zoo.errors import ConfigError, DataError
from zoo.metrics import classification_metrics, selection_score
from zoo.train.losses import build_loss
from zoo.train.recipe import load_recipe


# ---- data sets that cannot teach -----------------------------------------------------------------------------
def test_one_class_folder_is_an_error_naming_the_class(tmp_path):
    good_folder(tmp_path / "f", classes=("cat",), n=6, splits=("",))
    with pytest.raises(DataError) as err:
        zoo.load_dataset(str(tmp_path / "f"))
    text = str(err.value)
    assert "1 class ('cat')" in text and "at least two" in text and "train/<class>" in text


def test_one_class_through_zoo_train_is_one_clear_error(tmp_path, capsys):
    good_folder(tmp_path / "f", classes=("cat",), n=6, splits=("train", "test"))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"model: {{name: 'timm:test_resnet', pretrained: false}}\ndata: {{spec: '{tmp_path / 'f'}'}}\n"
        f"output: {{dir: '{tmp_path / 'runs'}'}}\n"
    )
    from zoo.cli.train import main as train_main

    assert train_main([str(recipe)]) != 0
    err = capsys.readouterr().err
    assert "a classifier needs at least two" in err and "Traceback" not in err


def test_class_too_small_to_stratify_is_warned_and_the_rest_stay_stratified(tmp_path, caplog):
    good_folder(tmp_path / "f", classes=("a", "b", "c"), n=10, splits=("",))
    (tmp_path / "f" / "lonely").mkdir()
    Image.fromarray(np.full((40, 40, 3), 200, np.uint8)).save(tmp_path / "f" / "lonely" / "0.png")
    with caplog.at_level(logging.WARNING, logger="zoo.data"):
        ds = zoo.load_dataset(str(tmp_path / "f"), val_size=0.2)
    assert "'lonely' (1 image)" in caplog.text and "too small to stratify" in caplog.text
    v = ds.validation
    assert v["stratified"] is True and v["unstratified_classes"] == ["lonely"]
    val_counts = np.bincount(ds["validation"]["label"], minlength=4)
    lonely = ds.label_names.index("lonely")
    assert val_counts[lonely] == 0 and sorted(np.delete(val_counts, lonely).tolist()) == [2, 2, 2]
    assert np.bincount(ds["train"]["label"], minlength=4)[lonely] == 1  # kept for training
    assert any("lonely" in n for n in ds.notes)


def test_stratified_split_unchanged_when_every_class_can_be_split():
    """The tiny-class rule must not move anybody else's validation split (their digests are recorded)."""
    import datasets
    from sklearn.model_selection import train_test_split

    from zoo.data.splits import carve_validation, indices_digest

    labels = np.random.default_rng(0).integers(0, 4, 60)
    _, _, record = carve_validation(datasets.Dataset.from_dict({"label": labels}), 0.2, seed=3)
    _, val_idx = train_test_split(np.arange(60), test_size=12, random_state=3, stratify=labels)
    assert record["stratified"] is True and "unstratified_classes" not in record
    assert record["indices_sha256"] == indices_digest(np.sort(val_idx))


def test_validation_smaller_than_the_class_count_is_warned(tmp_path, caplog):
    good_folder(tmp_path / "f", classes=("a", "b", "c", "d"), n=4, splits=("",))
    with caplog.at_level(logging.WARNING, logger="zoo.data"):
        ds = zoo.load_dataset(str(tmp_path / "f"), val_size=2)
    assert ds.validation["stratified"] is False and "is not stratified" in caplog.text


# ---- the Hub's image layout from plain pyarrow -----------------------------------------------------------
def test_parquet_with_pyarrow_bytes_path_struct_reads_as_images(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pictures, rows = [], []
    for i in range(8):
        arr = np.random.default_rng(i).integers(0, 256, (12, 10, 3), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="PNG")
        pictures.append(arr)
        rows.append({"bytes": buf.getvalue(), "path": f"{i}.png"})
    struct = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    table = pa.table({"image": pa.array(rows, type=struct), "label": pa.array(["cat", "dog"] * 4)})
    pq.write_table(table, tmp_path / "train.parquet")  # no `datasets` metadata in the file
    ds = zoo.load_dataset(f"parquet:{tmp_path / 'train.parquet'}", val_size=2)
    assert ds.label_names == ["cat", "dog"] and ds.columns["image_column"] == "image"
    both = [*ds["train"], *ds["validation"]]
    decoded = sorted(np.asarray(r["image"]).tobytes() for r in both)
    assert decoded == sorted(p.tobytes() for p in pictures)


# ---- metrics -----------------------------------------------------------------------------------------
def test_balanced_accuracy_and_macro_f1_agree_with_scikit_learn():
    """scikit-learn's defaults, no labels= argument: macro-F1 averages over every class in the targets OR the
    predictions (a class only predicted scores F1 0); class 4 is never a target here but is predicted."""
    import warnings

    from sklearn.metrics import balanced_accuracy_score, f1_score

    g = torch.Generator().manual_seed(0)
    only_predicted = 0
    for _ in range(10):
        y = torch.cat([torch.zeros(40, dtype=torch.long), torch.randint(1, 4, (12,), generator=g)])
        logits = torch.randn(len(y), 5, generator=g)
        m = classification_metrics(logits, y, 5)
        pred = logits.argmax(1)
        only_predicted += int(bool(set(pred.tolist()) - set(y.tolist())))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sklearn warns that y_pred has classes y_true lacks: the case tested
            assert m["balanced_acc"] == pytest.approx(balanced_accuracy_score(y, pred))
            assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert only_predicted >= 5  # the case that tells the two definitions apart really occurs


def test_always_predicting_the_big_class_scores_high_top1_and_low_balanced_accuracy():
    y = torch.tensor([0] * 90 + [1] * 10)
    logits = torch.tensor([[1.0, 0.0]]).repeat(100, 1)
    m = classification_metrics(logits, y, 2)
    assert m["top1"] == 0.9 and m["balanced_acc"] == 0.5 and m["macro_f1"] == pytest.approx(0.9 / 1.9)


def test_selection_score_orders_every_selectable_metric():
    good = {"top1": 0.9, "balanced_acc": 0.8, "macro_f1": 0.7, "loss": 0.3}
    bad = {"top1": 0.5, "balanced_acc": 0.4, "macro_f1": 0.3, "loss": 0.9}
    for key in ("val_top1", "val_balanced_acc", "val_macro_f1", "val_loss"):
        assert selection_score(good, key) > selection_score(bad, key), key
    assert selection_score({**good, "loss": float("nan")}, "val_loss") == float("-inf")


# ---- class weights and the balanced sampler -------------------------------------------------------------
def test_balanced_class_weights_follow_the_sklearn_rule():
    from sklearn.utils.class_weight import compute_class_weight

    labels = np.array([0] * 50 + [1] * 5 + [3] * 20)
    w = balanced_class_weights(labels, 4)
    expected = compute_class_weight("balanced", classes=np.array([0, 1, 3]), y=labels)
    assert w[[0, 1, 3]].tolist() == pytest.approx(expected.tolist()) and w[2] == 0


def test_weighted_loss_counts_each_class_alike_with_and_without_mixup():
    y = torch.tensor([0, 0, 0, 1])
    logits = torch.randn(4, 2)
    w = balanced_class_weights(y.numpy(), 2)
    loss = build_loss(None, 0.0, w)(logits, y)
    ref = torch.nn.functional.cross_entropy(logits, y, weight=w)
    assert loss == pytest.approx(float(ref))
    soft = torch.nn.functional.one_hot(y, 2).float()  # what Mixup hands over: probability targets
    mixed = build_loss(object(), 0.1, w)(logits.bfloat16(), soft)  # bf16 logits (autocast) are fine too
    assert mixed.dtype == torch.float32 and torch.isfinite(mixed)


def test_balanced_sampler_draws_classes_equally_and_depends_only_on_seed_and_epoch():
    labels = np.array([0] * 900 + [1] * 100)
    s = BalancedSampler(labels, seed=1)
    first = list(s)
    counts = np.bincount(labels[first], minlength=2)
    assert len(first) == 1000 and 400 < counts[1] < 600  # not 100: the small class is drawn as often
    assert list(BalancedSampler(labels, seed=1)) == first
    s.set_epoch(1)
    assert list(s) != first
    assert train_sampler(labels, "random", 0) is None
    with pytest.raises(ConfigError, match="use random or balanced"):
        train_sampler(labels, "oversample", 0)


def test_balanced_sampler_under_two_processes_shards_one_shared_order():
    """What accelerate does to the loader on each of two ranks: the two shards are disjoint batches of
    the single-process order, and a resumed epoch (skip_first_batches) continues that order."""
    from accelerate.data_loader import prepare_data_loader, skip_first_batches
    from accelerate.state import PartialState

    PartialState()  # prepare_data_loader reads the (single-process) state for the device
    labels = np.array([0] * 60 + [1] * 4)
    data = torch.utils.data.TensorDataset(torch.arange(64), torch.tensor(labels))

    def batches(process_index: int, num_processes: int, epoch: int, skip: int = 0) -> list[list[int]]:
        loader = torch.utils.data.DataLoader(data, batch_size=8, sampler=BalancedSampler(labels, seed=5))
        loader = prepare_data_loader(
            loader,
            num_processes=num_processes,
            process_index=process_index,
            put_on_device=False,
            use_seedable_sampler=True,
        )
        loader.set_epoch(epoch)
        if skip:
            loader = skip_first_batches(loader, skip)
        return [x.tolist() for x, _ in loader]

    whole = batches(0, 1, epoch=2)
    rank0, rank1 = batches(0, 2, epoch=2), batches(1, 2, epoch=2)
    assert rank0 == whole[0::2] and rank1 == whole[1::2]
    assert batches(0, 1, epoch=2, skip=3) == whole[3:]
    assert batches(0, 1, epoch=3) != whole


def test_new_recipe_keys_are_validated():
    r = load_recipe(
        {"data": {"sampler": "balanced"}, "train": {"class_weights": "balanced", "select_by": "val_macro_f1"}}
    )
    assert (r.data.sampler, r.train.class_weights, r.train.select_by) == ("balanced", "balanced", "val_macro_f1")
    for key, bad in (("data.sampler", "weighted"), ("train.class_weights", "auto"), ("train.select_by", "val_f1")):
        with pytest.raises(ConfigError) as err:
            load_recipe({}, [f"{key}={bad}"])
        assert key in str(err.value) and bad in str(err.value)
    with pytest.raises(ConfigError, match="val_balanced_acc"):
        load_recipe({}, ["train.select_by=balanced"])


# ---- zoo data inspect -------------------------------------------------------------------------------
def test_inspect_warns_when_the_largest_class_is_over_five_times_the_smallest(tmp_path, capsys):
    digits_folder(tmp_path / "d", cut={3: 0.1})
    assert main(["data", "inspect", str(tmp_path / "d"), "--out", str(tmp_path / "o"), "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)  # the warning goes to stderr: stdout stays JSON
    [warning] = report["warnings"]
    assert "'3' only 15" in warning and "class_weights=balanced" in warning
    assert "warning: classes are imbalanced" in captured.err
    assert imbalance_warning({"a": 50, "b": 10}) is None and imbalance_warning({"a": 51, "b": 10})


# ---- the real thing --------------------------------------------------------------------------------------
def _final(run_dir: Path) -> tuple[dict, list[dict]]:
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return lines[-1], [x for x in lines if x["kind"] == "epoch"]


@pytest.mark.slow
def test_balanced_options_raise_balanced_accuracy_on_an_imbalanced_digits_folder(tmp_path):
    """Real digits as PNG folders, 3, 8 and 9 cut to a tenth of their training images (test stays balanced):
    the class-weighted loss and the balanced sampler each raise test balanced accuracy well above plain
    training (benchmarks/results/imbalance_digits_cpu.csv has the same over seeds and a pretrained probe)."""
    from zoo.train.run import train

    data = digits_folder(tmp_path / "digits", cut={3: 0.1, 8: 0.1, 9: 0.1})
    base = {
        "model": {"name": "timm:test_resnet", "pretrained": False},
        "strategy": {"name": "scratch"},
        "data": {
            "spec": str(data),
            "image_size": 32,
            "batch_size": 64,
            "augment": "none",
            "val_size": 0.2,
            "num_workers": 0,
        },
        "optim": {"lr": 3e-3, "weight_decay": 0.0},
        "train": {"epochs": 6},
        "output": {"dir": str(tmp_path / "runs")},
        "resume": "never",
    }
    runs = {
        "plain": {},
        "weights": {"train": {"class_weights": "balanced", "select_by": "val_balanced_acc"}},
        "sampler": {"data": {"sampler": "balanced"}, "train": {"select_by": "val_macro_f1"}},
    }
    results = {}
    for name, keys in runs.items():
        recipe = {**base, "name": name, **{k: {**base[k], **v} for k, v in keys.items()}}
        train(recipe)
        results[name] = _final(tmp_path / "runs" / name)
    plain = results["plain"][0]["balanced_acc"]
    for name in ("weights", "sampler"):
        final, epochs = results[name]
        assert final["balanced_acc"] > plain + 0.05, (name, final["balanced_acc"], plain)
        key = {"weights": "val_balanced_acc", "sampler": "val_macro_f1"}[name]
        assert final["select_by"] == key
        assert final["best_epoch"] == max(epochs, key=lambda e: e[key])["epoch"]  # first best wins ties
        assert {"val_balanced_acc", "val_macro_f1"} <= set(epochs[0]) and "macro_f1" in final
    model_metrics = json.loads((tmp_path / "runs" / "weights" / "model" / "zoo.json").read_text())["metrics"]
    assert "test_balanced_acc" in model_metrics and "test_macro_f1" in model_metrics


def test_zoo_eval_reports_balanced_accuracy_and_macro_f1(tmp_path, capsys):
    digits_folder(tmp_path / "d", cut={3: 0.1})
    model = zoo.create_model("timm:test_resnet", num_classes=10, pretrained=False)
    model.reset_classifier(10, [str(i) for i in range(10)])
    zoo.save(model.eval(), tmp_path / "model")
    assert main(["eval", str(tmp_path / "model"), "--data", str(tmp_path / "d"), "--out", str(tmp_path / "e")]) == 0
    out = capsys.readouterr().out
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert f"balanced accuracy {metrics['balanced_acc']:.4f}, macro-F1 {metrics['macro_f1']:.4f}" in out
