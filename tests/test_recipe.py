"""Recipes: strict typed YAML, overrides, variants, the shipped recipe files and accelerate configs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import free_port

from zoo.errors import ConfigError
from zoo.train.recipe import Recipe, expand_variants, load_recipe, recipe_keys

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted(p for p in (ROOT / "recipes").rglob("*.yaml") if p.parent.name != "accelerate")
ACCELERATE = sorted((ROOT / "recipes" / "accelerate").glob("*.yaml"))


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def error_of(source, overrides=()) -> str:
    with pytest.raises(ConfigError) as info:
        load_recipe(source, overrides)
    return str(info.value)


def write(tmp_path: Path, text: str, name: str = "my-run.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ---- the shipped recipes ---------------------------------------------------------------------------------------
def test_the_shipped_recipes_are_there():
    names = {rel(p) for p in RECIPES}
    for model in ("resnet18", "resnet50", "convnext_tiny", "vit_small", "dinov2_small", "efficientnet_b0"):
        assert f"recipes/cifar10/{model}-linear-probe.yaml" in names
        assert f"recipes/cifar10/{model}-finetune.yaml" in names
    assert {
        "recipes/cifar10/scratch-resnet18.yaml",
        "recipes/cifar10/resnet50-partial.yaml",
        "recipes/cifar10/resnet50-freeze-then-unfreeze.yaml",
        "recipes/quickstart.yaml",
        "recipes/imagefolder/fruits-linear-probe.yaml",
        "recipes/imagefolder/fruits-finetune.yaml",
    } <= names
    assert {p.stem for p in ACCELERATE} == {"single-gpu", "multi-gpu", "multi-node", "fsdp", "cpu-2proc"}


@pytest.mark.parametrize("path", RECIPES, ids=rel)
def test_shipped_recipe_validates_with_its_variants(path):
    recipe = load_recipe(path)
    assert recipe.name == path.stem and recipe.source_path == path
    assert load_recipe(recipe.to_dict()) == recipe
    runs = expand_variants(recipe)
    assert [name for name, _ in runs] == ([f"{path.stem}-{v}" for v in recipe.variants] or [path.stem])
    for name, run in runs:
        assert run.name == name and run.variants == {}


@pytest.mark.parametrize("path", RECIPES, ids=rel)
def test_shipped_recipe_opens_with_its_launch_command(path):
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first in (f"# accelerate launch -m zoo.train {rel(path)}", f"# zoo train {rel(path)}")


def test_cifar10_recipes_use_the_models_and_strategies_asked_for():
    r = {p.stem: load_recipe(p) for p in RECIPES if p.parent.name == "cifar10"}
    assert r["resnet50-finetune"].model.name == "timm:resnet50.a1_in1k"
    assert r["dinov2_small-finetune"].model.name == "hf:facebook/dinov2-small"
    assert r["vit_small-finetune"].model.name == "timm:vit_small_patch16_224.augreg_in21k_ft_in1k"
    for stem, recipe in r.items():
        assert recipe.data.spec == "cifar10" and recipe.data.image_size is None  # the backbone's own resolution
        if stem.endswith("-linear-probe"):
            assert recipe.strategy.name == "linear_probe" and recipe.strategy.cache_features
            assert 1e-3 <= recipe.optim.lr <= 1e-2 and 10 <= recipe.train.epochs <= 30
        if stem.endswith("-finetune"):
            assert recipe.optim.name == "adamw" and 1e-4 <= recipe.optim.lr <= 3e-4
            assert recipe.schedule.warmup_epochs > 0 and recipe.train.label_smoothing == 0.1
            assert recipe.train.mixed_precision == "auto" and 10 <= recipe.train.epochs <= 20
            vit = stem.startswith(("vit", "dinov2"))
            assert recipe.strategy.name == ("llrd" if vit else "finetune")
    assert r["scratch-resnet18"].strategy.name == "scratch" and r["scratch-resnet18"].model.pretrained is False
    assert r["scratch-resnet18"].train.epochs > r["resnet18-finetune"].train.epochs
    assert (r["resnet50-partial"].strategy.name, r["resnet50-partial"].strategy.unfreeze_stages) == ("partial", 1)
    assert r["resnet50-freeze-then-unfreeze"].strategy.name == "freeze_then_unfreeze"


def test_quickstart_compares_probe_finetune_and_scratch():
    recipe = load_recipe(ROOT / "recipes" / "quickstart.yaml")
    assert (recipe.model.name, recipe.data.spec, recipe.data.image_size) == (
        "pypi:efficientnet_lite0",
        "sklearn:digits",
        64,
    )
    runs = dict(expand_variants(recipe))
    assert {n: (r.strategy.name, r.model.pretrained) for n, r in runs.items()} == {
        "quickstart-linear_probe": ("linear_probe", True),
        "quickstart-finetune": ("finetune", True),
        "quickstart-scratch": ("scratch", False),
    }


# ---- accelerate configs ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ACCELERATE, ids=rel)
def test_accelerate_config_loads_and_launches_what_it_says(path):
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    config = load_config_from_file(str(path))  # accelerate's own loader: rejects unknown keys
    assert config.compute_environment.value == "LOCAL_MACHINE"
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert f"accelerate launch --config_file {rel(path)} -m zoo.train recipes/" in first
    load_recipe(ROOT / first.split(" -m zoo.train ")[1].split()[0])  # the example recipe exists and is valid

    # what `accelerate launch --config_file PATH` decides from it (the same function the launcher runs)
    args = launch_command_parser().parse_args(["--config_file", str(path), "-m", "zoo.train", "recipe.yaml"])
    args, _, _ = _validate_launch_command(args)
    expected = {  # (processes, machines, torchrun/DDP launcher, FSDP)
        "single-gpu": (1, 1, False, False),
        "multi-gpu": (8, 1, True, False),
        "multi-node": (16, 2, True, False),
        "fsdp": (8, 1, False, True),
        # MULTI_GPU on purpose: a MULTI_CPU config goes to the single-process launcher and runs ONE process
        "cpu-2proc": (2, 1, True, False),
    }[path.stem]
    assert (args.num_processes, args.num_machines, args.multi_gpu, args.use_fsdp) == expected


def test_fsdp_config_builds_accelerates_fsdp2_plugin(monkeypatch):
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import FullyShardedDataParallelPlugin
    from accelerate.utils.launch import prepare_multi_gpu_env

    path = ROOT / "recipes" / "accelerate" / "fsdp.yaml"
    args = launch_command_parser().parse_args(["--config_file", str(path), "-m", "zoo.train", "recipe.yaml"])
    args, _, _ = _validate_launch_command(args)
    for key, value in prepare_multi_gpu_env(args).items():  # the environment the launcher gives each worker
        if key.startswith(("FSDP_", "ACCELERATE_USE_FSDP")):
            monkeypatch.setenv(key, value)
    plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2 and plugin.state_dict_type.name == "FULL_STATE_DICT"
    assert plugin.auto_wrap_policy.__name__ == "size_based_auto_wrap_policy"


@pytest.mark.slow
def test_cpu_2proc_config_runs_two_gloo_ranks(tmp_path):
    """The launch command in cpu-2proc.yaml's comment really gives two DDP ranks on CPU."""
    # Each rank writes its own file: two ranks printing to one pipe can interleave mid-line ("RANKRANK 1 ...").
    script = write(
        tmp_path,
        "import sys\nfrom pathlib import Path\nfrom accelerate import Accelerator\n"
        "a = Accelerator()\n"
        "Path(sys.argv[1], f'rank{a.process_index}.txt').write_text("
        "f'{a.process_index} {a.num_processes} {a.state.backend}')\n",
        "probe.py",
    )
    config = ROOT / "recipes" / "accelerate" / "cpu-2proc.yaml"
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--config_file",
            str(config),
            "--main_process_port",
            str(free_port()),
            str(script),
            str(tmp_path),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    ranks = sorted(f.read_text() for f in tmp_path.glob("rank*.txt"))
    assert ranks == ["0 2 gloo", "1 2 gloo"], out.stdout + out.stderr


