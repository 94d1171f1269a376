"""Problems of the quality benchmark (``jobs/bench/quality.py``), by problem set.

* ``functions``: the 14 test functions of :mod:`propagator.benchmarks` at 500 evaluations;
* ``discrete``: 12 discrete, mixed and conditional problems at 50 and 100 evaluations:
  two architecture spaces (a cell, :mod:`.nas_cell`, and a chain of layers,
  :mod:`.nas_chain`), seven tables of real model trainings on scikit-learn's bundled data
  (the digits MLP, :mod:`.tabular`, and six in :mod:`.sklearn_tables`), and three formula
  spaces with conditions or many integers (:mod:`.mixed`, :mod:`.finetune`,
  :mod:`.resnet_ints`).

Importing needs numpy and :mod:`propagator.space` only (the peers' environments have both).
"""

from __future__ import annotations

from functools import cache

from .base import Problem, ProblemSet, active_params
from .finetune import finetune_problem
from .functions import function_problems
from .mixed import mixed_problem
from .nas_cell import nas_cell_problem
from .nas_chain import nas_chain_problem
from .resnet_ints import resnet_problem
from .sklearn_tables import sklearn_problems
from .tabular import tabular_problem

__all__ = ["Problem", "ProblemSet", "active_params", "get_problem", "problem_sets"]

DISCRETE_PEERS = (
    "propulate",
    "optuna-tpe",
    "optuna-tpe-mv",
    "optuna-gp",
    "smac",
    "optuna-tpe-2w",
)


@cache
def problem_sets() -> dict[str, ProblemSet]:
    """The problem sets by name (built once: the architectures' optima are found by
    enumeration, the tables are read)."""
    return {
        "functions": ProblemSet(
            "functions",
            function_problems(),
            (500,),
            ("propulate", "optuna-tpe", "optuna-cmaes", "optuna-tpe-2w", "optuna-cmaes-2w"),
        ),
        "discrete": ProblemSet(
            "discrete",
            (
                nas_cell_problem(),
                nas_chain_problem(),
                tabular_problem(),
                *sklearn_problems(),
                mixed_problem(),
                finetune_problem(),
                resnet_problem(),
            ),
            (50, 100),
            DISCRETE_PEERS,
        ),
    }


def get_problem(name: str) -> Problem:
    """The problem called ``name`` in any set (``KeyError`` when there is none)."""
    for problem_set in problem_sets().values():
        for problem in problem_set.problems:
            if problem.name == name:
                return problem
    raise KeyError(name)
