"""Evaluating a candidate on a rank, and the loop of a multi-rank worker's other ranks."""

from __future__ import annotations

import time

import numpy as np
from mpi4py import MPI

from .comm.backoff import barrier, wait
from .context import RunContext
from .evaluation import Outcome, Trial, evaluate
from .records import Kind, Status

_STOP = int(Kind.STOP)


def run_trial(
    ctx: RunContext, record_id: int, genes: np.ndarray
) -> tuple[Outcome, float, float, list]:
    """Decode, evaluate and time one candidate on this rank."""
    params = ctx.space.decode(genes)
    trial = Trial(record_id, ctx.comms.trial, ctx.worker, ctx.island, ctx.run_seed)
    start = time.time() - ctx.t0
    outcome = evaluate(ctx.objective, params, trial, ctx.settings.metric, ctx.pass_trial)
    return outcome, start, time.time() - ctx.t0, trial.reports


def worker_outcome(ctx: RunContext, outcome: Outcome) -> Outcome:
    """Collective over the worker: the leader's outcome, failed if any other rank failed."""
    errors = ctx.comms.worker.gather(outcome.error, root=0)
    if errors is None or outcome.status != Status.OK:
        return outcome
    for rank, error in enumerate(errors):
        if error is not None:
            message = f"rank {rank} of worker {ctx.worker} failed:\n{error}"
            return Outcome(Status.FAILED, float("nan"), outcome.metrics, message)
    return outcome


def follow(ctx: RunContext) -> None:
    """Loop of a non-leader rank: evaluate each broadcast candidate until told to stop, then
    join the leaders' end-of-search consensus (see :meth:`Mailbox.drain`)."""
    candidate = np.zeros(1, dtype=ctx.dtype)
    while True:
        wait(ctx.comms.worker.Ibcast([candidate, MPI.BYTE], root=0), cap=0.001)
        if candidate["kind"][0] == _STOP:
            barrier(ctx.comms.world)
            return
        outcome, *_ = run_trial(ctx, int(candidate["id"][0]), candidate["genes"][0])
        worker_outcome(ctx, outcome)