# ---- types and coercion ------------------------------------------------------------------------------------------
def test_defaults_are_the_documented_schema():
    recipe = load_recipe({})
    assert recipe.name == "run" and recipe.model.name == "timm:resnet50.a1_in1k"
    assert recipe.optim.lr == 1e-3 and recipe.optim.betas == (0.9, 0.999)
    assert recipe.train.mixed_precision == "auto" and recipe.output.trackers == [] and recipe.resume == "auto"
    assert "optim.lr" in recipe_keys() and "hub.push_checkpoints" in recipe_keys()
    assert "source_path" not in recipe_keys() and "source_path" not in recipe.to_dict()


def test_3e_minus_4_is_a_float_in_a_file_and_in_an_override(tmp_path):
    text = "optim:\n  lr: 3e-4\nschedule:\n  min_lr: 1e-6\n"
    assert yaml.safe_load(text)["optim"]["lr"] == "3e-4"  # the YAML 1.1 trap this guards against
    recipe = load_recipe(write(tmp_path, text))
    assert recipe.optim.lr == 0.0003 and isinstance(recipe.optim.lr, float)
    assert recipe.schedule.min_lr == 1e-6
    recipe = load_recipe({}, ["optim.lr=3e-4"])
    assert recipe.optim.lr == 0.0003 and isinstance(recipe.optim.lr, float)


