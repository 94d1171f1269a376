"""Pruners: stopping (or pausing) hopeless evaluations early (see :mod:`.base`).
``make_pruner`` turns a name, a mapping (``{name: asha, min_step: 1, reduction: 3}``) or a
spec into a spec."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..named import from_name
from .asha import ASHA, Auto, Curve
from .base import RUNGS, PrunerSpec, RungView, rung_values
from .median import Median

PRUNERS: dict[str, type[PrunerSpec]] = {
    "asha": ASHA,
    "auto": Auto,
    "curve": Curve,
    "median": Median,
}

__all__ = [
    "ASHA",
    "PRUNERS",
    "RUNGS",
    "Auto",
    "Curve",
    "Median",
    "PrunerSpec",
    "RungView",
    "make_pruner",
    "rung_values",
]


def make_pruner(spec: str | Mapping[str, Any] | PrunerSpec | None) -> PrunerSpec | None:
    """A pruner spec, or ``None`` for ``None`` and ``"none"`` (nothing is stopped early).

    Raises:
        ConfigError: unknown name or setting, with the closest known one.
    """
    if spec is None or spec == "none" or (isinstance(spec, Mapping) and spec.get("name") == "none"):
        return None
    return from_name(spec, PRUNERS, "early_stopping", PrunerSpec)
