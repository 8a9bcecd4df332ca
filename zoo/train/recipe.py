"""Recipes in (YAML, ``key.sub=value`` overrides, variants); a validated :class:`Recipe` or one clear error out.

pydantic checks (zoo.train.schema). This thin adapter refuses a key repeated in a YAML mapping, checks overrides
key by key and reads them by the field's type (``hub.revision=1.10`` stays text), rebuilds variants from the base,
and turns pydantic's first error into one line naming the dotted key, the value and what it must be.
"""

from __future__ import annotations

import copy
import types
from collections.abc import Mapping, Sequence
from functools import reduce
from os import PathLike
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types as at
import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from zoo.errors import ConfigError, closest
from zoo.train.schema import Recipe

__all__ = ["Recipe", "load_recipe", "expand_variants", "recipe_keys", "parse_override"]

DEFAULT_NAME = "run"  # run name of a recipe given as a mapping without `name` (files use their stem)
_NULL_WORDS = {"null", "Null", "NULL", "~", ""}
# Spellings from other trainers (timm, HF Trainer, Lightning) -> our key, so 'did you mean' finds keys
# that no string-similarity measure would ('learning_rate' and 'lr' share two letters).
KEY_ALIASES = {
    "learning_rate": "optim.lr",
    "base_lr": "optim.lr",
    "wd": "optim.weight_decay",
    "optimizer": "optim.name",
    "opt": "optim.name",
    "scheduler": "schedule.name",
    "sched": "schedule.name",
    "lr_scheduler": "schedule.name",
    "warmup": "schedule.warmup_epochs",
    "warmup_epoch": "schedule.warmup_epochs",
    "lr_min": "schedule.min_lr",
    "num_epochs": "train.epochs",
    "max_epochs": "train.epochs",
    "epoch": "train.epochs",
    "bs": "data.batch_size",
    "train_batch_size": "data.batch_size",
    "per_device_train_batch_size": "data.batch_size",
    "accumulate_grad_batches": "train.grad_accum",
    "gradient_accumulation_steps": "train.grad_accum",
    "amp": "train.mixed_precision",
    "precision": "train.mixed_precision",
    "smoothing": "train.label_smoothing",
    "model_name": "model.name",
    "arch": "model.name",
    "architecture": "model.name",
    "dataset": "data.spec",
    "drop_path_rate": "model.drop_path",
    "layer_decay": "strategy.llrd_decay",
    "img_size": "data.image_size",
    "input_size": "data.image_size",
    "workers": "data.num_workers",
    "patience": "train.early_stopping",
    "clip_grad_norm": "train.clip_grad",
    "max_grad_norm": "train.clip_grad",
    "output_dir": "output.dir",
    "hub_model_id": "hub.repo_id",
    "model_ema": "train.ema",
    "model_ema_decay": "train.ema_decay",
    "freeze_epochs": "strategy.unfreeze_epoch",
}
RANGE = {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "string_pattern_mismatch", "value_error"}
BOUNDS = {at.Gt: ("> {}", "({}"), at.Ge: (">= {}", "[{}"), at.Lt: ("< {}", "{})"), at.Le: ("<= {}", "{}]")}


def bare(tp: Any) -> tuple[Any, bool]:
    """(the type without Annotated and None, whether None is allowed)."""
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    if get_origin(tp) in (Union, types.UnionType) and type(None) in get_args(tp):  # X | None
        return bare(next(a for a in get_args(tp) if a is not type(None)))[0], True
    return tp, False


def section(tp: Any) -> type[BaseModel] | None:
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


FIELDS: dict[str, FieldInfo] = {}  # 'optim.lr' -> its FieldInfo, in schema order (sections hold no sections)
for _name, _info in Recipe.model_fields.items():
    FIELDS[_name] = _info
    FIELDS |= {f"{_name}.{k}": f for k, f in (section(_info.annotation) or BaseModel).model_fields.items()}


