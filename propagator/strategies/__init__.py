"""Breeding strategies. ``make_strategy`` turns a name, a dict or a spec into a spec."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from .base import Breeder, StrategySpec
from .ga import GA
from .random import Random

STRATEGIES: dict[str, type[StrategySpec]] = {"ga": GA, "random": Random}

__all__ = ["GA", "STRATEGIES", "Breeder", "Random", "StrategySpec", "make_strategy"]


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
        raise ConfigError(f"strategy.name must be one of {sorted(STRATEGIES)}, but got {name!r}")
    cls = STRATEGIES[name]
    known = set(cls.__dataclass_fields__)
    unknown = set(settings) - known
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {sorted(unknown)} for strategy {name!r}; known: {sorted(known)}"
        )
    return cls(**settings)
