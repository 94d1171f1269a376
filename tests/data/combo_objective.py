"""The objective of the combination test (``tests/combos.py``): a learning curve that reports
each epoch and asks ``should_stop`` between epochs (saving its position when paused, going on
from it when resumed), fails in a corner of the space on the
ranks it is told to, returns ``None`` on follower ranks when told to, and traces when every
rank started each repeat and what it saw of it to ``TRACE/rank-PID.jsonl``."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path


def objective(params: dict, trial) -> dict | None:
    rank = trial.comm.rank
    raised = _fails(params, rank)
    steps: list[int] = []
    state = trial.restore()  # a paused training, resumed: go on after its last step
    start = state["t"] if state is not None else 0
    _trace(params["trace"], trial, steps, False, "start")
    value = math.inf
    try:
        if raised:
            raise RuntimeError(f"a corner of the space that fails: x = {params['x']:.3f}")
        epochs = params["epochs"]
        floor = (params["x"] - 0.3) ** 2 + 0.02 * params["k"]
        for t in range(start + 1, epochs + 1):
            time.sleep(params["epoch_s"])
            if params["collective"]:
                trial.comm.allreduce(t)
            value = floor + math.exp(-t / (1 + params["k"]))
            trial.report(t, value)
            steps.append(t)
            if t < epochs and trial.should_stop():
                if trial.paused:
                    trial.save({"t": t})
                break
    finally:
        _trace(params["trace"], trial, steps, raised, "end")
    if rank > 0 and params["none_on_followers"]:
        return None
    return {"loss": value, "size": float(params["k"])}


def _fails(params: dict, rank: int) -> bool:
    where = params["fail_on"]
    if params["x"] <= 0.75 or where == "none":
        return False
    return where == "all" or (where == "leader") == (rank == 0)


def _trace(folder: str, trial, steps: list[int], raised: bool, phase: str) -> None:
    line = {
        "phase": phase,
        "session": os.getppid(),  # the MPI launcher's proxy: one per run of the command
        "time": time.time(),
        "id": trial.id,
        "repeat": trial.repeat,
        "rank": trial.comm.rank,
        "steps": steps,
        "stopped": trial.stopped,
        "raised": raised,
    }
    path = Path(folder) / f"rank-{os.getpid()}.jsonl"
    with path.open("a") as out:
        out.write(json.dumps(line) + "\n")
