"""Exceptions raised by propagate for mistakes in the user's input or objective."""

from __future__ import annotations


class PropagateError(Exception):
    """Base class of every error propagate raises on purpose."""


class SpaceError(PropagateError, ValueError):
    """A search space definition or a point in it is invalid."""


class ConfigError(PropagateError, ValueError):
    """An argument of :func:`propagator.search` (or a search file) is invalid."""


class ObjectiveError(PropagateError, RuntimeError):
    """The objective failed again and again before anything succeeded.

    Raised on every rank, with the first failure's message and traceback, when the first
    evaluations of the search all fail (a broken objective), instead of burning the budget.
    """
