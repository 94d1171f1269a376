"""What every benchmark problem is: a space, an objective on active params, a known optimum.

Only numpy and :mod:`propagator.space` are imported, so that the peers' runners (Propulate in
its own virtual environment) evaluate the very same objective as propagate does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from propagator.space import Constant, Param, Space


@dataclass(frozen=True)
class Problem:
    """One benchmark problem (minimised).

    Attributes:
        name: unique over all problem sets.
        space: the search space every tool searches (converted for the peers).
        optimum: the smallest value the objective takes on the space (regret is measured
            from it; for noisy functions, the noiseless part's minimum).
        evaluate: the objective on the *active* params (inactive conditional ones absent).
    """

    name: str
    space: Space
    optimum: float
    evaluate: Callable[[Mapping[str, Any]], float]

    def __call__(self, params: Mapping[str, Any], trial: Any = None) -> float:
        """Evaluate as a propagate objective ``objective(params, trial)``; ``trial`` is unused."""
        return self.evaluate(params)

    def key(self, params: Mapping[str, Any]) -> str:
        """A canonical text of the active params, equal for equal points whatever the tool.

        numpy scalars and Python numbers compare by value (``np.int64(3)`` and ``3`` give the
        same key); floats keep all their digits, so only exactly repeated points collide.
        """
        return point_key(self.space, params)


@dataclass(frozen=True)
class ProblemSet:
    """Problems run together, at each of ``budgets`` total evaluations.

    Attributes:
        name: the ``--set`` name.
        problems: the problems, in table order.
        budgets: total evaluations per run (over all ranks), one table per budget.
        peers: the peer tools run on this set by default.
    """

    name: str
    problems: tuple[Problem, ...]
    budgets: tuple[int, ...]
    peers: tuple[str, ...]


def point_key(space: Space, params: Mapping[str, Any]) -> str:
    """:meth:`Problem.key` of ``params`` in ``space`` (tables are keyed by it too)."""
    active = active_params(space, params)
    return json.dumps({k: _plain(v) for k, v in sorted(active.items())})


def _plain(v: Any) -> Any:
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v)
    return v


def evaluation_order(space: Space) -> list[str]:
    """The parameter names, each after every parameter its condition reads."""
    params, order = space.params, []

    def visit(name: str) -> None:
        if name not in order:
            when = params[name].when
            for other in sorted(when.names) if when is not None else ():
                visit(other)  # the space has refused cycles
            order.append(name)

    for name in params:
        visit(name)
    return order


def walk(space: Space, value_of: Callable[[str, Param], Any]) -> dict[str, Any]:
    """The active params, in the space's order, asking ``value_of(name, param)`` for each.

    Parameters are visited in :func:`evaluation_order`; one is active when it has no
    condition, or when every name its condition reads is active and the condition holds on
    the active values so far (as :meth:`Space.decode` decides). ``value_of`` is called for
    active non-constant parameters only (Optuna's define-by-run asks exactly those).
    """
    params = space.params
    kept: dict[str, Any] = {}
    for name in evaluation_order(space):
        p = params[name]
        if p.when is None or (p.when.names <= kept.keys() and p.when.holds(kept)):
            kept[name] = p.value if isinstance(p, Constant) else value_of(name, p)
    return {n: kept[n] for n in params if n in kept}


def active_params(space: Space, values: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``values`` that are active in ``space`` (constants take their value).

    Tools that cannot express conditions (Propulate) propose every parameter; this drops the
    ones the objective must not see. ``values`` must hold every active parameter.
    """
    return walk(space, lambda name, _: values[name])
