"""Problems of the quality benchmark (``jobs/bench/quality.py``), by problem set.

* ``functions``: the 14 test functions of :mod:`propagator.benchmarks` at 500 evaluations;
* ``discrete``: an architecture cell (:mod:`.nas_cell`), a tabular MLP on digits
  (:mod:`.tabular`) and a mixed conditional space (:mod:`.mixed`), at 50 and 100.

Importing needs numpy and :mod:`propagator.space` only (the peers' environment has both).
"""

from __future__ import annotations

from functools import cache

from .base import Problem, ProblemSet, active_params
from .functions import function_problems
from .mixed import mixed_problem
from .nas_cell import nas_cell_problem
from .tabular import tabular_problem

__all__ = ["Problem", "ProblemSet", "active_params", "get_problem", "problem_sets"]


@cache
def problem_sets() -> dict[str, ProblemSet]:
    """The problem sets by name (built once: the cell's optimum is found by enumeration)."""
    return {
        "functions": ProblemSet(
            "functions",
            function_problems(),
            (500,),
            ("propulate", "optuna-tpe", "optuna-cmaes", "optuna-tpe-2w", "optuna-cmaes-2w"),
        ),
        "discrete": ProblemSet(
            "discrete",
            (nas_cell_problem(), tabular_problem(), mixed_problem()),
            (50, 100),
            ("propulate", "optuna-tpe", "optuna-tpe-2w"),
        ),
    }


def get_problem(name: str) -> Problem:
    """The problem called ``name`` in any set (``KeyError`` when there is none)."""
    for problem_set in problem_sets().values():
        for problem in problem_set.problems:
            if problem.name == name:
                return problem
    raise KeyError(name)
