"""MPI scenarios of ``pg.Study``: ``mpiexec -n N python study_scenarios.py NAME OUT [ARGS]``.

Each rank runs the scenario and writes ``OUT/rank{r}.json``; tests/test_study.py judges them.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from mpi4py import MPI

import propagator as pg

SPACE = {
    "x": {"type": "float", "low": -2, "high": 2},
    "y": {"type": "float", "low": -2, "high": 2},
}


def loop(args: list[str]) -> dict:
    """``budget islands ranks_per_worker [leave_after]``: every rank asks and tells until the
    search ends; each trial's value is a collective over ``trial.comm``. With
    ``leave_after``, worker 0's ranks leave the with block after that many trials."""
    budget, islands, k = int(args[0]), int(args[1]), int(args[2])
    leave_after = int(args[3]) if len(args) > 3 else None
    asked: list[dict] = []
    options = {"islands": islands, "ranks_per_worker": k, "strategy": "ga", "seed": 5}
    with pg.Study(SPACE, budget=budget, **options) as study:
        while (trial := study.ask()) is not None:
            p = trial.params
            mean = trial.comm.allreduce(p["x"] ** 2 + p["y"] ** 2) / trial.comm.size
            asked.append({"id": trial.id, "params": p, "worker": trial.worker, "value": mean})
            study.tell(trial, mean)
            if trial.worker == 0 and len(asked) == leave_after:
                break
    result = study.result
    return {
        "asked": asked,
        "ids": result.rows["id"].tolist(),
        "workers": result.rows["worker"].tolist(),
        "islands": result.rows["island"].tolist(),
        "values": result.values.tolist(),
        "interrupted": result.info.interrupted,
    }


def stored(args: list[str]) -> dict:
    """``out run_dir budget``: trials of 50 ms, each id written to ``out/told-rank{r}.txt``
    when told (what a stop signal must not lose)."""
    out, run_dir, budget = Path(args[0]), args[1], int(args[2])
    told = (out / f"told-rank{MPI.COMM_WORLD.rank}.txt").open("a")
    with pg.Study(SPACE, budget=budget, islands=2, strategy="ga", run_dir=run_dir) as study:
        while (trial := study.ask()) is not None:
            time.sleep(0.05)
            study.tell(trial, trial.params["x"] ** 2)
            told.write(f"{trial.id}\n")
            told.flush()
    return {"n": len(study.result), "interrupted": study.result.info.interrupted}


SCENARIOS = {"loop": loop, "stored": stored}

if __name__ == "__main__":
    name, out = sys.argv[1], Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    data = SCENARIOS[name](sys.argv[3:])
    (out / f"rank{MPI.COMM_WORLD.rank}.json").write_text(json.dumps(data))
