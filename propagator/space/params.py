"""Typed parameters: how one gene in ``[0, 1]`` maps to a value, and back.

* ``Float``: ``u -> low + u (high - low)``, or log-uniform with ``log=True``.
* ``Int``: equal-probability bins over ``low..high`` (log-sized bins with ``log=True``);
  a gene decodes to a Python ``int`` inside the bounds.
* ``Categorical``: ``m`` equal bins, decoding to the choice object itself.
* ``Constant``: no gene; always present (when its condition holds).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import SpaceError
from .conditions import Condition

Scalar = str | int | float | bool | None


def _is_real(x: object) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def _condition(when: str | Condition | None) -> Condition | None:
    if when is None or isinstance(when, Condition):
        return when
    return Condition(when)


@dataclass(frozen=True)
class Float:
    """A real parameter in ``[low, high]``.

    Args:
        low: lower bound (inclusive).
        high: upper bound (inclusive); ``low < high`` must hold.
        log: sample and mutate on a log scale (needs ``low > 0``). Default ``False``.
        when: condition on other parameters under which this one is active, e.g. ``"opt == 'sgd'"``.
    """

    low: float
    high: float
    log: bool = False
    when: str | Condition | None = None
    kind: ClassVar[str] = "float"

    def _validated(self) -> Float:
        _check_bounds(self.low, self.high, self.log, integer=False)
        return Float(float(self.low), float(self.high), self.log, _condition(self.when))

    def decode(self, u: float) -> float:
        if self.log:
            a, b = math.log(self.low), math.log(self.high)
            x = math.exp(a + u * (b - a))
        else:
            x = self.low + u * (self.high - self.low)
        return min(max(x, self.low), self.high)

    def encode(self, x: Any) -> float:
        if not _is_real(x) or not self.low <= x <= self.high:
            raise SpaceError(f"expected a number in [{self.low}, {self.high}], but got {x!r}")
        if self.log:
            a, b = math.log(self.low), math.log(self.high)
            return (math.log(x) - a) / (b - a)
        return (x - self.low) / (self.high - self.low)


@dataclass(frozen=True)
class Int:
    """An integer parameter in ``low..high`` (both inclusive).

    Args:
        low: smallest value.
        high: largest value; ``low < high`` must hold.
        log: log-sized bins, so small values are as likely per octave as large ones (needs
            ``low >= 1``). Default ``False``.
        when: condition on other parameters under which this one is active, e.g. ``"depth >= 3"``.
    """

    low: int
    high: int
    log: bool = False
    when: str | Condition | None = None
    kind: ClassVar[str] = "int"

    def _validated(self) -> Int:
        _check_bounds(self.low, self.high, self.log, integer=True)
        return Int(int(self.low), int(self.high), self.log, _condition(self.when))

    def _log_edges(self) -> tuple[float, float]:
        return math.log(self.low - 0.5), math.log(self.high + 0.5)

    def decode(self, u: float) -> int:
        if self.log:
            a, b = self._log_edges()
            x = math.floor(math.exp(a + u * (b - a)) + 0.5)
        else:
            x = self.low + math.floor(u * (self.high - self.low + 1))
        return min(max(int(x), self.low), self.high)

    def encode(self, x: Any) -> float:
        # range first: it rules out inf and nan, on which int(x) would raise
        if not _is_real(x) or not self.low <= x <= self.high or x != int(x):
            raise SpaceError(f"expected an integer in {self.low}..{self.high}, but got {x!r}")
        if self.log:
            a, b = self._log_edges()
            return (math.log(x) - a) / (b - a)
        return (int(x) - self.low + 0.5) / (self.high - self.low + 1)


@dataclass(frozen=True)
class Categorical:
    """One of a list of choices (strings, numbers, booleans or null, as in YAML).

    Decoding returns the choice object itself. ``1``, ``1.0`` and ``True`` count as
    different choices.

    Args:
        choices: the non-empty list of distinct choices.
        when: condition on other parameters under which this one is active.
    """

    choices: tuple[Scalar, ...]
    when: str | Condition | None = None
    kind: ClassVar[str] = "categorical"

    def _validated(self) -> Categorical:
        if isinstance(self.choices, (str, bytes)) or not isinstance(self.choices, Sequence):
            raise SpaceError(f"choices must be a list, but got {self.choices!r}")
        choices = tuple(self.choices)
        if not choices:
            raise SpaceError("choices must not be empty")
        for c in choices:
            if c is not None and not isinstance(c, (str, int, float, bool)):
                raise SpaceError(f"choices must be strings, numbers, booleans or null, got {c!r}")
        keys = [choice_key(c) for c in choices]
        if len(set(keys)) != len(keys):
            dup = next(c for c, k in zip(choices, keys, strict=True) if keys.count(k) > 1)
            raise SpaceError(f"choices must be distinct, but {dup!r} appears twice")
        return Categorical(choices, _condition(self.when))

    def decode(self, u: float) -> Scalar:
        m = len(self.choices)
        return self.choices[min(max(int(u * m), 0), m - 1)]

    def encode(self, x: Any) -> float:
        key = choice_key(x)
        for i, c in enumerate(self.choices):
            if choice_key(c) == key:
                return (i + 0.5) / len(self.choices)
        raise SpaceError(f"expected one of {list(self.choices)!r}, but got {x!r}")


@dataclass(frozen=True)
class Constant:
    """A fixed value, passed to the objective as is (when its condition holds); no gene."""

    value: Any
    when: str | Condition | None = None
    kind: ClassVar[str] = "constant"

    def _validated(self) -> Constant:
        return Constant(self.value, _condition(self.when))


Param = Float | Int | Categorical | Constant
_PARAM_TYPES = {"float": Float, "int": Int, "categorical": Categorical, "constant": Constant}


def choice_key(c: object) -> tuple[str, object]:
    return (type(c).__name__, c)


def _check_bounds(low: Any, high: Any, log: Any, *, integer: bool) -> None:
    kind = "an integer" if integer else "a finite number"
    for name, v in (("low", low), ("high", high)):
        # abs(v) <= max first: math.isfinite raises OverflowError on ints beyond float range
        ok = _is_real(v) and abs(v) <= sys.float_info.max and math.isfinite(v)
        if not ok or (integer and v != int(v)):
            raise SpaceError(f"{name} must be {kind}, but got {v!r}")
    if not isinstance(log, bool):
        raise SpaceError(f"log must be true or false, but got {log!r}")
    if not low < high:
        raise SpaceError(f"low < high must hold, but got low={low!r}, high={high!r}")
    if log and low <= 0:
        raise SpaceError(f"log=True needs low > 0, but got low={low!r}")
    edges = (low - 0.5, high + 0.5) if integer else (low, high)  # as decode's
    if log and not math.log(edges[0]) < math.log(edges[1]):  # else encode divides by zero
        raise SpaceError(f"low={low!r}, high={high!r} are too close for a log scale")
    if not math.isfinite(float(high) - float(low)):  # decoding would give nan or inf
        raise SpaceError(f"high - low must be a finite number, but got low={low!r}, high={high!r}")


PARAM_CLASSES = (Float, Int, Categorical, Constant)

_KEYS = {
    "float": {"type", "low", "high", "log", "when"},
    "int": {"type", "low", "high", "log", "when"},
    "categorical": {"type", "choices", "when"},
    "constant": {"type", "value", "when"},
}


def param_from_dict(entry: Any) -> Param:
    if isinstance(entry, PARAM_CLASSES):
        return entry
    if not isinstance(entry, Mapping):
        return Constant(entry)
    kind = entry.get("type")
    if not isinstance(kind, str) or kind not in _PARAM_TYPES:
        raise SpaceError(f"type must be one of {sorted(_PARAM_TYPES)}, but got {kind!r}")
    extra = set(entry) - _KEYS[kind]
    if extra:
        raise SpaceError(
            f"unknown key(s) {sorted(extra)} for type {kind}; allowed: {sorted(_KEYS[kind])}"
        )
    args = {k: v for k, v in entry.items() if k != "type"}
    if kind in ("float", "int"):
        for bound in ("low", "high"):
            if bound not in args:
                raise SpaceError(f"type {kind} needs {bound!r}")
            args[bound] = _number(args[bound], bound)
    elif kind == "categorical" and "choices" not in args:
        raise SpaceError("type categorical needs 'choices'")
    elif kind == "constant" and "value" not in args:
        raise SpaceError("type constant needs 'value'")
    return _PARAM_TYPES[kind](**args)


def _number(v: Any, what: str) -> Any:
    if isinstance(v, str):
        try:
            f = float(v)
        except ValueError:
            raise SpaceError(f"{what} must be a number, but got {v!r}") from None
        return int(f) if f.is_integer() and "." not in v and "e" not in v.lower() else f
    return v