def recipe_keys() -> list[str]:
    """Every dotted recipe key (``optim.lr``, ...), in schema order: for help texts and suggestions."""
    return list(FIELDS)


def describe(tp: Any) -> str:
    """A type in words: 'an integer or null', 'one of adamw, sgd', 'a mapping of keys (name, lr, ...)'."""
    inner, optional = bare(tp)
    origin, args, sub = get_origin(inner) or inner, [bare(a)[0] for a in get_args(inner)], section(inner)
    if origin is Literal:
        text = "one of " + ", ".join(args)
    elif origin is list:
        text = "a list of " + describe(args[0]).removeprefix("one of ")
    elif sub:
        text = f"a mapping of keys ({', '.join(sub.model_fields)})"
    else:  # int | float (a fraction or a count) is a number
        text = {
            bool: "true or false",
            int: "an integer",
            str: "a string",
            dict: "a mapping",
            tuple: f"a list of {len(args)} numbers",
        }.get(origin, "a number")
    return text + (" or null" if optional else "")


def unknown_key(key: str) -> ConfigError:
    """'unknown recipe key 'optim.learning_rate'. Did you mean: optim.lr?' (or the valid keys when nothing fits)."""
    parent, _, leaf = key.rpartition(".")
    siblings = {k.rpartition(".")[2]: k for k in FIELDS if k.rpartition(".")[0] == parent}
    found = [KEY_ALIASES[leaf.lower()]] if leaf.lower() in KEY_ALIASES else []
    found += [k for k in FIELDS if k.rpartition(".")[2] == leaf and k != key]  # right key, wrong section
    found += [siblings[k] for k in closest(leaf, siblings, n=3)]  # a typo within the section
    if not found:  # a typo of a key that lives in another section
        near = closest(leaf, dict.fromkeys(k.rpartition(".")[2] for k in FIELDS), n=3)
        found = [k for n in near for k in FIELDS if k.rpartition(".")[2] == n]
    found = list(dict.fromkeys(found))[:3]
    where = f" under '{parent}'" if parent else ""
    hint = f" Did you mean: {', '.join(found)}?" if found else f" Valid keys{where}: {', '.join(siblings.values())}."
    return ConfigError(f"unknown recipe key '{key}'.{hint}")


def expectation(info: FieldInfo) -> str:
    """What a value must be: its bounds in words (``(0, 1]``, ``>= 1``) and the description, or the description."""
    bounds = [(BOUNDS[type(m)], getattr(m, type(m).__name__.lower())) for m in info.metadata if type(m) in BOUNDS]
    if not bounds:
        return info.description or ""
    text = (
        f"in {bounds[0][0][1].format(bounds[0][1])}, {bounds[1][0][1].format(bounds[1][1])}"
        if len(bounds) == 2
        else bounds[0][0][0].format(bounds[0][1])
    ) + (" or null" if bare(info.annotation)[1] else "")
    return text + (f" ({info.description})" if info.description else "")


