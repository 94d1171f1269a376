"""Breeding strategies. ``make_strategy`` turns a name, a dict or a spec into a spec."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from .base import Breeder, StrategySpec
from .cmaes import CMAES
from .ga import GA
from .portfolio import Portfolio, deal
from .random import Random
from .tpe import TPE

STRATEGIES: dict[str, type[StrategySpec]] = {
    "ga": GA,
    "random": Random,
    "cmaes": CMAES,
    "tpe": TPE,
    "portfolio": Portfolio,
}

__all__ = [
    "CMAES",
    "GA",
    "STRATEGIES",
    "TPE",
    "Breeder",
    "Portfolio",
    "Random",
    "StrategySpec",
    "deal",
    "make_strategy",
]


def make_strategy(spec: str | Mapping[str, Any] | StrategySpec) -> StrategySpec:
    """A strategy spec from ``"ga"``, ``{"name": "ga", "population": 32}`` or a spec object.

    Raises:
        ConfigError: unknown name or setting, naming the known ones.
    """
    if isinstance(spec, StrategySpec):
        return spec
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, Mapping):
        raise ConfigError(f"strategy must be a name, a mapping or a strategy object, got {spec!r}")
    settings = dict(spec)
    name = settings.pop("name", None)
    if name not in STRATEGIES:
        close = difflib.get_close_matches(str(name), list(STRATEGIES), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"strategy.name must be one of {sorted(STRATEGIES)}, but got {name!r}{hint}"
        )
    cls = STRATEGIES[name]
    known = sorted(set(cls.__dataclass_fields__))
    unknown = sorted(set(settings) - set(known), key=str)
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
        raise ConfigError(f"unknown key {unknown[0]!r} in strategy {name!r}; {hint}")
    return cls(**settings)
