"""Pruners: stopping hopeless evaluations early (see :mod:`.base`). ``make_pruner`` turns a
name, a mapping (``{name: asha, min_step: 1, reduction: 3}``) or a spec into a spec."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from .asha import ASHA
from .base import RUNGS, PrunerSpec, rung_values
from .median import Median

PRUNERS: dict[str, type[PrunerSpec]] = {"asha": ASHA, "median": Median}

__all__ = ["ASHA", "PRUNERS", "RUNGS", "Median", "PrunerSpec", "make_pruner", "rung_values"]


def make_pruner(spec: str | Mapping[str, Any] | PrunerSpec | None) -> PrunerSpec | None:
    """A pruner spec, or ``None`` for ``None`` and ``"none"`` (nothing is stopped early).

    Raises:
        ConfigError: unknown name or setting, with the closest known one.
    """
    if spec is None or isinstance(spec, PrunerSpec):
        return spec
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, Mapping):
        raise ConfigError(f"early_stopping must be a name or a mapping, got {spec!r}")
    settings = dict(spec)
    name = settings.pop("name", None)
    if name == "none":
        return None
    if name not in PRUNERS:
        close = difflib.get_close_matches(str(name), [*PRUNERS, "none"], n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"early_stopping.name must be one of {[*PRUNERS, 'none']}, but got {name!r}{hint}"
        )
    cls = PRUNERS[name]
    known = sorted(cls.__dataclass_fields__)
    for key in settings:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
            raise ConfigError(f"unknown key {key!r} in early_stopping {name!r}; {hint}")
    return cls(**settings)