def test_coercion_by_declared_type(tmp_path):
    path = write(
        tmp_path,
        "train:\n  mixed_precision: no\n  epochs: '7'\n  ema: 'true'\n"
        "optim:\n  weight_decay: 0\ndata:\n  val_size: 500\n",
    )
    recipe = load_recipe(path)
    assert recipe.train.mixed_precision == "no"  # YAML 1.1 reads a bare `no` as false
    assert recipe.train.epochs == 7 and recipe.train.ema is True
    assert recipe.optim.weight_decay == 0.0 and isinstance(recipe.optim.weight_decay, float)
    assert recipe.data.val_size == 500 and isinstance(recipe.data.val_size, int)  # a count, not a fraction
    assert isinstance(load_recipe({"data": {"val_size": 0.25}}).data.val_size, float)


def test_overrides_of_nested_keys_lists_bools_null_and_text():
    recipe = load_recipe(
        {"data": {"image_column": "img"}},
        [
            "train.epochs=3",
            "data.augment=randaugment",
            "output.trackers=[tensorboard, wandb]",
            "train.ema=true",
            "data.image_column=null",
            "hub.revision=1.10",
            "train.mixed_precision=no",
            "model.kwargs.in_chans=1",
            "optim={name: sgd, momentum: 0.8}",
            "optim.betas=[0.8, 0.99]",
            "data.spec=imagefolder:data/x: y",
            "name=exp-1",
        ],
    )
    assert recipe.train.epochs == 3 and recipe.data.augment == "randaugment"
    assert recipe.output.trackers == ["tensorboard", "wandb"] and recipe.train.ema is True
    assert recipe.data.image_column is None
    assert recipe.hub.revision == "1.10" and recipe.train.mixed_precision == "no"  # text stays text
    assert recipe.model.kwargs == {"in_chans": 1}
    assert (recipe.optim.name, recipe.optim.momentum, recipe.optim.lr) == ("sgd", 0.8, 1e-3)  # merged, not replaced
    assert recipe.optim.betas == (0.8, 0.99)
    assert recipe.data.spec == "imagefolder:data/x: y" and recipe.name == "exp-1"
    assert recipe.overrides[0] == "train.epochs=3"


def test_overrides_win_over_the_file(tmp_path):
    path = write(tmp_path, "train:\n  epochs: 20\n")
    assert load_recipe(path, ["train.epochs=2"]).train.epochs == 2
    assert load_recipe(path).train.epochs == 20


