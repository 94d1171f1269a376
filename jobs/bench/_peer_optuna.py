"""Optuna's samplers as a runner for ``quality.py``: TPE, multivariate TPE, GP and CMA-ES.

    python jobs/bench/_peer_optuna.py --jobs JOBS.json --out OUT.jsonl

Each run is one study with a sampler seeded with the run's seed, for ``budget`` trials:

* ``optuna-tpe``: ``TPESampler(seed=seed)``, the defaults (one density per parameter);
* ``optuna-tpe-mv``: ``TPESampler(multivariate=True, group=True, seed=seed)``, densities over
  parameters that occur together, split into groups by which parameters a trial has (the
  setting Optuna recommends for conditional spaces);
* ``optuna-gp``: ``GPSampler(seed=seed)`` (needs torch), a Gaussian process with a Matern
  kernel, categorical parameters on their own distance; its acquisition is optimised over the
  parameters that every trial so far has, any other parameter is drawn at random. So that
  conditional parameters are modelled too, it is asked every parameter of the space on every
  trial (Propulate's way, "flattened"): the inactive ones are dropped before the objective
  sees them (and before duplicates are counted). Measured at 50 trials (regret, seeds 0/1):
  flattened 0.00057/0.0064 on cancer_cash and 0.079/0.089 on mixed_hpo, define-by-run
  0.0029/0.0041 and 0.107/0.115; flattening costs 2-20x the time per ask;
* ``optuna-cmaes``: ``CmaEsSampler(seed=seed)``.

A study is run once at the largest budget asked for a (tool, problem, seed): the smaller
budgets' runs are its first trials (:func:`_peer_protocol.prefixed`; no Optuna sampler knows
the number of trials, so a sequential study of 50 trials makes the first 50 of one of 100;
their ``seconds`` are the whole study's). These optimise sequentially in one process: the
strongest setting for a sequential model-based sampler, since every result is known before
the next ask. ``optuna-tpe-2w``, ``optuna-tpe-mv-8w`` and the other ``-Nw`` tools run as
Optuna runs in parallel: N worker processes share the study through a journal file
(``JournalStorage``), each with its own sampler (seeded ``N·seed + w``) asking its share of
the trials, as our N ranks do. Except for the GP, the space is asked define-by-run
(conditional parameters only when active), with Optuna's own log-scale, integer and
categorical distributions.
"""

from __future__ import annotations

import re
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # propagator, when not installed
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _peer_protocol import emit, outcome, prefixed, read_jobs, runner_args
from problems import Problem, active_params, get_problem
from problems.base import walk

from propagator.space import Categorical, Constant, Float, Int, Param


def _suggest_one(trial: Any, name: str, p: Param) -> Any:
    if isinstance(p, Float):
        return trial.suggest_float(name, p.low, p.high, log=p.log)
    if isinstance(p, Int):
        return trial.suggest_int(name, p.low, p.high, log=p.log)
    if isinstance(p, Categorical):
        return trial.suggest_categorical(name, list(p.choices))
    raise TypeError(f"no Optuna distribution for {p!r}")


def suggest(trial: Any, problem: Problem) -> dict[str, Any]:
    """The trial's params: each active parameter suggested with its Optuna distribution."""
    return walk(problem.space, lambda name, p: _suggest_one(trial, name, p))


def suggest_flat(trial: Any, problem: Problem) -> dict[str, Any]:
    """Every parameter suggested, active or not; the active ones returned."""
    values = {
        name: p.value if isinstance(p, Constant) else _suggest_one(trial, name, p)
        for name, p in problem.space.params.items()
    }
    return active_params(problem.space, values)


def _sampler(tool: str, seed: int) -> Any:
    import optuna

    if tool.startswith("optuna-tpe-mv"):
        return optuna.samplers.TPESampler(multivariate=True, group=True, seed=seed)
    if tool.startswith("optuna-tpe"):
        return optuna.samplers.TPESampler(seed=seed)
    if tool.startswith("optuna-gp"):
        return optuna.samplers.GPSampler(seed=seed)
    return optuna.samplers.CmaEsSampler(seed=seed)


def _objective(tool: str, problem: Problem) -> Any:
    """The study's objective: the trial's params suggested as ``tool`` asks them, evaluated."""
    ask = suggest_flat if tool.startswith("optuna-gp") else suggest
    return lambda trial: problem.evaluate(ask(trial, problem))


def run_study(
    tool: str, problem: Problem, budget: int, seed: int, prefixes: Sequence[int] = ()
) -> dict[int, dict[str, Any]]:
    """One study of ``budget`` trials: the run's :func:`outcome` by budget, for ``budget``
    and each smaller budget in ``prefixes`` (a sequential study's first trials are those of
    a run of that budget: no Optuna sampler is told the number of trials)."""
    import optuna

    parallel = re.search(r"-(\d+)w$", tool)
    if parallel:
        trials = _run_parallel(tool, problem, budget, seed, workers=int(parallel.group(1)))
    else:
        study = optuna.create_study(sampler=_sampler(tool, seed))
        study.optimize(_objective(tool, problem), n_trials=budget)
        trials = study.trials
    return {n: _outcome(trials, problem, n) for n in {budget, *prefixes}}


def _outcome(trials: list[Any], problem: Problem, first: int | None = None) -> dict[str, Any]:
    done = sorted(trials, key=lambda t: t.number)[:first]
    return outcome([problem.key(t.params) for t in done], [t.value for t in done])


def _run_parallel(tool: str, problem: Problem, budget: int, seed: int, workers: int) -> list[Any]:
    """``workers`` processes sharing one study through a journal file: its trials (read
    before the file goes)."""
    import multiprocessing
    import tempfile

    import optuna

    with tempfile.TemporaryDirectory() as tmp:
        journal = str(Path(tmp) / "study.log")
        storage = _storage(journal)
        optuna.create_study(storage=storage, study_name="s")
        context = multiprocessing.get_context("spawn")
        shares = [budget // workers + (w < budget % workers) for w in range(workers)]
        procs = [
            context.Process(
                target=_worker, args=(tool, problem.name, journal, workers * seed + w, n)
            )
            for w, n in enumerate(shares)
        ]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join()
            if proc.exitcode:
                raise RuntimeError(f"an Optuna worker of {tool} exited {proc.exitcode}")
        return optuna.load_study(storage=storage, study_name="s").trials


def _storage(journal: str) -> Any:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(journal))


def _worker(tool: str, problem_name: str, journal: str, seed: int, trials: int) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=UserWarning, module="optuna")
    problem = get_problem(problem_name)
    study = optuna.load_study(
        storage=_storage(journal), study_name="s", sampler=_sampler(tool, seed)
    )
    study.optimize(_objective(tool, problem), n_trials=trials)


def main() -> None:
    import optuna

    args = runner_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    # CmaEsSampler warns once per run that it samples categorical parameters independently,
    # TPESampler(group=True) that the argument is experimental.
    warnings.filterwarnings("ignore", category=UserWarning, module="optuna")
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    for job, smaller in prefixed(read_jobs(args.jobs)):
        started = time.perf_counter()
        budgets = [j.budget for j in smaller]
        results = run_study(job.tool, get_problem(job.problem), job.budget, job.seed, budgets)
        seconds = time.perf_counter() - started
        for j in [job, *smaller]:
            emit(args.out, j, results[j.budget], seconds)


if __name__ == "__main__":
    main()
