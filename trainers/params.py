"""Reading a trainer's params with their types checked: a wrong value raises
:class:`propagator.ConfigError` naming the param, before any work starts."""

from __future__ import annotations

import math
from typing import Any

from propagator import ConfigError


def number(
    params: dict[str, Any], name: str, default: float, low: float = -math.inf, strict: bool = False
) -> float:
    """A finite number ``>= low`` (``> low`` if ``strict``)."""
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    if value < low or (strict and value == low):
        raise ConfigError(f"{name} must be {'>' if strict else '>='} {low}, got {value!r}")
    return float(value)


def integer(params: dict[str, Any], name: str, default: int, low: int) -> int:
    """An integer ``>= low`` (a float with an integral value, as YAML may give, is taken)."""
    value = params.get(name, default)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


def flag(params: dict[str, Any], name: str, default: bool) -> bool:
    """``true`` or ``false``."""
    value = params.get(name, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    return value
