"""propagate: asynchronous island-model evolutionary search over MPI.

    import propagator as pg

    space = pg.Space({"lr": pg.Float(1e-5, 1e-1, log=True), "depth": pg.Int(1, 8)})
    result = pg.search(objective, space, budget=pg.Budget(evaluations=500), islands=2)
    result.best

Importing this package needs neither MPI nor torch; :func:`search` loads mpi4py when called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import ConfigError, ObjectiveError, PropagateError, SpaceError
from .evaluation import Trial
from .records import Record
from .result import Result, RunInfo
from .settings import Budget, Migration
from .space import Categorical, Constant, Float, Int, Space
from .strategies import GA, Random

if TYPE_CHECKING:
    from .api import search

__version__ = "0.1.0"

__all__ = [
    "GA",
    "Budget",
    "Categorical",
    "ConfigError",
    "Constant",
    "Float",
    "Int",
    "Migration",
    "ObjectiveError",
    "PropagateError",
    "Random",
    "Record",
    "Result",
    "RunInfo",
    "Space",
    "SpaceError",
    "Trial",
    "load",
    "search",
]


def load(run_dir: str) -> Result:
    """Every evaluation of the run stored in ``run_dir`` (finished, interrupted or running),
    as a :class:`Result`. Reading never executes code from the run directory."""
    from .store import load as _load  # h5py only when a store is read

    return _load(run_dir)


def __getattr__(name: str) -> Any:
    # mpi4py initialises MPI on import: load it only when a search actually runs.
    if name == "search":
        from .api import search

        globals()["search"] = search
        return search
    raise AttributeError(f"module 'propagator' has no attribute {name!r}")
