"""An objective for the PBT tests: a deterministic 'training' that saves and restores its
state per rank, and returns what it restored.

``w`` moves toward 1 by ``lr`` of the way each step; the loss is ``(1 - w)^2 + 0.02 lr``, so
a large learning rate pays early and costs late: the best schedule falls. Each rank saves its
own shard (``rank`` in it); restoring another rank's shard raises. ``$PBT_SLEEP`` seconds are
slept per step; each call appends a JSON line to ``$PBT_TRACE`` (when set).
"""

from __future__ import annotations

import json
import os
import time

EPOCHS = 12


def objective(params: dict, trial) -> dict:
    state = trial.restore()
    if state is not None and state["rank"] != trial.rank:
        raise RuntimeError(f"rank {trial.rank} restored the shard of rank {state['rank']}")
    w, start = (state["w"], state["t"]) if state is not None else (0.0, 0)
    restored, t = w, start
    sleep = float(os.environ.get("PBT_SLEEP", "0"))
    value = (1.0 - w) ** 2
    for t in range(start + 1, EPOCHS + 1):
        time.sleep(sleep)
        w += params["lr"] * (1.0 - w)
        value = (1.0 - w) ** 2 + 0.02 * params["lr"]
        trial.report(t, value)
        if t < EPOCHS and trial.should_stop():
            if trial.paused:
                trial.save({"w": w, "t": t, "rank": trial.rank})
            break
    trace = os.environ.get("PBT_TRACE")
    if trace:
        line = {"id": trial.id, "rank": trial.rank, "restored": restored, "start": start, "t": t}
        with open(f"{trace}.{os.getpid()}", "a") as f:
            f.write(json.dumps(line) + "\n")
    return {"loss": value, "restored": restored, "w": w, "t": t}
