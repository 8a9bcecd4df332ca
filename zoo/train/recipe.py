"""Strict, typed recipes: YAML + ``key.sub=value`` overrides in, a validated :class:`Recipe` out.

Every mistake a user can make in a recipe is caught here, before any model or dataset is built: unknown keys
(named with their full dotted path and the closest valid key), wrong types (named with the value and the
expected type), values outside their range, and combinations the trainer cannot honour.

Hand-written rather than pydantic/omegaconf: neither is a declared dependency, and the rules wanted here
(YAML 1.1 reads ``3e-4`` as a string and a bare ``no`` as false; dotted-key errors with did-you-mean over
the whole schema; messages stable enough for tests to pin) would take as much code to translate out of
their errors as it takes to check the few dozen keys directly against the dataclass type hints.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import is_dataclass, replace
from functools import cache
from os import PathLike
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml

from zoo.errors import ConfigError, closest
from zoo.train.coerce import coerce, is_text, split_optional, type_error
from zoo.train.schema import Recipe, check_combinations, check_values, recipe_fields

__all__ = ["Recipe", "load_recipe", "expand_variants", "recipe_keys", "parse_override"]

DEFAULT_NAME = "run"  # run name of a recipe given as a mapping without `name` (files use their stem)
_NULL_WORDS = {"null", "Null", "NULL", "~", ""}

# Spellings from other trainers (timm, HF Trainer, Lightning) -> our key, so 'did you mean' finds keys
# that no string-similarity measure would ('learning_rate' and 'lr' share two letters).
KEY_ALIASES = {
    "learning_rate": "optim.lr", "base_lr": "optim.lr", "wd": "optim.weight_decay",
    "optimizer": "optim.name", "opt": "optim.name", "scheduler": "schedule.name", "sched": "schedule.name",
    "lr_scheduler": "schedule.name", "warmup": "schedule.warmup_epochs", "warmup_epoch": "schedule.warmup_epochs",
    "lr_min": "schedule.min_lr", "num_epochs": "train.epochs", "max_epochs": "train.epochs",
    "epoch": "train.epochs", "bs": "data.batch_size", "train_batch_size": "data.batch_size",
    "per_device_train_batch_size": "data.batch_size", "accumulate_grad_batches": "train.grad_accum",
    "gradient_accumulation_steps": "train.grad_accum", "amp": "train.mixed_precision",
    "precision": "train.mixed_precision", "smoothing": "train.label_smoothing", "model_name": "model.name",
    "arch": "model.name", "architecture": "model.name", "dataset": "data.spec", "drop_path_rate": "model.drop_path",
    "layer_decay": "strategy.llrd_decay", "img_size": "data.image_size", "input_size": "data.image_size",
    "workers": "data.num_workers", "patience": "train.early_stopping", "clip_grad_norm": "train.clip_grad",
    "max_grad_norm": "train.clip_grad", "output_dir": "output.dir", "hub_model_id": "hub.repo_id",
    "model_ema": "train.ema", "model_ema_decay": "train.ema_decay", "freeze_epochs": "strategy.unfreeze_epoch",
}


# ---- the schema, seen as dotted keys ----------------------------------------------------------------------------
@cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _section_keys(cls: type) -> list[str]:
    return [f.name for f in recipe_fields(cls)]


def recipe_keys(cls: type = Recipe, prefix: str = "") -> list[str]:
    """Every dotted recipe key (``optim.lr``, ...), in schema order: for help texts and suggestions."""
    keys: list[str] = []
    for name in _section_keys(cls):
        tp = _hints(cls)[name]
        keys.append(prefix + name)
        if is_dataclass(tp):
            keys += recipe_keys(tp, f"{prefix}{name}.")
    return keys


def _unknown_key(full_key: str, cls: type, prefix: str) -> ConfigError:
    """'unknown recipe key 'optim.learning_rate'. Did you mean: optim.lr?' (or the valid keys when nothing fits)."""
    leaf = full_key[len(prefix):].split(".")[0]
    siblings = [prefix + k for k in _section_keys(cls)]
    every = recipe_keys()
    found = [KEY_ALIASES[leaf.lower()]] if leaf.lower() in KEY_ALIASES else []
    found += [k for k in every if k.rsplit(".", 1)[-1] == leaf and k != full_key]  # right key, wrong section
    found += [prefix + k for k in closest(leaf, _section_keys(cls), n=3)]  # a typo within the section
    if not found:  # a typo of a key that lives in another section
        leaves: dict[str, list[str]] = {}
        for k in every:
            leaves.setdefault(k.rsplit(".", 1)[-1], []).append(k)
        found = [k for near in closest(leaf, leaves, n=3) for k in leaves[near]]
    found = list(dict.fromkeys(found))[:3]
    if found:
        hint = f" Did you mean: {', '.join(found)}?"
    else:
        where = f" under '{prefix[:-1]}'" if prefix else ""
        hint = f" Valid keys{where}: {', '.join(siblings)}."
    return ConfigError(f"unknown recipe key '{full_key}'.{hint}")


# ---- raw mappings -> dataclasses -------------------------------------------------------------------------------
def _build(cls: type, raw: Any, prefix: str) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"recipe key '{prefix[:-1]}' expects a mapping of keys "
                          f"({', '.join(_section_keys(cls))}), got {raw!r} ({type(raw).__name__}).")
    names = _section_keys(cls)
    for key in raw:
        if key not in names:
            raise _unknown_key(prefix + str(key), cls, prefix)
    kwargs = {}
    for name in names:
        if name in raw:
            tp = _hints(cls)[name]
            value = raw[name]
            key = prefix + name
            kwargs[name] = _build(tp, value, key + ".") if is_dataclass(tp) else coerce(key, value, tp)
    return cls(**kwargs)


def parse_override(item: str) -> tuple[str, str]:
    """'optim.lr=3e-4' -> ('optim.lr', '3e-4')."""
    if not isinstance(item, str) or "=" not in item:
        raise ConfigError(f"override {item!r} has no '=': write overrides as key.sub=value, e.g. train.epochs=5.")
    key, text = item.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {item!r} needs a dotted recipe key before '=', e.g. optim.lr=3e-4.")
    return key, text


def _yaml_value(item: str, text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"override {item!r}: cannot read {text!r} as a YAML value ({problem}). "
                          "Quote text that contains YAML syntax, e.g. key='a: b'.") from None


def _set(raw: dict[str, Any], key: str, value: Any = None, *, text: str | None = None, item: str = "") -> None:
    """Set dotted ``key`` in the raw mapping, checking every part against the schema.

    ``text`` is an override's text, read by the field's type; ``value`` an already parsed value (variants).
    """
    parts = key.split(".")
    node: dict[str, Any] = raw
    cls: type = Recipe
    for i, part in enumerate(parts):
        prefix = ".".join(parts[:i]) + ("." if i else "")
        if part not in _section_keys(cls):
            raise _unknown_key(prefix + part, cls, prefix)
        tp = _hints(cls)[part]
        rest = parts[i + 1:]
        if text is not None and not rest:
            value = text if is_text(tp) and text not in _NULL_WORDS else _yaml_value(item or key, text)
        if is_dataclass(tp):
            child = node.get(part)
            if not rest:  # a whole section: merge a mapping into it, anything else fails in _build
                mergeable = isinstance(child, Mapping) and isinstance(value, Mapping)
                node[part] = _merge(child, value) if mergeable else value
                return
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"recipe key '{prefix + part}' expects a mapping of keys, got {child!r}.")
            node, cls = child, tp
            continue
        inner, _ = split_optional(tp)
        if get_origin(inner) is dict and rest:  # model.kwargs.foo=1, variants.NAME.dotted.key=v
            target = node.get(part)
            if target is None:
                target = node[part] = {}
            elif not isinstance(target, dict):
                raise type_error(prefix + part, target, tp)
            if get_origin(get_args(inner)[1]) is dict:  # variants.NAME=mapping or variants.NAME.dotted.key=v
                parsed = _yaml_value(item or key, text) if text is not None else value
                if len(rest) == 1:
                    target[rest[0]] = parsed
                    return
                variant = target.get(rest[0])
                if variant is None:
                    variant = target[rest[0]] = {}
                elif not isinstance(variant, dict):
                    raise type_error(f"{prefix}{part}.{rest[0]}", variant, get_args(inner)[1])
                variant[".".join(rest[1:])] = parsed
                return
            for sub in rest[:-1]:
                target = target.setdefault(sub, {})
                if not isinstance(target, dict):
                    raise type_error(prefix + part, node[part], tp)
            target[rest[-1]] = _yaml_value(item or key, text) if text is not None else value
            return
        if rest:
            raise ConfigError(f"unknown recipe key '{key}': '{prefix + part}' is a value, not a section.")
        node[part] = value
        return


def _merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(base))
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(out.get(k), Mapping) and isinstance(v, Mapping) else copy.deepcopy(v)
    return out


def _resolve(r: Recipe, raw: Mapping[str, Any], default_name: str) -> Recipe:
    """Fill what the recipe left implicit (run name; scratch means no pretrained weights), then check it."""
    model_raw = raw.get("model") if isinstance(raw.get("model"), Mapping) else {}
    explicit = model_raw.get("pretrained", None) if "pretrained" in model_raw else None
    if r.strategy.name == "scratch":
        if r.model.pretrained and explicit is not None:
            raise ConfigError(
                "strategy.name=scratch trains the same architecture from random initialisation, but "
                "model.pretrained=true asks for pretrained weights. Set model.pretrained=false (or leave it out: "
                "scratch implies false), or choose another strategy, e.g. strategy.name=finetune.")
        r.model.pretrained = False
    if r.name is None:
        r.name = default_name
    check_values(r)
    check_combinations(r)
    return r


def _from_raw(raw: Mapping[str, Any], overrides: Sequence[str], default_name: str) -> Recipe:
    merged = copy.deepcopy(dict(raw))
    for item in overrides:
        key, text = parse_override(item)
        _set(merged, key, text=text, item=item)
    return _resolve(_build(Recipe, merged, ""), merged, default_name)


# ---- files ---------------------------------------------------------------------------------------------------
class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key repeated in one mapping (PyYAML silently keeps the last one)."""


