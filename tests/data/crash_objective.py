"""Objective for the crash test: sleeps a little and notes each id it finished in a side log
(``$PROPAGATE_TEST_LOG/rank-R.log``), written just before returning."""

import os
import time

import numpy as np


def objective(params, trial):
    time.sleep(np.random.default_rng(trial.seed).uniform(0.005, 0.03))
    value = (params["x"] - 0.3) ** 2 + (params["y"] + 0.1) ** 2
    path = os.path.join(os.environ["PROPAGATE_TEST_LOG"], f"rank-{os.getpid()}.log")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, f"{trial.id}\n".encode())
    os.close(fd)
    return {"loss": value, "aux": float(trial.id)}
