"""Recipe values converted to their schema types, with errors that name the key, the value and the type.

YAML 1.1 reads ``3e-4`` as a string and a bare ``no`` as false, and an override arrives as text: each field's
type hint (``zoo.train.schema``) decides what a value means. Hand-written for the reasons in recipe.py.
"""
from __future__ import annotations

import copy
import math
import types
from collections.abc import Mapping
from typing import Any, Literal, Union, get_args, get_origin

from zoo.errors import ConfigError, closest

BOOL_WORDS = {"true": True, "false": False, "yes": True, "no": False, "on": True, "off": False}


def split_optional(tp: Any) -> tuple[Any, bool]:
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        optional = len(args) < len(get_args(tp))
        return (args[0] if len(args) == 1 else Union[tuple(args)]), optional
    return tp, False


def describe(tp: Any) -> str:
    inner, optional = split_optional(tp)
    origin = get_origin(inner)
    if inner is bool:
        text = "true or false"
    elif inner is int:
        text = "an integer"
    elif inner is float or (origin in (Union, types.UnionType) and set(get_args(inner)) == {int, float}):
        text = "a number"
    elif inner is str:
        text = "a string"
    elif origin is Literal:
        text = "one of " + ", ".join(get_args(inner))
    elif origin is list:
        text = f"a list of {describe(get_args(inner)[0]).removeprefix('one of ')}"
    elif origin is tuple:
        text = f"a list of {len(get_args(inner))} numbers"
    else:
        text = "a mapping"
    return text + (" or null" if optional else "")


def type_error(key: str, value: Any, tp: Any) -> ConfigError:
    return ConfigError(f"recipe key '{key}' expects {describe(tp)}, got {value!r} ({type(value).__name__}).")


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def to_float(key: str, value: Any, tp: Any) -> float:
    if is_number(value):
        out = float(value)
    elif isinstance(value, str):  # YAML 1.1 reads 3e-4 (no dot) as a string: coerce by the declared type
        try:
            out = float(value.strip())
        except ValueError:
            raise type_error(key, value, tp) from None
    else:
        raise type_error(key, value, tp)
    if not math.isfinite(out):
        raise ConfigError(f"recipe key '{key}' must be a finite number, got {value!r}.")
    return out


def to_int(key: str, value: Any, tp: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise type_error(key, value, tp)


def coerce(key: str, value: Any, tp: Any) -> Any:
    """``value`` converted to the field type ``tp``, or a ConfigError naming key, value and expected type."""
    inner, optional = split_optional(tp)
    if value is None:
        if optional:
            return None
        raise type_error(key, value, tp)
    origin = get_origin(inner)
    if inner is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in BOOL_WORDS:
            return BOOL_WORDS[value.strip().lower()]
        raise type_error(key, value, tp)
    if inner is int:
        return to_int(key, value, tp)
    if inner is float:
        return to_float(key, value, tp)
    if origin in (Union, types.UnionType):  # float | int (a fraction or a count): keep which one it was
        if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
            return int(value.strip())
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        return to_float(key, value, tp)
    if inner is str:
        if isinstance(value, str):
            return value
        if is_number(value):  # `revision: 2024` is meant as text
            return str(value)
        raise type_error(key, value, tp)
    if origin is Literal:
        choices = get_args(inner)
        if value is False and "no" in choices:  # YAML 1.1 reads a bare `no` as false
            return "no"
        if isinstance(value, str) and value in choices:
            return value
        shown = value if isinstance(value, str) else repr(value)
        near = closest(shown, choices, n=3)
        hint = f" Did you mean: {', '.join(near)}?" if near else ""
        raise ConfigError(f"recipe key '{key}' must be one of {', '.join(choices)}; got {value!r}.{hint}")
    if origin is list:
        if isinstance(value, str):  # `trackers: tensorboard` means a list of one
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise type_error(key, value, tp)
        return [coerce(key, item, get_args(inner)[0]) for item in value]
    if origin is tuple:
        args = get_args(inner)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise type_error(key, value, tp)
        return tuple(coerce(key, item, arg) for item, arg in zip(value, args))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise type_error(key, value, tp)
        value_type = get_args(inner)[1]
        out = {}
        for k, v in value.items():
            if get_origin(value_type) is dict:  # variants: {name: {dotted.key: value}}
                v = {} if v is None else v
                if not isinstance(v, Mapping):
                    raise type_error(f"{key}.{k}", v, value_type)
            out[str(k)] = copy.deepcopy(dict(v) if isinstance(v, Mapping) else v)
        return out
    raise TypeError(f"recipe schema field {key!r} has an unsupported type {tp!r}")  # a schema bug, not user error


def is_text(tp: Any) -> bool:
    """Fields whose override text is taken verbatim (so `hub.revision=1.10` and `mixed_precision=no` stay text)."""
    inner, _ = split_optional(tp)
    return inner is str or get_origin(inner) is Literal
