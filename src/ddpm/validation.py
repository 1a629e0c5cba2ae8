"""Checks of configuration values where they are declared (in a dataclass's ``__post_init__``).

Each check raises :class:`InvalidValue`, a ``ValueError`` that knows the field's bare name, so the
caller can name it as the user wrote it: ``train.lr`` in a configuration file, ``--eta`` on the
command line (see :func:`ddpm.configuration.from_dict`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any


class InvalidValue(ValueError):
    """Field ``key`` broke ``requirement`` (e.g. "must be a finite number > 0") with ``value``."""

    def __init__(self, key: str, requirement: str, value: Any):
        self.key, self.requirement, self.value = key, requirement, value
        super().__init__(self.naming(key))

    def naming(self, name: str) -> str:
        """The message with the field called ``name`` (``train.lr``, ``--eta``)."""
        return f"{name} {self.requirement}, got {self.value!r}"


class UnknownChoice(InvalidValue):
    """Field ``key`` is not one of its named choices."""

    def naming(self, name: str) -> str:
        return f"unknown {name} {self.value!r}; {self.requirement}"


def _bounds(low, high, low_open: bool, high_open: bool) -> str:
    parts = []
    if low is not None and high is not None:
        parts.append(f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}")
    elif low is not None:
        parts.append(f"{'>' if low_open else '≥'} {low}")
    elif high is not None:
        parts.append(f"{'<' if high_open else '≤'} {high}")
    return " ".join(parts)


def require_number(
    key: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """``value`` is a finite real number within the given bounds (closed unless ``*_open``)."""
    rule = " ".join(["must be a finite number", _bounds(low, high, low_open, high_open)]).strip()
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        raise InvalidValue(key, rule, value)


def require_int(key: str, value: Any, low: int | None = None, high: int | None = None) -> None:
    """``value`` is an integer within ``[low, high]``."""
    rule = " ".join(["must be an integer", _bounds(low, high, False, False)]).strip()
    ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok or (low is not None and value < low) or (high is not None and value > high):
        raise InvalidValue(key, rule, value)


def require_positive_int(key: str, value: Any) -> None:
    """``value`` is an integer ≥ 1."""
    require_int(key, value, 1)


def require_ints(key: str, values: Iterable[Any], low: int = 1, *, allow_empty: bool = False) -> None:
    """``values`` is a list of integers, each ≥ ``low`` (and not empty unless ``allow_empty``)."""
    values = tuple(values)
    ok = bool(values) or allow_empty
    if not ok or not all(isinstance(v, int) and not isinstance(v, bool) and v >= low for v in values):
        kind = "list" if allow_empty else "non-empty list"
        raise InvalidValue(key, f"must be a {kind} of integers ≥ {low}", list(values))


def require_choice(key: str, value: Any, choices: Iterable[Any]) -> None:
    """``value`` is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise UnknownChoice(key, f"choose one of {', '.join(map(str, choices))}", value)