def _no_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConfigError(f"recipe key '{key}' appears twice in one mapping (line {key_node.start_mark.line + 1}); "
                              "keep one.")
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def read_recipe_file(path: str | PathLike[str]) -> dict[str, Any]:
    """The raw mapping in a recipe file (no schema applied yet)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"recipe file '{path}' not found. Shipped recipes live in recipes/, "
                          "e.g. recipes/quickstart.yaml.")
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)  # noqa: S506 (a SafeLoader)
    except ConfigError as exc:
        raise ConfigError(f"recipe file '{path}': {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"recipe file '{path}' is not valid YAML: {exc}") from None
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"recipe file '{path}' must hold a mapping of recipe keys (model:, data:, train:, ...), "
                          f"got {type(raw).__name__}.")
    return dict(raw)


def load_recipe(path_or_mapping: str | PathLike[str] | Mapping[str, Any] | Recipe,
                overrides: Sequence[str] = ()) -> Recipe:
    """Read, override, coerce and validate a recipe (and each of its variants), before anything is built.

    ``overrides`` are ``key.sub=value`` strings as typed after the recipe on the command line; they win over
    the file and over its variants.
    """
    if isinstance(overrides, str):
        overrides = [overrides]
    overrides = tuple(overrides)
    source: Path | None = None
    if isinstance(path_or_mapping, Recipe):
        source = path_or_mapping.source_path
        raw = path_or_mapping.to_dict()
        default_name = path_or_mapping.name or DEFAULT_NAME
    elif isinstance(path_or_mapping, Mapping):
        raw, default_name = copy.deepcopy(dict(path_or_mapping)), DEFAULT_NAME
    elif isinstance(path_or_mapping, (str, PathLike)):
        source = Path(path_or_mapping)
        raw, default_name = read_recipe_file(source), source.stem
    else:
        raise ConfigError(f"load_recipe takes a recipe file path or a mapping, got {type(path_or_mapping).__name__}.")
    recipe = _from_raw(raw, overrides, default_name)
    recipe.source_path, recipe.base_raw, recipe.overrides = source, raw, overrides
    for name in recipe.variants:  # fail now, not hours later when the trainer reaches this variant
        _variant(recipe, name)
    return recipe


def _variant(recipe: Recipe, variant: str) -> Recipe:
    base = recipe.base_raw if recipe.base_raw is not None else recipe.to_dict()
    raw = {k: v for k, v in copy.deepcopy(base).items() if k != "variants"}
    try:
        for key, value in recipe.variants[variant].items():
            key = str(key)
            if key.split(".")[0] == "name":
                raise ConfigError(f"a variant cannot set '{key}' (its run name is '<name>-<variant>').")
            if key.split(".")[0] == "variants":
                raise ConfigError(f"a variant cannot set '{key}': variants do not nest.")
            _set(raw, key, value)
        overrides = [o for o in recipe.overrides if parse_override(o)[0].split(".")[0] != "variants"]
        result = _from_raw(raw, overrides, DEFAULT_NAME)
    except ConfigError as exc:
        raise ConfigError(f"variant '{variant}': {exc}") from None
    return replace(result, name=f"{recipe.name}-{variant}", variants={}, source_path=recipe.source_path,
                   base_raw=None, overrides=())


def expand_variants(recipe: Recipe) -> list[tuple[str, Recipe]]:
    """``[(run name, recipe)]``: the recipe itself, or one recipe per variant (base + variant + overrides)."""
    if not recipe.variants:
        return [(recipe.name or DEFAULT_NAME, recipe)]
    runs = [_variant(recipe, name) for name in recipe.variants]
    return [(r.name, r) for r in runs]
