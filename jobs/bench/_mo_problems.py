"""Two-objective test problems of ``multi_objective.py`` and how a run's points are scored.

ZDT1, ZDT2, ZDT3 and ZDT6 (Zitzler, Deb & Thiele, 2000, "Comparison of multiobjective
evolutionary algorithms: empirical results") at 8 variables instead of their usual 30 (ZDT6:
10), and DTLZ2 (Deb, Thiele, Laumanns & Zitzler, 2002) with two objectives and k = 5 distance
variables (6 in all). Every variable is in [0, 1]; both objectives are minimised. The
formulas are written here from the papers' definitions.

Scores of a run (all its evaluations, whatever their order):

* the **hypervolume** (``moocore.hypervolume``) of its points up to the problem's reference
  point, which is 1.1 × each objective's largest value anywhere in the space: ZDT (1.1, 11)
  since f1 <= 1 and f2 <= g <= 10, DTLZ2 (2.475, 2.475) since f <= 1 + k/4. Every point any
  tool can evaluate, random search's included, lies inside it, so no run scores zero because
  its points fall outside the box and the score counts early progress too; the price is that
  the box is large next to the front (differences between tools are small against the
  totals: compare with ``front_hypervolume``, the true front's);
* the **IGD** and **IGD+** (``moocore.igd``, ``moocore.igd_plus``): the mean distance from the
  true front (a dense sample of it) to the run's nearest point, lower is better; IGD+ counts
  only the part of each distance by which the run's point is worse, which makes it agree
  with Pareto dominance.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import moocore
import numpy as np

from propagator.space import Float, Space

METRICS = ("f1", "f2")
_FRONT_POINTS = 2001  # samples of the true front for IGD and its hypervolume


@dataclass(frozen=True)
class MOProblem:
    """A two-objective problem on ``[0, 1]^dim``.

    Attributes:
        name: the ``--problems`` name.
        dim: number of variables.
        objectives: ``x`` (shape ``(dim,)``) -> ``(f1, f2)``.
        optimal_rest: the value of ``x[1:]`` on the Pareto set (``x[0]`` moves along it).
        reference: the hypervolume reference point (see the module).
    """

    name: str
    dim: int
    objectives: Callable[[np.ndarray], tuple[float, float]]
    optimal_rest: float
    reference: tuple[float, float]

    @property
    def space(self) -> Space:
        """Variables ``x0 .. x{dim-1}``, each ``Float(0, 1)``."""
        return Space({f"x{i}": Float(0.0, 1.0) for i in range(self.dim)})

    def evaluate(self, params: Mapping[str, Any]) -> dict[str, float]:
        """The objectives at ``params`` (``x0 ..``) as ``{"f1": .., "f2": ..}``."""
        x = np.array([params[f"x{i}"] for i in range(self.dim)], dtype=np.float64)
        return dict(zip(METRICS, map(float, self.objectives(x)), strict=True))

    def __call__(self, params: Mapping[str, Any], trial: Any = None) -> dict[str, float]:
        """Evaluate as a propagate objective ``objective(params, trial)``; ``trial`` is unused."""
        return self.evaluate(params)

    def pareto_x(self, t: float) -> np.ndarray:
        """The point with ``x0 = t`` and the rest at its Pareto-set value (Pareto-optimal for
        every ``t`` except on ZDT3's and ZDT6's dominated stretches)."""
        x = np.full(self.dim, self.optimal_rest)
        x[0] = t
        return x

    @cached_property
    def front(self) -> np.ndarray:
        """A dense sample of the true Pareto front, shape ``(n, 2)``, sorted by f1."""
        points = np.array([self.objectives(self.pareto_x(t)) for t in _grid()])
        front = points[moocore.is_nondominated(points)]
        return front[np.argsort(front[:, 0])]

    @cached_property
    def front_hypervolume(self) -> float:
        """The hypervolume of the true front (its sample) up to :attr:`reference`."""
        return float(moocore.hypervolume(self.front, ref=np.asarray(self.reference)))

    def score(self, values: np.ndarray) -> dict[str, float]:
        """A run's ``hypervolume``, ``igd`` and ``igd_plus`` from its evaluations' objective
        values (shape ``(n, 2)``; rows with NaN or inf, failed evaluations, are left out;
        with none left the hypervolume is 0 and the distances inf)."""
        values = np.asarray(values, dtype=np.float64).reshape(-1, 2)
        values = values[np.isfinite(values).all(axis=1)]
        if not len(values):
            return {"hypervolume": 0.0, "igd": np.inf, "igd_plus": np.inf}
        ref = np.asarray(self.reference)
        inside = values[(values < ref).all(axis=1)]
        hv = float(moocore.hypervolume(inside, ref=ref)) if len(inside) else 0.0
        return {
            "hypervolume": hv,
            "igd": float(moocore.igd(values, ref=self.front)),
            "igd_plus": float(moocore.igd_plus(values, ref=self.front)),
        }


def _grid() -> np.ndarray:
    return np.linspace(0.0, 1.0, _FRONT_POINTS)


def _zdt_g(x: np.ndarray) -> float:
    return 1.0 + 9.0 * float(np.mean(x[1:]))


def _zdt1(x: np.ndarray) -> tuple[float, float]:
    f1, g = float(x[0]), _zdt_g(x)
    return f1, g * (1.0 - np.sqrt(f1 / g))


def _zdt2(x: np.ndarray) -> tuple[float, float]:
    f1, g = float(x[0]), _zdt_g(x)
    return f1, g * (1.0 - (f1 / g) ** 2)


def _zdt3(x: np.ndarray) -> tuple[float, float]:
    f1, g = float(x[0]), _zdt_g(x)
    return f1, g * (1.0 - np.sqrt(f1 / g) - f1 / g * np.sin(10.0 * np.pi * f1))


def _zdt6(x: np.ndarray) -> tuple[float, float]:
    f1 = 1.0 - np.exp(-4.0 * x[0]) * np.sin(6.0 * np.pi * x[0]) ** 6
    g = 1.0 + 9.0 * float(np.mean(x[1:])) ** 0.25
    return float(f1), g * (1.0 - (f1 / g) ** 2)


def _dtlz2(x: np.ndarray) -> tuple[float, float]:
    radius = 1.0 + float(np.sum((x[1:] - 0.5) ** 2))
    angle = 0.5 * np.pi * x[0]
    return radius * np.cos(angle), radius * np.sin(angle)


_ZDT_REFERENCE = (1.1, 11.0)
_DTLZ2_K = 5
PROBLEMS: dict[str, MOProblem] = {
    p.name: p
    for p in (
        MOProblem("zdt1", 8, _zdt1, 0.0, _ZDT_REFERENCE),
        MOProblem("zdt2", 8, _zdt2, 0.0, _ZDT_REFERENCE),
        MOProblem("zdt3", 8, _zdt3, 0.0, _ZDT_REFERENCE),
        MOProblem("zdt6", 10, _zdt6, 0.0, _ZDT_REFERENCE),
        MOProblem("dtlz2", 1 + _DTLZ2_K, _dtlz2, 0.5, (1.1 * (1 + _DTLZ2_K / 4),) * 2),
    )
}


def get_problem(name: str) -> MOProblem:
    """The problem called ``name``.

    Raises:
        KeyError: no such problem (the message names the closest one).
    """
    try:
        return PROBLEMS[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(PROBLEMS), n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(PROBLEMS)}"
        raise KeyError(f"unknown problem {name!r}; {hint}") from None