def config_error(exc: ValidationError, raw: Any) -> ConfigError:
    """One line for the first error pydantic found: unknown keys first, then wrong types, then ranges."""
    first = min(exc.errors(), key=lambda e: (e["type"] != "extra_forbidden", e["type"] in RANGE))
    loc, kind, got = [str(p) for p in first["loc"]], first["type"], first["input"]
    if isinstance(cause := (first.get("ctx") or {}).get("error"), ConfigError):  # a rule across keys, worded there
        return cause
    n = next((i for i in range(len(loc), 0, -1) if ".".join(loc[:i]) in FIELDS), 0)
    if kind == "extra_forbidden":
        return unknown_key(".".join(loc[: n + 1]))
    key = ".".join(loc[:n])
    info, tp = FIELDS[key], FIELDS[key].annotation
    if get_origin(bare(tp)[0]) is dict and len(loc) > n:  # variants.NAME
        key, tp = f"{key}.{loc[n]}", get_args(bare(tp)[0])[1]
    value = reduce(lambda node, part: node.get(part) if isinstance(node, dict) else node, key.split("."), raw)
    if kind == "literal_error":
        choices = [c.strip("'") for c in first["ctx"]["expected"].replace(" or ", ", ").split(", ")]
        near = closest(got if isinstance(got, str) else repr(got), choices, n=3)
        hint = f" Did you mean: {', '.join(near)}?" if near else ""
        return ConfigError(f"recipe key '{key}' must be one of {', '.join(choices)}; got {got!r}.{hint}")
    if kind == "finite_number":
        return ConfigError(f"recipe key '{key}' must be a finite number, got {got!r}.")
    if kind in RANGE:
        read = {float: float, int: int, tuple: list}.get(get_origin(bare(tp)[0]) or bare(tp)[0])  # 0 -> 0.0
        value = read(value) if read and value is not None else value
        return ConfigError(f"recipe key '{key}' must be {expectation(info)}, got {value!r}.")
    return ConfigError(f"recipe key '{key}' expects {describe(tp)}, got {value!r} ({type(value).__name__}).")


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
        raise ConfigError(
            f"override {item!r}: cannot read {text!r} as a YAML value ({problem}). "
            "Quote text that contains YAML syntax, e.g. key='a: b'."
        ) from None


def _mapping_at(node: dict[str, Any], part: str, key: str, tp: Any) -> dict[str, Any]:
    child = node[part] = {} if node.get(part) is None else node[part]
    if not isinstance(child, dict):
        raise ConfigError(f"recipe key '{key}' expects {describe(tp)}, got {child!r} ({type(child).__name__}).")
    return child


def _set(raw: dict[str, Any], key: str, value: Any = None, *, text: str | None = None, item: str = "") -> None:
    """Set dotted ``key`` in the raw mapping, checking each part against the schema. ``text`` is an override's
    text, read by the field's type (text fields take it verbatim); ``value`` an already parsed value (a variant's)."""
    parts, node = key.split("."), raw
    for i, part in enumerate(parts):
        path, rest = ".".join(parts[: i + 1]), parts[i + 1 :]
        if path not in FIELDS:
            raise unknown_key(path)
        tp = FIELDS[path].annotation
        if section(tp) and rest:
            node = _mapping_at(node, part, path, tp)
            continue
        if text is not None:
            verbatim = (bare(tp)[0] is str or get_origin(bare(tp)[0]) is Literal) and text not in _NULL_WORDS
            value = text if verbatim and not rest else _yaml_value(item or key, text)
        if not rest:  # a mapping given for a whole section updates it
            merge = section(tp) and isinstance(node.get(part), Mapping) and isinstance(value, Mapping)
            node[part] = {**node[part], **value} if merge else value
            return
        if get_origin(bare(tp)[0]) is not dict:
            raise ConfigError(f"unknown recipe key '{key}': '{path}' is a value, not a section.")
        target = _mapping_at(node, part, path, tp)
        if get_origin(bare(get_args(bare(tp)[0])[1])[0]) is dict and len(rest) > 1:  # variants.NAME.dotted.key=v
            rest = [rest[0], ".".join(rest[1:])]
        for sub in rest[:-1]:  # model.kwargs.a.b=1
            path += "." + sub
            target = _mapping_at(target, sub, path, dict)
        target[rest[-1]] = value
        return


