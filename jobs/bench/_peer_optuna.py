"""Optuna's TPE and CMA-ES samplers as a runner for ``quality.py``.

    python jobs/bench/_peer_optuna.py --jobs JOBS.json --out OUT.jsonl

Each run is one study with the sampler's defaults (``TPESampler(seed=seed)`` or
``CmaEsSampler(seed=seed)``), optimised sequentially in one process for ``budget`` trials:
the strongest setting for a sequential model-based sampler, since every result is known
before the next ask. The space is asked define-by-run (conditional parameters only when
active), with Optuna's own log-scale, integer and categorical distributions.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # propagator, when not installed
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _peer_protocol import emit, outcome, read_jobs, runner_args
from problems import Problem, get_problem
from problems.base import walk

from propagator.space import Categorical, Float, Int, Param


def suggest(trial: Any, problem: Problem) -> dict[str, Any]:
    """The trial's params: each active parameter suggested with its Optuna distribution."""

    def value_of(name: str, p: Param) -> Any:
        if isinstance(p, Float):
            return trial.suggest_float(name, p.low, p.high, log=p.log)
        if isinstance(p, Int):
            return trial.suggest_int(name, p.low, p.high, log=p.log)
        if isinstance(p, Categorical):
            return trial.suggest_categorical(name, list(p.choices))
        raise TypeError(f"no Optuna distribution for {p!r}")

    return walk(problem.space, value_of)


def run_study(tool: str, problem: Problem, budget: int, seed: int) -> dict[str, Any]:
    """One study of ``budget`` trials; the run's :func:`outcome`."""
    import optuna

    samplers = {
        "optuna-tpe": optuna.samplers.TPESampler,
        "optuna-cmaes": optuna.samplers.CmaEsSampler,
    }
    keys, values = [], []

    def objective(trial: optuna.Trial) -> float:
        params = suggest(trial, problem)
        value = problem.evaluate(params)
        keys.append(problem.key(params))
        values.append(value)
        return value

    study = optuna.create_study(sampler=samplers[tool](seed=seed))
    study.optimize(objective, n_trials=budget)
    return outcome(keys, values)


def main() -> None:
    import optuna

    args = runner_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    # CmaEsSampler warns once per run that it samples categorical parameters independently.
    warnings.filterwarnings("ignore", category=UserWarning, module="optuna")
    for job in read_jobs(args.jobs):
        started = time.perf_counter()
        result = run_study(job.tool, get_problem(job.problem), job.budget, job.seed)
        emit(args.out, job, result, time.perf_counter() - started)


if __name__ == "__main__":
    main()
