"""SMAC3 as a runner for ``quality.py``, in the peers' virtual environment.

    PEERS/bin/python jobs/bench/_peer_smac.py --jobs JOBS.json --out OUT.jsonl

Each run is SMAC's ``HyperparameterOptimizationFacade`` with its defaults (a random forest
surrogate on log-transformed costs, expected improvement, a Sobol initial design of
``min(10 x parameters, budget / 4)`` configurations, one configuration in five drawn at
random) on a ``Scenario(deterministic=True, n_trials=budget, seed=seed)``. Trials run
sequentially in one process: the strongest setting for a sequential model-based optimiser,
since every result is known before the next ask.

Spaces go to ConfigSpace as they are: floats and integers with their log scales, categorical
choices as their text (mapped back to the choices), and conditions as ConfigSpace conditions
(:func:`smac_condition`), so SMAC's forest sees conditional parameters as inactive, as it is
built for. A condition on one parameter becomes an ``InCondition`` with the values of that
parameter for which it holds (the parameter must be an integer or categorical); a condition
on several is split at its top-level ``and``/``or`` into conditions on one each.
"""

from __future__ import annotations

import ast
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # propagator is not installed there
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _peer_protocol import Job, emit, outcome, read_jobs, runner_args
from problems import Problem, active_params, get_problem

from propagator.space import Categorical, Constant, Float, Int, Param, Space
from propagator.space.conditions import Condition


def _hyperparameter(name: str, p: Param) -> Any:
    from ConfigSpace import (
        CategoricalHyperparameter,
        UniformFloatHyperparameter,
        UniformIntegerHyperparameter,
    )

    if isinstance(p, Float):
        return UniformFloatHyperparameter(name, p.low, p.high, log=p.log)
    if isinstance(p, Int):
        return UniformIntegerHyperparameter(name, p.low, p.high, log=p.log)
    if isinstance(p, Categorical):
        labels = [str(c) for c in p.choices]
        if len(set(labels)) != len(labels):
            raise NotImplementedError(f"{name}: choices {p.choices!r} have equal texts")
        return CategoricalHyperparameter(name, labels)
    raise NotImplementedError(f"{name}: no ConfigSpace hyperparameter for {p!r}")


def _levels(name: str, p: Param) -> list[Any]:
    if isinstance(p, Int):
        return list(range(p.low, p.high + 1))
    if isinstance(p, Categorical):
        return list(p.choices)
    raise NotImplementedError(f"a condition on {name!r} ({type(p).__name__}) is not converted")


def smac_condition(child: Any, when: Condition, space: Space, hps: dict[str, Any]) -> Any:
    """The ConfigSpace condition for hyperparameter ``child`` active when ``when`` holds.

    Args:
        child: the conditional hyperparameter.
        when: its condition in ``space``.
        space: the space, for the domains of the parameters ``when`` reads.
        hps: the ConfigSpace hyperparameters by name.

    Raises:
        NotImplementedError: the condition reads a float, or reads several parameters in a
            part that is not a top-level ``and``/``or`` of parts reading one each.
    """
    from ConfigSpace import AndConjunction, EqualsCondition, InCondition, OrConjunction

    if len(when.names) == 1:
        (name,) = when.names
        p = space.params[name]
        allowed = [v for v in _levels(name, p) if when.holds({name: v})]
        values = [str(v) if isinstance(p, Categorical) else v for v in allowed]
        if len(values) == 1:
            return EqualsCondition(child, hps[name], values[0])
        return InCondition(child, hps[name], values)
    body = when.tree.body
    if not isinstance(body, ast.BoolOp):
        raise NotImplementedError(f"condition {when.expression!r} reads several parameters")
    parts = [smac_condition(child, Condition(ast.unparse(v)), space, hps) for v in body.values]
    return (AndConjunction if isinstance(body.op, ast.And) else OrConjunction)(*parts)


def config_space(space: Space, seed: int) -> Any:
    """``space`` as a seeded ConfigSpace ``ConfigurationSpace`` (see the module docstring)."""
    from ConfigSpace import ConfigurationSpace

    cs = ConfigurationSpace(seed=seed)
    hps = {
        name: _hyperparameter(name, p)
        for name, p in space.params.items()
        if not isinstance(p, Constant)
    }
    cs.add(list(hps.values()))
    cs.add(
        [
            smac_condition(hps[name], p.when, space, hps)
            for name, p in space.params.items()
            if p.when is not None and name in hps
        ]
    )
    return cs


def params_from(space: Space, config: Any) -> dict[str, Any]:
    """The objective's params from a SMAC configuration (its active hyperparameters)."""
    values: dict[str, Any] = {}
    for name, value in dict(config).items():
        p = space.params[name]
        if isinstance(p, Categorical):
            values[name] = p.choices[[str(c) for c in p.choices].index(value)]
        else:
            values[name] = int(value) if isinstance(p, Int) else float(value)
    return active_params(space, values)


def _run(job: Job, problem: Problem) -> dict[str, Any]:
    """One SMAC search of ``job.budget`` trials; the run's :func:`outcome`."""
    from smac import HyperparameterOptimizationFacade, Scenario

    keys, values = [], []

    def cost(config: Any, seed: int = 0) -> float:
        params = params_from(problem.space, config)
        value = problem.evaluate(params)
        keys.append(problem.key(params))
        values.append(value)
        return value

    with tempfile.TemporaryDirectory(prefix="smac-") as tmp:
        scenario = Scenario(
            config_space(problem.space, job.seed),
            deterministic=True,
            n_trials=job.budget,
            seed=job.seed,
            output_directory=Path(tmp),
        )
        smac = HyperparameterOptimizationFacade(
            scenario, cost, overwrite=True, logging_level=logging.ERROR
        )
        smac.optimize()
    return outcome(keys, values)


def main() -> None:
    # SMAC's forest averages empty leaf sets for some inactive-parameter splits: numpy warns
    # at every ask ("Mean of empty slice"); the prediction is handled by SMAC.
    warnings.filterwarnings("ignore", category=RuntimeWarning, module="numpy")
    args = runner_args()
    for job in read_jobs(args.jobs):
        started = time.perf_counter()
        result = _run(job, get_problem(job.problem))
        emit(args.out, job, result, time.perf_counter() - started)


if __name__ == "__main__":
    main()