def _from_raw(raw: Mapping[str, Any], overrides: Sequence[str], default_name: str) -> Recipe:
    merged = copy.deepcopy(dict(raw))
    for item in overrides:
        key, text = parse_override(item)
        _set(merged, key, text=text, item=item)
    merged = {
        k: {} if v is None and section(getattr(FIELDS.get(k), "annotation", None)) else v for k, v in merged.items()
    }  # a bare `hub:` in YAML is null: the section's defaults
    merged["name"] = default_name if merged.get("name") is None else merged["name"]
    try:
        return Recipe.model_validate(merged)
    except ValidationError as exc:
        raise config_error(exc, merged) from None


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key repeated in one mapping (PyYAML silently keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if (key := self.construct_object(key_node, deep=deep)) in seen:
                raise ConfigError(
                    f"recipe key '{key}' appears twice in one mapping (line {key_node.start_mark.line + 1}); keep one."
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_recipe_file(path: str | PathLike[str]) -> dict[str, Any]:
    """The raw mapping in a recipe file (no schema applied yet)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"recipe file '{path}' not found. Shipped recipes live in recipes/, e.g. recipes/quickstart.yaml."
        )
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)  # noqa: S506 (a SafeLoader)
    except ConfigError as exc:
        raise ConfigError(f"recipe file '{path}': {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"recipe file '{path}' is not valid YAML: {exc}") from None
    if raw is not None and not isinstance(raw, Mapping):
        raise ConfigError(
            f"recipe file '{path}' must hold a mapping of recipe keys (model:, data:, train:, ...), "
            f"got {type(raw).__name__}."
        )
    return dict(raw or {})


def load_recipe(
    path_or_mapping: str | PathLike[str] | Mapping[str, Any] | Recipe, overrides: Sequence[str] = ()
) -> Recipe:
    """Read, override and validate a recipe and each of its variants, before anything is built. ``overrides``
    (``key.sub=value`` as typed after the recipe on the command line) win over the file and its variants."""
    overrides = (overrides,) if isinstance(overrides, str) else tuple(overrides)
    if isinstance(path_or_mapping, Recipe):
        source, raw = path_or_mapping.source_path, path_or_mapping.to_dict()
        default_name = path_or_mapping.name or DEFAULT_NAME
    elif isinstance(path_or_mapping, Mapping):
        source, raw, default_name = None, copy.deepcopy(dict(path_or_mapping)), DEFAULT_NAME
    elif isinstance(path_or_mapping, (str, PathLike)):
        source = Path(path_or_mapping)
        raw, default_name = read_recipe_file(source), source.stem
    else:
        raise ConfigError(f"load_recipe takes a recipe file path or a mapping, got {type(path_or_mapping).__name__}.")
    recipe = _from_raw(raw, overrides, default_name)
    recipe._source_path, recipe._base_raw, recipe._overrides = source, raw, overrides
    expand_variants(recipe)  # a bad variant fails now, not hours later when the trainer reaches it
    return recipe


def _variant(recipe: Recipe, variant: str) -> Recipe:
    base = recipe._base_raw if recipe._base_raw is not None else recipe.to_dict()
    raw = {k: v for k, v in copy.deepcopy(base).items() if k not in ("name", "variants")}
    try:
        for key, value in recipe.variants[variant].items():
            if key.split(".")[0] == "name":
                raise ConfigError(f"a variant cannot set '{key}' (its run name is '<name>-<variant>').")
            if key.split(".")[0] == "variants":
                raise ConfigError(f"a variant cannot set '{key}': variants do not nest.")
            _set(raw, key, value)
        # the run's name is already in recipe.name: a name=... override re-applied here would give every
        # variant that one name, and the second would land in the first one's folder
        overrides = [o for o in recipe.overrides if parse_override(o)[0].split(".")[0] not in ("variants", "name")]
        result = _from_raw(raw, overrides, f"{recipe.name}-{variant}")
    except ConfigError as exc:
        raise ConfigError(f"variant '{variant}': {exc}") from None
    result._source_path = recipe.source_path
    return result


def expand_variants(recipe: Recipe) -> list[tuple[str, Recipe]]:
    """``[(run name, recipe)]``: the recipe itself, or one recipe per variant (base + variant + overrides)."""
    runs = [_variant(recipe, name) for name in recipe.variants] or [recipe]
    return [(r.name or DEFAULT_NAME, r) for r in runs]
