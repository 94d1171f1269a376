"""Breeding strategies. ``make_strategy`` turns a name, a dict or a spec into a spec."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..named import from_name
from .base import Breeder, StrategySpec
from .cmaes import CMAES
from .ga import GA
from .portfolio import Portfolio, deal
from .quadratic import Quadratic
from .random import Random
from .tpe import TPE

STRATEGIES: dict[str, type[StrategySpec]] = {
    "ga": GA,
    "random": Random,
    "cmaes": CMAES,
    "tpe": TPE,
    "quadratic": Quadratic,
    "portfolio": Portfolio,
}

__all__ = [
    "CMAES",
    "GA",
    "STRATEGIES",
    "TPE",
    "Breeder",
    "Portfolio",
    "Quadratic",
    "Random",
    "StrategySpec",
    "deal",
    "make_strategy",
]


def make_strategy(spec: str | Mapping[str, Any] | StrategySpec) -> StrategySpec:
    """A strategy spec from ``"ga"``, ``{"name": "ga", "population": 32}`` or a spec object.

    Raises:
        ConfigError: unknown name or setting, with the closest known one.
    """
    return from_name(spec, STRATEGIES, "strategy", StrategySpec)