def test_to_dict_and_to_yaml_round_trip():
    recipe = load_recipe(
        {
            "name": "x",
            "optim": {"lr": "3e-4"},
            "output": {"trackers": ["tensorboard"]},
            "variants": {"sgd": {"optim.name": "sgd"}},
            "model": {"kwargs": {"a": [1, 2]}},
        }
    )
    plain = recipe.to_dict()
    assert plain["optim"]["betas"] == [0.9, 0.999] and plain["optim"]["lr"] == 0.0003
    assert load_recipe(plain) == recipe
    assert load_recipe(yaml.safe_load(recipe.to_yaml())) == recipe
    assert load_recipe(recipe) == recipe
    assert load_recipe(plain, ["optim.lr=0.1"]) != recipe


# ---- variants ---------------------------------------------------------------------------------------------------
def test_expand_variants_without_variants_is_the_recipe_itself():
    recipe = load_recipe({"name": "solo"})
    assert expand_variants(recipe) == [("solo", recipe)]


def test_variants_apply_on_the_base_and_overrides_win(tmp_path):
    path = write(
        tmp_path,
        "train:\n  epochs: 4\nvariants:\n  probe:\n    strategy.name: linear_probe\n"
        "    data.augment: none\n    optim: {lr: 1e-2}\n  long:\n    train.epochs: 8\n  same: {}\n",
        "cmp.yaml",
    )
    recipe = load_recipe(path, ["optim.weight_decay=0.1"])
    runs = dict(expand_variants(recipe))
    assert list(runs) == ["cmp-probe", "cmp-long", "cmp-same"]
    assert (runs["cmp-probe"].strategy.name, runs["cmp-probe"].optim.lr) == ("linear_probe", 0.01)
    assert runs["cmp-long"].train.epochs == 8 and runs["cmp-same"].train.epochs == 4
    assert all(r.optim.weight_decay == 0.1 and r.variants == {} for r in runs.values())
    assert dict(expand_variants(load_recipe(path, ["train.epochs=2"])))["cmp-long"].train.epochs == 2
    assert expand_variants(load_recipe(path, ["variants={}"])) == [("cmp", load_recipe(path, ["variants={}"]))]


def test_a_name_override_names_every_variant_apart():
    """`zoo train recipes/quickstart.yaml name=mnist` once gave all three variants the name 'mnist': the
    second landed in the first one's folder and stopped there."""
    runs = expand_variants(load_recipe("recipes/quickstart.yaml", ["name=mnist"]))
    assert [name for name, _ in runs] == ["mnist-linear_probe", "mnist-finetune", "mnist-scratch"]
    assert [r.name for _, r in runs] == ["mnist-linear_probe", "mnist-finetune", "mnist-scratch"]


def test_variants_can_be_set_from_the_command_line():
    recipe = load_recipe(
        {"name": "b"},
        ["variants.sgd.optim.name=sgd", "variants.sgd.optim.lr=3e-2", "variants.wide={data.batch_size: 256}"],
    )
    assert recipe.variants == {"sgd": {"optim.name": "sgd", "optim.lr": "3e-2"}, "wide": {"data.batch_size": 256}}
    runs = dict(expand_variants(recipe))
    assert (runs["b-sgd"].optim.name, runs["b-sgd"].optim.lr) == ("sgd", 0.03)
    assert runs["b-wide"].data.batch_size == 256


def test_public_api_is_exported_lazily():
    import zoo

    assert zoo.load_recipe is load_recipe and zoo.expand_variants is expand_variants and zoo.Recipe is Recipe


def test_scratch_means_random_init():
    assert load_recipe({"strategy": {"name": "scratch"}}).model.pretrained is False
    runs = dict(expand_variants(load_recipe({"variants": {"s": {"strategy.name": "scratch"}}})))
    assert runs["run-s"].model.pretrained is False


