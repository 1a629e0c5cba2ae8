"""Plain-dataclass configuration: from/to nested dicts (TOML, JSON) and command-line overrides.

A configuration is a dataclass whose fields are scalars, tuples of scalars, or other such
dataclasses (the sections). Unknown keys are errors, never silently ignored.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import types
import typing
from typing import Any, TypeVar

from ddpm.errors import UserError
from ddpm.validation import InvalidValue

T = TypeVar("T")


def _field_types(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def _unknown_key(key: str, known, where: str) -> UserError:
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(sorted(known))}"
    return UserError(f"unknown configuration key '{where}{key}'{hint}")


def _convert(value: Any, tp: Any, name: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if value is None else _convert(value, args[0], name)
    if origin is tuple:
        (inner, *_rest) = typing.get_args(tp)
        if isinstance(value, str):
            value = [v for v in value.replace(" ", "").split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise UserError(f"configuration key {name!r} expects a list, got {value!r}")
        return tuple(_convert(v, inner, name) for v in value)
    if tp is bool:
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        if not isinstance(value, bool):
            raise UserError(f"configuration key {name!r} expects true or false, got {value!r}")
        return value
    if tp in (int, float):
        if isinstance(value, bool):
            raise UserError(f"configuration key {name!r} expects a number, got {value!r}")
        try:
            converted = tp(value)
        except (TypeError, ValueError):
            raise UserError(f"configuration key {name!r} expects {tp.__name__}, got {value!r}") from None
        if tp is int and isinstance(value, float) and value != converted:
            raise UserError(f"configuration key {name!r} expects an integer, got {value!r}")
        return converted
    if tp is str:
        if not isinstance(value, str):
            raise UserError(f"configuration key {name!r} expects a string, got {value!r}")
        return value
    return value


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Build dataclass ``cls`` from a nested dict; unknown keys and bad types raise UserError."""
    if not isinstance(data, dict):
        raise UserError(f"configuration section {where or cls.__name__!r} must be a table")
    types_ = _field_types(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in types_:
            raise _unknown_key(key, types_, where)
        tp = types_[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = from_dict(tp, value, f"{where}{key}.")
        else:
            kwargs[key] = _convert(value, tp, where + key)
    try:
        return cls(**kwargs)
    except InvalidValue as err:
        raise UserError(err.naming(where + err.key)) from None
    except (TypeError, ValueError) as err:
        raise UserError(
            f"invalid configuration{' in ' + where.rstrip('.') if where else ''}: {err}"
        ) from None


def to_dict(config: Any) -> dict[str, Any]:
    """Nested plain dict (tuples as lists) of a dataclass configuration, for TOML/JSON."""
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            value = to_dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``overrides``, recursively for nested tables."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts."""
    keys = sorted(set(a) | set(b))
    out = []
    for k in keys:
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}")
    return out


def add_override_arguments(
    parser: argparse.ArgumentParser, cls: type, prefix: str = "", group=None, defaults: Any = None
) -> None:
    """Add ``--section.key VALUE`` for every field of a (nested) dataclass, with its help text; the
    defaults shown are ``defaults``'s values (an instance of ``cls``) or else the fields' own."""
    for f in dataclasses.fields(cls):
        tp = _field_types(cls)[f.name]
        name = prefix + f.name
        if dataclasses.is_dataclass(tp):
            section = parser.add_argument_group(f"[{name}] options (override the config file)")
            inner = getattr(defaults, f.name) if defaults is not None else None
            add_override_arguments(parser, tp, name + ".", section, inner)
            continue
        if defaults is not None:
            default = getattr(defaults, f.name)
        else:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if isinstance(default, tuple):
            default = ",".join(map(str, default))
        metavar = {bool: "BOOL", int: "INT", float: "FLOAT"}.get(tp, "LIST" if "tuple" in str(tp) else "STR")
        (group or parser).add_argument(
            f"--{name}",
            dest=f"override:{name}",
            metavar=metavar,
            default=argparse.SUPPRESS,
            help=f"{f.metadata.get('help', '')} (default: {default})",
        )


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Nested dict of the ``--section.key`` values the user actually gave."""
    out: dict[str, Any] = {}
    for dest, value in vars(args).items():
        if not dest.startswith("override:"):
            continue
        *sections, key = dest[len("override:") :].split(".")
        node = out
        for s in sections:
            node = node.setdefault(s, {})
        node[key] = value
    return out


def flag_name(field_name: str, cls: type) -> str:
    """The command-line flag of a field made by :func:`add_field_flags`: ``--dynamic-threshold``."""
    (f,) = [f for f in dataclasses.fields(cls) if f.name == field_name]
    return "--" + f.metadata.get("flag", f.name.replace("_", "-"))


def add_field_flags(parser: argparse.ArgumentParser, cls: type, title: str, note: str = "") -> None:
    """Add a flag for every field of dataclass ``cls`` (``--dynamic-threshold``; a bool as ``--clip`` /
    ``--no-clip``) in an argument group ``title``, with its type, help text and ``choices`` from the
    field; ``note`` ends every help text. A flag the user did not give is None (keep the stored value)."""
    group = parser.add_argument_group(title)
    for f in dataclasses.fields(cls):
        tp = _field_types(cls)[f.name]
        flag, dest = flag_name(f.name, cls), f"field:{f.name}"
        text = f.metadata.get("help", "") + note
        if tp is bool:
            pair = group.add_mutually_exclusive_group()
            pair.add_argument(flag, dest=dest, action="store_true", default=None, help=text)
            opposite = f"--no-{flag[2:]}"
            pair.add_argument(opposite, dest=dest, action="store_false", help=f"the opposite of {flag}")
            continue
        metavar = None if "choices" in f.metadata else {int: "INT", float: "FLOAT"}.get(tp, "STR")
        choices = f.metadata.get("choices")
        group.add_argument(flag, dest=dest, type=tp, choices=choices, metavar=metavar, help=text)


def field_flag_values(args: argparse.Namespace) -> dict[str, Any]:
    """The field values the user gave through :func:`add_field_flags`' flags, by field name."""
    prefix = "field:"
    return {k[len(prefix) :]: v for k, v in vars(args).items() if k.startswith(prefix) and v is not None}


def replace_from_flags(config: T, args: argparse.Namespace) -> T:
    """``config`` with the fields given as flags replaced; a value out of range is a UserError
    naming the flag (``--eta must be a finite number ≥ 0, got nan``)."""
    try:
        return dataclasses.replace(config, **field_flag_values(args))
    except InvalidValue as err:
        raise UserError(err.naming(flag_name(err.key, type(config)))) from None
    except ValueError as err:
        raise UserError(str(err)) from None
