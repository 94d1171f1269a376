"""propagate: asynchronous island-model evolutionary search over MPI.

    import propagator as pg

    space = pg.Space({"lr": pg.Float(1e-5, 1e-1, log=True), "depth": pg.Int(1, 8)})
    result = pg.search(objective, space, budget=pg.Budget(evaluations=500), islands=2)
    result.best

Names load on first use (as Optuna does): importing this package imports neither numpy, MPI,
h5py nor torch, so the ``propagate`` command can size thread pools before numpy loads, and
:func:`search` initialises MPI only when a search runs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import search
    from .engine.evaluation import Pruned, Trial
    from .engine.records import Record
    from .engine.report_watch import ReportWarning
    from .errors import ConfigError, ObjectiveError, PropagateError, SpaceError
    from .islands import Migration
    from .results.result import Result, RunInfo
    from .settings import Budget, Confirm
    from .space import Categorical, Constant, Float, Int, Space
    from .store import load
    from .strategies import CMAES, GA, TPE, Portfolio, Random
    from .study import Study

__version__ = "0.1.0"

_HOME = {
    "search": "api",
    "Study": "study",
    "ConfigError": "errors",
    "ObjectiveError": "errors",
    "PropagateError": "errors",
    "SpaceError": "errors",
    "Trial": "engine.evaluation",
    "Pruned": "engine.evaluation",
    "Record": "engine.records",
    "ReportWarning": "engine.report_watch",
    "Result": "results.result",
    "RunInfo": "results.result",
    "Budget": "settings",
    "Confirm": "settings",
    "Migration": "islands",
    "Categorical": "space",
    "Constant": "space",
    "Float": "space",
    "Int": "space",
    "Space": "space",
    "load": "store",
    "GA": "strategies",
    "CMAES": "strategies",
    "TPE": "strategies",
    "Portfolio": "strategies",
    "Random": "strategies",
}
__all__ = [
    "CMAES",
    "GA",
    "TPE",
    "Budget",
    "Categorical",
    "ConfigError",
    "Confirm",
    "Constant",
    "Float",
    "Int",
    "Migration",
    "ObjectiveError",
    "Portfolio",
    "PropagateError",
    "Pruned",
    "Random",
    "Record",
    "ReportWarning",
    "Result",
    "RunInfo",
    "Space",
    "SpaceError",
    "Study",
    "Trial",
    "load",
    "search",
]


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'propagator' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names and the module's dunder attributes: not the helpers this module
    imports (``importlib``, ``Any``, ``TYPE_CHECKING``)."""
    return sorted({*_HOME, *__all__, *(name for name in globals() if name.startswith("__"))})