# ---- bad recipes: exact messages ---------------------------------------------------------------------------------
BAD = {
    "misspelled key": (
        {"optim": {"learning_rate": 0.1}},
        (),
        "unknown recipe key 'optim.learning_rate'. Did you mean: optim.lr?",
    ),
    "key in the wrong section": ({"train": {"lr": 0.1}}, (), "unknown recipe key 'train.lr'. Did you mean: optim.lr?"),
    "typo of a nested key": (
        {"data": {"augmnet": "none"}},
        (),
        "unknown recipe key 'data.augmnet'. Did you mean: data.augment?",
    ),
    "nothing close": (
        {"optim": {"zzz": 1}},
        (),
        "unknown recipe key 'optim.zzz'. Valid keys under 'optim': optim.name, optim.lr, "
        "optim.weight_decay, optim.momentum, optim.betas.",
    ),
    "unknown key in an override": (
        {},
        ["optim.learning_rate=3e-4"],
        "unknown recipe key 'optim.learning_rate'. Did you mean: optim.lr?",
    ),
    "override into a value": (
        {},
        ["optim.lr.x=1"],
        "unknown recipe key 'optim.lr.x': 'optim.lr' is a value, not a section.",
    ),
    "override without =": (
        {},
        ["train.epochs"],
        "override 'train.epochs' has no '=': write overrides as key.sub=value, e.g. train.epochs=5.",
    ),
    "override without key": ({}, ["=3"], "override '=3' needs a dotted recipe key before '=', e.g. optim.lr=3e-4."),
    "unknown key in a variant": (
        {"variants": {"fast": {"optim.lrr": 1}}},
        (),
        "variant 'fast': unknown recipe key 'optim.lrr'. Did you mean: optim.lr?",
    ),
    "bad value in a variant": (
        {"variants": {"p": {"strategy.name": "linear_probe"}}},
        (),
        "variant 'p': strategy.name=linear_probe with strategy.cache_features=true trains the "
        "head on one cached, augmentation-free pass of features, which conflicts with "
        "data.augment=flip-crop. Set data.augment=none, or strategy.cache_features=false to "
        "probe with augmentation (slower: the backbone runs every epoch).",
    ),
    "variant sets its name": (
        {"variants": {"v": {"name": "x"}}},
        (),
        "variant 'v': a variant cannot set 'name' (its run name is '<name>-<variant>').",
    ),
    "variant in a variant": (
        {"variants": {"v": {"variants.w.train.epochs": 2}}},
        (),
        "variant 'v': a variant cannot set 'variants.w.train.epochs': variants do not nest.",
    ),
    "variant not a mapping": ({"variants": {"v": 5}}, (), "recipe key 'variants.v' expects a mapping, got 5 (int)."),
    "wrong type": ({"train": {"epochs": "ten"}}, (), "recipe key 'train.epochs' expects an integer, got 'ten' (str)."),
    "float for an int": (
        {"train": {"epochs": 2.5}},
        (),
        "recipe key 'train.epochs' expects an integer, got 2.5 (float).",
    ),
    "bool for a float": ({"optim": {"lr": True}}, (), "recipe key 'optim.lr' expects a number, got True (bool)."),
    "text for a bool": ({}, ["train.ema=maybe"], "recipe key 'train.ema' expects true or false, got 'maybe' (str)."),
    "null for a required": (
        {"data": {"batch_size": None}},
        (),
        "recipe key 'data.batch_size' expects an integer, got None (NoneType).",
    ),
    "section not a mapping": (
        {"optim": 5},
        (),
        "recipe key 'optim' expects a mapping of keys (name, lr, weight_decay, momentum, betas), got 5 (int).",
    ),
    "betas of 3": (
        {"optim": {"betas": [0.9, 0.99, 0.9]}},
        (),
        "recipe key 'optim.betas' expects a list of 2 numbers, got [0.9, 0.99, 0.9] (list).",
    ),
    "unknown strategy": (
        {"strategy": {"name": "fine_tune"}},
        (),
        "recipe key 'strategy.name' must be one of linear_probe, finetune, partial, "
        "freeze_then_unfreeze, llrd, lp_ft, scratch; got 'fine_tune'. Did you mean: finetune?",
    ),
    "unknown optimizer": (
        {},
        ["optim.name=adam"],
        "recipe key 'optim.name' must be one of adamw, sgd; got 'adam'. Did you mean: adamw?",
    ),
    "unknown schedule": (
        {"schedule": {"name": "step"}},
        (),
        "recipe key 'schedule.name' must be one of cosine, onecycle, constant; got 'step'.",
    ),
    "unknown augment": (
        {"data": {"augment": "randaug"}},
        (),
        "recipe key 'data.augment' must be one of none, "
        "flip-crop, randaugment, trivialaugment; got 'randaug'. Did you mean: randaugment?",
    ),
    "unknown precision": (
        {},
        ["train.mixed_precision=fp8"],
        "recipe key 'train.mixed_precision' must be one of auto, no, fp16, bf16; got 'fp8'.",
    ),
    "unknown on_bad_image": (
        {"data": {"on_bad_image": "ignore"}},
        (),
        "recipe key 'data.on_bad_image' must be one of error, skip; got 'ignore'.",
    ),
    "unknown tracker": (
        {},
        ["output.trackers=[tensorbord]"],
        "recipe key 'output.trackers' must be one of "
        "tensorboard, trackio, wandb; got 'tensorbord'. Did you mean: tensorboard?",
    ),
    "cached probe with augment": (
        {"strategy": {"name": "linear_probe"}, "data": {"augment": "none"}, "train": {"mixup": 0.2, "cutmix": 1.0}},
        (),
        "strategy.name=linear_probe with strategy.cache_features=true trains the head on "
        "one cached, augmentation-free pass of features, which conflicts with "
        "train.mixup=0.2 and train.cutmix=1.0. Set train.mixup=0 and train.cutmix=0, or "
        "strategy.cache_features=false to probe with augmentation (slower: the backbone "
        "runs every epoch).",
    ),
    "unfreeze after the end": (
        {"strategy": {"name": "freeze_then_unfreeze", "unfreeze_epoch": 5}, "train": {"epochs": 5}},
        (),
        "strategy.name=freeze_then_unfreeze trains the head alone until "
        "strategy.unfreeze_epoch, so it must be in [1, train.epochs), but "
        "strategy.unfreeze_epoch=5 and train.epochs=5. Lower strategy.unfreeze_epoch or raise "
        "train.epochs.",
    ),
    "probe longer than the run": (
        {"strategy": {"name": "lp_ft", "probe_epochs": 3}},
        ["train.epochs=3"],
        "strategy.name=lp_ft probes for strategy.probe_epochs and fine-tunes for the rest "
        "of train.epochs, so it needs 1 <= strategy.probe_epochs < train.epochs, but "
        "strategy.probe_epochs=3 and train.epochs=3. Lower strategy.probe_epochs or raise "
        "train.epochs.",
    ),
    "partial with no stage": (
        {"strategy": {"name": "partial", "unfreeze_stages": 0}},
        (),
        "strategy.name=partial trains the last strategy.unfreeze_stages stages and the head, "
        "so strategy.unfreeze_stages must be >= 1, got 0. Use strategy.name=linear_probe to "
        "train the head alone.",
    ),
    "llrd decay above 1": (
        {"strategy": {"llrd_decay": 1.5}},
        (),
        "recipe key 'strategy.llrd_decay' must be in (0, 1] (1 = no decay), got 1.5.",
    ),
    "llrd decay 0": (
        {},
        ["strategy.llrd_decay=0"],
        "recipe key 'strategy.llrd_decay' must be in (0, 1] (1 = no decay), got 0.0.",
    ),
    "push without repo": (
        {"hub": {"push_checkpoints": True}},
        (),
        "hub.push_checkpoints=true needs hub.repo_id, the Hub repository to push to. "
        "Set hub.repo_id=user/name, or hub.push_checkpoints=false.",
    ),
    "bad repo id": (
        {},
        ["hub.repo_id=my repo"],
        "recipe key 'hub.repo_id' must be a Hub repository id such as 'user/resnet50-cifar10', got 'my repo'.",
    ),
    "val fraction of 1": (
        {"data": {"val_size": 1.0}},
        (),
        "recipe key 'data.val_size' must be a fraction in (0, 1) or a count >= 1, got 1.0.",
    ),
    "val count of 0": (
        {"data": {"val_size": 0}},
        (),
        "recipe key 'data.val_size' must be a fraction in (0, 1) or a count >= 1, got 0.",
    ),
    "batch size 0": ({}, ["data.batch_size=0"], "recipe key 'data.batch_size' must be >= 1, got 0."),
    "grad accum 0": ({"train": {"grad_accum": 0}}, (), "recipe key 'train.grad_accum' must be >= 1, got 0."),
    "warmup past the end": (
        {"schedule": {"warmup_epochs": 3}, "train": {"epochs": 3}},
        (),
        "schedule.warmup_epochs=3.0 must be less than train.epochs=3: the run would end before the warmup does.",
    ),
    "scratch with pretrained": (
        {"strategy": {"name": "scratch"}, "model": {"pretrained": True}},
        (),
        "strategy.name=scratch trains the same architecture from random initialisation, but "
        "model.pretrained=true asks for pretrained weights. Set model.pretrained=false (or "
        "leave it out: scratch implies false), or choose another strategy, e.g. "
        "strategy.name=finetune.",
    ),
    "model name without id": (
        {"model": {"name": "timm:"}},
        (),
        "recipe key 'model.name' must be a zoo model name 'source:id' such as "
        "'timm:resnet50.a1_in1k' or 'hf:facebook/dinov2-small', got 'timm:'.",
    ),
    "name with a slash": (
        {"name": "a/b"},
        (),
        "recipe key 'name' must be a non-empty name without '/' (it names the run directory), got 'a/b'.",
    ),
    "not a finite number": ({"optim": {"lr": "nan"}}, (), "recipe key 'optim.lr' must be a finite number, got 'nan'."),
    "bad YAML in an override": ({}, ["output.trackers=[a"], None),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_recipe_gives_the_exact_error(case):
    source, overrides, message = BAD[case]
    if message is None:  # the YAML parser's own wording varies; pin our part of it
        assert error_of(source, overrides).startswith(
            "override 'output.trackers=[a': cannot read '[a' as a YAML value ("
        )
    else:
        assert error_of(source, overrides) == message


def test_bad_recipe_files(tmp_path):
    missing = tmp_path / "nope.yaml"
    assert error_of(missing) == (
        f"recipe file '{missing}' not found. Shipped recipes live in recipes/, e.g. recipes/quickstart.yaml."
    )
    listed = write(tmp_path, "- a\n- b\n")
    assert error_of(listed) == (
        f"recipe file '{listed}' must hold a mapping of recipe keys (model:, data:, train:, ...), got list."
    )
    twice = write(tmp_path, "optim:\n  lr: 0.1\n  lr: 0.2\n")
    assert error_of(twice) == (
        f"recipe file '{twice}': recipe key 'lr' appears twice in one mapping (line 3); keep one."
    )
    broken = write(tmp_path, "optim: [\n")
    assert error_of(broken).startswith(f"recipe file '{broken}' is not valid YAML: ")
    assert error_of(write(tmp_path, "optim:\n  learning_rate: 3e-4\n")) == (
        "unknown recipe key 'optim.learning_rate'. Did you mean: optim.lr?"
    )


def test_errors_are_config_errors_a_value_error_handler_catches():
    with pytest.raises(ValueError, match="recipe key 'optim.name' must be one of adamw, sgd"):
        load_recipe({"optim": {"name": "adam"}})
