"""An objective for the pause/promotion tests: deterministic learning curves of
``epochs`` steps that save and restore their position, and note every call.

``loss(t) = floor + 2 exp(-t / tau)`` with ``floor`` and ``tau`` from the params, so slow
learners (large ``tau``) start behind and may end ahead. Each call appends a JSON line to
``$PAUSED_TRACE`` (when set): id, rank, whether resumed, the state restored, the steps run
and why it stopped; ``$PAUSED_SLEEP`` seconds are slept per step.
"""

from __future__ import annotations

import json
import math
import os
import time

import numpy as np

EPOCHS = 9


def loss(params: dict, t: int) -> float:
    floor = 0.1 + (params["x"] - 0.3) ** 2
    tau = 0.5 + 6.0 * params["y"]
    return floor + 2.0 * math.exp(-t / tau)


def objective(params: dict, trial) -> dict:
    state = trial.restore()
    start = state["t"] if state is not None else 0
    noise = np.random.default_rng(trial.seed).normal(0.0, 1e-3, EPOCHS)
    ran = []
    sleep = float(os.environ.get("PAUSED_SLEEP", "0"))
    t = start
    for t in range(start + 1, EPOCHS + 1):
        time.sleep(sleep)
        value = loss(params, t) + noise[t - 1]
        ran.append(t)
        trial.report(t, value)
        if t < EPOCHS and trial.should_stop():
            if trial.paused:
                trial.save({"t": t, "rank": trial.rank, "payload": np.arange(1000.0)})
            break
    trace = os.environ.get("PAUSED_TRACE")
    if trace:
        line = {
            "id": trial.id,
            "rank": trial.rank,
            "resumed": trial.resumed,
            "restored": None if state is None else [state["t"], state["rank"]],
            "ran": ran,
            "stopped": trial.stopped,
        }
        with open(f"{trace}.{os.getpid()}", "a") as f:
            f.write(json.dumps(line) + "\n")
    return {"val_loss": loss(params, t) + noise[t - 1]}
