"""Checks of strategy settings, raising :class:`ConfigError` messages that name the field."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError


def is_int(value: Any) -> bool:
    """Whether ``value`` is an integer (``True``/``False`` are not)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """Whether ``value`` is a real number (``True``/``False`` are not; NaN is, and fails any
    range check written as a comparison)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def require(ok: bool, field: str, want: str, value: Any) -> None:
    """Raise ``ConfigError("strategy.FIELD must be WANT, but got VALUE")`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"strategy.{field} must be {want}, but got {value!r}")
