"""Propulate 1.2.2 as a runner for ``quality.py``, in the peers' virtual environment.

    mpiexec -n 2 PEERS/bin/python jobs/bench/_peer_propulate.py --jobs JOBS.json --out OUT.jsonl

Each run uses Propulate's public API as its tutorials do: its default propagator
``get_default_propagator(2 * ranks, limits, rng=random.Random(seed + rank))`` (a GA with
``pop_size = 2 x ranks``) and one island, ``Propulator(..., generations=budget // ranks)``
with checkpoints in a temporary directory, on a fresh duplicate of ``COMM_WORLD`` per run
(so that no message of one run can reach the next).

Spaces: a float is ``(low, high)``; a log-scale float is searched as its natural logarithm
(what a Propulate user writes for a learning rate) and exponentiated for the objective; an
integer is ``(low, high)`` on its linear range (Propulate has no log integers); a
categorical is the tuple of its choices as strings, mapped back to the choices. Propulate
has no conditions: it proposes every parameter and the inactive ones are dropped before the
objective sees them (and before duplicates are counted).
"""

from __future__ import annotations

import math
import random
import shutil
import sys
import tempfile
import time
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # propagator is not installed there
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _peer_protocol import Job, emit, outcome, read_jobs, runner_args
from problems import Problem, active_params, get_problem

from propagator.space import Categorical, Float, Int, Space

Limits = dict[str, tuple[Any, ...]]


def propulate_limits(space: Space) -> Limits:
    """Propulate's ``limits`` for ``space`` (see the module docstring for the mapping)."""
    limits: Limits = {}
    for name, p in space.params.items():
        if isinstance(p, Float):
            limits[name] = (math.log(p.low), math.log(p.high)) if p.log else (p.low, p.high)
        elif isinstance(p, Int):
            limits[name] = (p.low, p.high)
        elif isinstance(p, Categorical):
            limits[name] = tuple(str(c) for c in p.choices)
    return limits


def params_from(space: Space, individual: Mapping[str, Any]) -> dict[str, Any]:
    """The objective's params from a Propulate individual's values (active ones only)."""
    values: dict[str, Any] = {}
    for name, p in space.params.items():
        if isinstance(p, Float):
            x = math.exp(individual[name]) if p.log else float(individual[name])
            values[name] = min(max(x, p.low), p.high)  # exp(log(high)) may pass high by an ulp
        elif isinstance(p, Int):
            values[name] = int(individual[name])
        elif isinstance(p, Categorical):
            values[name] = p.choices[[str(c) for c in p.choices].index(individual[name])]
    return active_params(space, values)


def _run(job: Job, problem: Problem) -> dict[str, Any] | None:
    """One Propulate search; the run's :func:`outcome` on rank 0, None elsewhere."""
    from mpi4py import MPI
    from propulate import Propulator
    from propulate.utils import get_default_propagator

    comm = MPI.COMM_WORLD.Dup()
    limits = propulate_limits(problem.space)
    keys, values = [], []

    def loss(individual: Any) -> float:
        params = params_from(problem.space, {name: individual[name] for name in limits})
        value = problem.evaluate(params)
        keys.append(problem.key(params))
        values.append(value)
        return value

    rng = random.Random(job.seed + comm.rank)
    propagator = get_default_propagator(2 * comm.size, limits, rng=rng)
    checkpoints = comm.bcast(tempfile.mkdtemp(prefix="propulate-") if comm.rank == 0 else None)
    try:
        propulator = Propulator(
            loss_fn=loss,
            propagator=propagator,
            rng=rng,
            island_comm=comm,
            propulate_comm=comm,
            generations=job.budget // comm.size,
            checkpoint_path=checkpoints,
        )
        propulator.propulate(logging_interval=10**9, debug=-1)
        parts = comm.gather((keys, values))
    finally:
        comm.Barrier()
        if comm.rank == 0:
            shutil.rmtree(checkpoints, ignore_errors=True)
        comm.Free()
    if parts is None:
        return None
    return outcome([k for ks, _ in parts for k in ks], [v for _, vs in parts for v in vs])


def main() -> None:
    # Propulate's package imports its surrogate module, which imports GPy at import time; GPy
    # pins numpy < 2. Surrogates are not used here (no surrogate_factory), so a stub module
    # stands in for GPy in this process only.
    sys.modules.setdefault("GPy", types.ModuleType("GPy"))
    args = runner_args()
    for job in read_jobs(args.jobs):
        started = time.perf_counter()
        result = _run(job, get_problem(job.problem))
        if result is not None:
            emit(args.out, job, result, time.perf_counter() - started)


if __name__ == "__main__":
    main()
