"""Documented, validated dataclass settings: the machinery under run configs and method parameters.

Every setting is declared with :func:`setting`, which keeps its one-line documentation beside the
default. :func:`build` turns a plain (YAML) mapping into the dataclass, naming the valid keys when a key
is unknown and the expected type when a value does not fit.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, Union

from benchmark.errors import UserError

T = TypeVar("T")
_WORDS = {"true": True, "on": True, "yes": True, "false": False, "off": False, "no": False}


def setting(default: Any, doc: str) -> Any:
    """A dataclass field with a default and a one-line description of what it controls."""
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata={"doc": doc})
    return dataclasses.field(default=default, metadata={"doc": doc})


def describe(cls: type) -> list[tuple[str, Any, str]]:
    """(dotted key, default, doc) of every setting of ``cls``, nested dataclasses flattened."""
    rows: list[tuple[str, Any, str]] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):
            rows += [(f"{f.name}.{key}", default, doc) for key, default, doc in describe(kind)]
        else:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            rows.append((f.name, default, f.metadata.get("doc", "")))
    return rows


def to_dict(obj: Any) -> Any:
    """A dataclass as plain Python data (tuples become lists) ready for YAML or JSON."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(item) for item in obj]
    if isinstance(obj, dict):
        return {key: to_dict(value) for key, value in obj.items()}
    return obj


def build(cls: type[T], data: Mapping[str, Any] | None, where: str = "") -> T:
    """Instantiate dataclass ``cls`` from ``data``; missing keys take their defaults.

    ``where`` is the dotted prefix used in error messages (e.g. ``"optim."``).
    """
    if data is not None and not isinstance(data, Mapping):
        where_name = where.rstrip(".") or "config"
        raise UserError(f"{where_name} must be a mapping of keys to values, got {data!r} (set one key: "
                        f"--set {where or 'section.'}KEY=VALUE)")
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [key for key in data if key not in names]
    if unknown:
        raise UserError(f"unknown config key '{where}{unknown[0]}'; valid keys here: "
                        + ", ".join(f"{where}{name}" for name in names))
    values = {}
    for name, value in data.items():
        kind = hints[name]
        if dataclasses.is_dataclass(kind):
            values[name] = build(kind, value, f"{where}{name}.")
        else:
            values[name] = coerce(value, kind, f"{where}{name}")
    return cls(**values)


def merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dictionary update: nested mappings merge, everything else replaces."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def _describe(kind: Any) -> str:
    """A short English name of a setting type, for messages."""
    origin = typing.get_origin(kind)
    if origin in (list, tuple):
        return "a list"
    if origin is Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(kind)))
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(kind, str(kind))


def coerce(value: Any, kind: Any, name: str) -> Any:
    """Check ``value`` against the annotation ``kind`` and convert where it is lossless."""
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if kind is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        for option in options:
            try:
                return coerce(value, option, name)
            except UserError:
                continue
        if len(options) == 1:
            return coerce(value, options[0], name)
        kinds = " or ".join(_describe(option) for option in options)
        raise UserError(f"{name} must be {kinds}{' (or null)' if type(None) in args else ''}, got {value!r}")
    if origin is Literal:
        if isinstance(value, bool) and ("on" in args or "off" in args):
            value = "on" if value else "off"  # YAML reads a bare on/off as a boolean
        if value not in args:
            raise UserError(f"{name} must be one of {', '.join(map(repr, args))}; got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{name} must be a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise UserError(f"{name} must have {len(args)} items, got {value!r}")
            return tuple(coerce(v, a, f"{name}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        items = [coerce(v, item, f"{name}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or kind is dict:
        if not isinstance(value, dict):
            raise UserError(f"{name} must be a mapping, got {value!r}")
        return dict(value)
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _WORDS:
            return _WORDS[value.lower()]
        raise UserError(f"{name} must be true or false, got {value!r}")
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise UserError(f"{name} must be an integer, got {value!r}")
    if kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 and 1.0e12 as strings; Python reads them as numbers
            try:
                return float(value)
            except ValueError:
                pass
        raise UserError(f"{name} must be a number, got {value!r}")
    if kind is str:
        if isinstance(value, str):
            return value
        raise UserError(f"{name} must be a string, got {value!r}")
    raise TypeError(f"unsupported setting type {kind!r} for {name}")
