"""Searches that go wrong on purpose, run by ``tests/test_reliability.py`` under ``mpiexec``.

    python reliability.py CASE RUN_DIR|- [BUDGET]

Each case is an objective; the search stores its run in RUN_DIR (``-``: in memory) and, when it
returns, rank 0 prints one JSON line with what it found.
"""

from __future__ import annotations

import json
import sys
import time

import propagator as pg


def rank1_raises_while_rank0_waits(params: dict, trial: pg.Trial) -> float:
    if trial.comm.rank == 1 and trial.id == 2:
        raise RuntimeError("rank 1 breaks")
    trial.comm.Barrier()
    return params["x"] ** 2


def rank0_raises_while_rank1_waits(params: dict, trial: pg.Trial) -> float:
    if trial.comm.rank == 0 and trial.id == 1:
        raise RuntimeError("rank 0 breaks")
    trial.comm.Barrier()
    return params["x"] ** 2


def rank1_raises_without_collectives(params: dict, trial: pg.Trial) -> float:
    if trial.comm.rank == 1 and trial.id == 1:
        raise RuntimeError("rank 1 breaks alone")
    return params["x"] ** 2


def sys_exit(params: dict, trial: pg.Trial) -> float:
    if trial.id % 2:
        sys.exit(3)
    return params["x"] ** 2


def keyboard_interrupt(params: dict, trial: pg.Trial) -> float:
    if trial.id == 3:
        raise KeyboardInterrupt
    return params["x"] ** 2


def always_fails(params: dict, trial: pg.Trial) -> float:
    raise ValueError(f"bad x {params['x']:.3f}")


def slow(params: dict, trial: pg.Trial) -> float:
    time.sleep(0.05)
    return params["x"] ** 2


CASES = {
    f.__name__: f
    for f in (
        rank1_raises_while_rank0_waits,
        rank0_raises_while_rank1_waits,
        rank1_raises_without_collectives,
        sys_exit,
        keyboard_interrupt,
        always_fails,
        slow,
    )
}


def main() -> None:
    case, run_dir = sys.argv[1], sys.argv[2]
    budget = int(sys.argv[3]) if len(sys.argv) > 3 else 6
    k = 2 if case.startswith("rank") else 1
    try:
        result = pg.search(
            CASES[case],
            {"x": pg.Float(-1, 1)},
            budget=budget,
            ranks_per_worker=k,
            seed=1,
            failure_grace=2,
            run_dir=None if run_dir == "-" else run_dir,
        )
    except pg.ObjectiveError as exc:
        _say({"objective_error": str(exc)})
        return
    records = [
        {"id": r.id, "status": r.status, "error": r.error, "worker": r.worker}
        for r in result.records
    ]
    _say({"records": records, "interrupted": result.info.interrupted})


def _say(payload: dict) -> None:
    """One JSON line, from rank 0 (every rank gets the same result)."""
    from mpi4py import MPI

    if MPI.COMM_WORLD.rank == 0:
        print(json.dumps(payload), flush=True)


if __name__ == "__main__":
    main()
