"""The recipe schema on pydantic: the shared new keys, their error lines, and what pydantic gives for free (a JSON
schema with the ranges and choices, for editors). The error lines themselves are pinned in test_recipe.py."""

from __future__ import annotations

import pytest

from zoo.errors import ConfigError
from zoo.train.recipe import expand_variants, load_recipe, recipe_keys
from zoo.train.schema import DataConfig, Recipe


def error_of(source, overrides=()) -> str:
    with pytest.raises(ConfigError) as info:
        load_recipe(source, overrides)
    return str(info.value)


def test_the_shared_new_keys_and_their_defaults():
    r = load_recipe({})
    assert (r.train.mixed_precision, r.data.exclude, r.train.calibrate, r.eval.tta) == ("auto", None, True, "none")
    assert {"train.mixed_precision", "data.exclude", "train.calibrate", "eval", "eval.tta"} <= set(recipe_keys())
    r = load_recipe(
        {"eval": {"tta": "ten_crop"}}, ["data.exclude=bad.txt", "train.calibrate=false", "train.mixed_precision=bf16"]
    )
    assert (r.eval.tta, r.data.exclude, r.train.calibrate, r.train.mixed_precision) == (
        "ten_crop",
        "bad.txt",
        False,
        "bf16",
    )
    assert load_recipe(r.to_dict()) == r and r.to_dict()["eval"] == {"tta": "ten_crop"}


@pytest.mark.parametrize(
    "source, overrides, message",
    [
        (
            {},
            ["eval.tta=flips"],
            "recipe key 'eval.tta' must be one of none, flip, five_crop, ten_crop; got 'flips'. Did you mean: flip?",
        ),
        ({}, ["train.calibrate=maybe"], "recipe key 'train.calibrate' expects true or false, got 'maybe' (str)."),
        (
            {"eval": {"tta": "flip", "crops": 5}},
            (),
            "unknown recipe key 'eval.crops'. Valid keys under 'eval': eval.tta.",
        ),
        ({"eval": 3}, (), "recipe key 'eval' expects a mapping of keys (tta), got 3 (int)."),
        ({"data": {"exclude": ["a"]}}, (), "recipe key 'data.exclude' expects a string or null, got ['a'] (list)."),
        ({"data": {"val_size": True}}, (), "recipe key 'data.val_size' expects a number, got True (bool)."),
        ({"train": {"epochs": True}}, (), "recipe key 'train.epochs' expects an integer, got True (bool)."),
        (
            {"train": {"early_stopping": 0}},
            (),
            "recipe key 'train.early_stopping' must be a patience >= 1 epoch or null, got 0.",
        ),
        ({"train": {"epochs": "0"}}, (), "recipe key 'train.epochs' must be >= 1, got 0."),  # the value as read
        (
            {"variants": {"a/b": {}}},
            (),
            "recipe key 'variants.a/b' must be a non-empty name without '/' (it names the run directory), got 'a/b'.",
        ),
        ({"schedule": {"min_lr": 0.1}}, (), "recipe key 'schedule.min_lr' must be in [0, optim.lr=0.001], got 0.1."),
    ],
)
def test_new_and_edge_values_get_zoo_error_lines(source, overrides, message):
    assert error_of(source, overrides) == message


def test_yaml_shorthands_still_read(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("hub:\ntrain:\n  mixed_precision: no\noutput:\n  trackers: tensorboard\nvariants:\n  same:\n")
    r = load_recipe(path)
    assert r.hub.repo_id is None and r.train.mixed_precision == "no" and r.output.trackers == ["tensorboard"]
    assert [name for name, _ in expand_variants(r)] == ["r-same"]


def test_json_schema_carries_the_ranges_and_choices():
    """pydantic's JSON schema of a recipe (for editors and docs) knows each key's range, choices and words."""
    schema = Recipe.model_json_schema()
    defs = schema["$defs"]
    assert defs["TrainConfig"]["properties"]["epochs"]["minimum"] == 1
    assert defs["StrategyConfig"]["properties"]["llrd_decay"]["exclusiveMinimum"] == 0
    assert defs["EvalConfig"]["properties"]["tta"]["enum"] == ["none", "flip", "five_crop", "ten_crop"]
    assert "fraction" in defs["DataConfig"]["properties"]["val_size"]["description"]
    assert schema["additionalProperties"] is False


def test_sections_validate_when_built_in_code():
    assert DataConfig(batch_size=8).batch_size == 8
    with pytest.raises(ValueError, match="batch_size"):
        DataConfig(batch_size=0)
    with pytest.raises(ValueError, match="extra"):
        DataConfig(batchsize=8)
