"""Settings objects chosen by name: ``"asha"``, ``{name: ga, population: 8}`` or the object."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from typing import Any, TypeVar

from .errors import ConfigError
from .optuna_names import optuna_hint

T = TypeVar("T")


def from_name(
    spec: str | Mapping[str, Any] | T, registry: Mapping[str, type[T]], field: str, base: type[T]
) -> T:
    """The object ``spec`` names: a name in ``registry``, a mapping with a ``name`` and the
    class's settings, or an object of ``base`` (returned as is).

    Raises:
        ConfigError: not a name or a mapping; an unknown name or setting, with the closest
            known one (``field`` names the setting in messages).
    """
    if isinstance(spec, base):
        return spec
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{field} must be a name or a mapping, but got {spec!r}")
    settings = dict(spec)
    name = settings.pop("name", None)
    if name not in registry:
        close = difflib.get_close_matches(str(name), list(registry), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{field}.name must be one of {sorted(registry)}, but got {name!r}{hint}")
    cls = registry[name]
    # the settings only: class-level facts such as a strategy's multi_objective are not keys
    known = sorted(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
    for key in settings:
        if key not in known:
            raise ConfigError(
                f"unknown key {key!r} in {field} {name!r}; {_hint(field, key, known)}"
            )
    return cls(**settings)


def _hint(field: str, key: Any, known: list[str]) -> str:
    """Optuna's name for one of ``known`` (see :mod:`.optuna_names`), else the closest
    spelling, else the list."""
    hint = optuna_hint(field, str(key), known)
    if hint is not None:
        return hint
    close = difflib.get_close_matches(str(key), known, n=1)
    if close:
        return f"did you mean {close[0]!r}?"
    return f"known: {', '.join(known)}" if known else "it takes no settings"
