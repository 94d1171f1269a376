"""Evaluating a candidate on a rank, agreeing on its outcome within a multi-rank worker, and
the loop of a multi-rank worker's other ranks (followers).

A rank of a multi-rank worker that fails often does so while its worker's other ranks wait
for it inside a collective of the objective (a ``Barrier``, an all-reduce of gradients). MPI
cannot cancel a collective, so those ranks would wait forever. After each evaluation the
worker's ranks therefore agree on its outcome with a non-blocking collective on the engine's
own communicator; a rank whose part failed waits at most ``failure_grace`` seconds for the
others. If they come, the failure is recorded like any other and the search goes on. If not,
they are stuck: the failure is recorded (by the leader in its journal, by a follower in a
journal of its own next to it) and the whole job is stopped with a message; the run store
stays intact and a re-run resumes.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial

import numpy as np
from mpi4py import MPI

from ..pruners import rung_values
from .comm.backoff import Backoff, barrier, wait
from .context import RunContext
from .evaluation import Outcome, Stopping, Trial, error_headline, evaluate
from .records import Kind, Status
from .stopping import FollowerStopping, stopping_active

_log = logging.getLogger("propagate")
_STOP, _EVALUATED, _CONFIRMATION = int(Kind.STOP), int(Kind.EVALUATED), int(Kind.CONFIRMATION)
_OK, _FAILED = int(Status.OK), int(Status.FAILED)
_NOTICE = 1.0  # seconds a failed rank waits for its worker before it says so on stderr


def run_trial(
    ctx: RunContext, record_id: int, genes: np.ndarray, stopping: Stopping | None = None
) -> tuple[Outcome, float, float, list]:
    """Decode, evaluate and time one candidate on this rank (``repeats`` times, averaged,
    when the search asks for repeats; the reports are those of the first repeat)."""
    params = ctx.space.decode(genes)
    start = time.time() - ctx.t0
    outcomes, reports = [], []
    for repeat in range(ctx.settings.repeats):
        if stopping is not None:
            stopping.start()
        trial = Trial(
            record_id, ctx.comms.trial, ctx.worker, ctx.island, ctx.run_seed, stopping, repeat
        )
        began = time.time()
        outcome = evaluate(ctx.objective, params, trial, ctx.settings.metric, ctx.pass_trial)
        outcomes.append(_in_time(outcome, time.time() - began, ctx.settings.trial_timeout))
        reports = reports or trial.reports
        if outcomes[-1].status != Status.OK:
            break
    return _averaged(outcomes, ctx.settings.metric), start, time.time() - ctx.t0, reports


def _in_time(outcome: Outcome, seconds: float, limit: float | None) -> Outcome:
    """A failure, if the evaluation ran past its time limit without stopping."""
    if limit is None or seconds <= limit or outcome.status == Status.FAILED:
        return outcome
    return Outcome(
        Status.FAILED,
        float("nan"),
        outcome.metrics,
        f"timed out: it ran {seconds:.1f} s, longer than trial_timeout = {limit:g} s "
        "(check trial.should_stop() after each step to stop in time)",
    )


def _averaged(outcomes: list[Outcome], metric: str | tuple[str, ...] | None) -> Outcome:
    """One outcome of a candidate's repeats: the last, unless all succeeded; then the mean of
    every numeric metric, with each optimized one's spread as ``<metric>_std``."""
    last = outcomes[-1]
    if len(outcomes) == 1 or last.status != Status.OK:
        return last
    values = np.array([np.atleast_1d(o.row_values) for o in outcomes])  # repeats × objectives
    names = metric if isinstance(metric, tuple) else (metric or "value",)
    mean, std = values.mean(axis=0), values.std(axis=0)
    metrics: dict = dict(zip(names, mean.tolist(), strict=True))
    if all(o.metrics is not None for o in outcomes):
        for key, first in outcomes[0].metrics.items():
            column = [o.metrics.get(key) for o in outcomes]
            if isinstance(first, float) and all(isinstance(v, float) for v in column):
                metrics[key] = float(np.mean(column))
    metrics |= {f"{n}_std": float(s) for n, s in zip(names, std, strict=True)}
    metrics["repeats"] = len(outcomes)
    several = tuple(mean.tolist()) if len(names) > 1 else None
    return Outcome(Status.OK, float(mean[0]), metrics, None, values=several)


class WorkerStuck(Exception):
    """A rank failed and its worker's other ranks did not finish the evaluation in time."""


def settle(ctx: RunContext, outcome: Outcome, record_id: int) -> Outcome:
    """Collective over a multi-rank worker: the worker's outcome of one evaluation.

    It is the leader's outcome, failed if any rank failed (with that rank's message), and a
    stop request if any rank was interrupted. On the followers the return value is their own.

    Raises:
        WorkerStuck: this rank failed and the others did not arrive within ``failure_grace``.
    """
    comm = ctx.comms.worker
    mine = np.array([int(outcome.status), int(outcome.stop)], dtype=np.int64)
    flags = np.zeros((comm.size, 2), dtype=np.int64)
    request = comm.Iallgather([mine, MPI.INT64_T], [flags, MPI.INT64_T])
    if outcome.status == _OK:
        wait(request, cap=0.001)
    else:
        _wait_for_the_others(ctx, request, outcome, record_id)
    failed = np.flatnonzero(flags[:, 0] != _OK)
    if not len(failed):
        return outcome
    # Every rank has arrived, so this blocking gather cannot hang.
    errors = comm.gather(outcome.error if outcome.status != _OK else None, root=0)
    stop = bool(flags[:, 1].any())
    if comm.rank != 0 or outcome.status != _OK:
        return replace(outcome, stop=stop)
    first = int(failed[0])
    message = f"rank {first} of worker {ctx.worker} failed:\n{errors[first]}"
    return Outcome(Status.FAILED, float("nan"), outcome.metrics, message, stop=stop)


def _wait_for_the_others(
    ctx: RunContext, request: MPI.Request, outcome: Outcome, record_id: int
) -> None:
    started = time.monotonic()
    told = False
    backoff = Backoff(cap=0.01)
    while not request.Test():
        waited = time.monotonic() - started
        if not told and waited >= _NOTICE:
            told = True
            _say(
                f"{_who(ctx)} failed in evaluation {record_id} "
                f"({error_headline(outcome.error)}); waiting up to "
                f"{ctx.settings.failure_grace:g} s for the worker's other ranks"
            )
        if waited >= ctx.settings.failure_grace:
            raise WorkerStuck(
                f"{_who(ctx)} failed in evaluation {record_id} and the other ranks of worker "
                f"{ctx.worker} did not finish it within {ctx.settings.failure_grace:g} s: they "
                "are probably waiting in a collective for the failed rank, which MPI cannot "
                f"cancel. Stopping the job.{_resume_hint(ctx)} The error:\n{outcome.error}"
            )
        backoff.sleep()


def abandon(ctx: RunContext, message: str, record: Callable[[str], None]) -> None:
    """Record the failure that left a worker stuck (``record(message)``), say why, and stop
    the whole job."""
    try:
        record(message)
    finally:
        _log.error(message)
        _say(message)
        ctx.comms.world.Abort(1)


def wire_row(
    ctx: RunContext,
    record_id: int,
    generation: int,
    status: int,
    times: tuple[float, float],
    value: float | tuple[float, ...],
    genes: np.ndarray,
    reports: list[tuple[int, float]] | tuple = (),
) -> tuple:
    """This worker's record of an evaluation, as a tuple in wire-field order."""
    w, step = ctx.worker, reports[-1][0] if reports else -1
    row = (record_id, generation, ctx.island, w, w, status, _EVALUATED, step, *times, value, genes)
    pruner = ctx.settings.pruner
    return row if pruner is None else (*row, rung_values(reports, pruner.steps()))


class Crew:
    """A worker leader's half of the protocol of a multi-rank worker (:func:`follow` is the
    other half): hand each candidate to the other ranks, agree with them on its outcome, and
    release them at the end. With one rank per worker every method does nothing.

    Args:
        ctx: the leader's context.
        record_stuck: ``(id, genes, times, error)``: journals the failure after which the
            other ranks are stuck, before the job stops.
    """

    def __init__(
        self, ctx: RunContext, record_stuck: Callable[[int, np.ndarray, tuple, str], None]
    ) -> None:
        self._ctx = ctx
        self._active = ctx.layout.ranks_per_worker > 1
        self._candidate = np.zeros(1, dtype=ctx.dtype)
        self._record_stuck = record_stuck

    def hand_out(self, record_id: int, genes: np.ndarray, kind: int = _EVALUATED) -> None:
        """Give a candidate to the other ranks, which evaluate it with the leader."""
        if self._active:
            self._bcast(record_id, kind, genes)

    def settled(
        self, outcome: Outcome, record_id: int, genes: np.ndarray, times: tuple[float, float]
    ) -> Outcome:
        """The worker's outcome (see :func:`settle`); a stuck worker stops the job."""
        if not self._active:
            return outcome
        try:
            return settle(self._ctx, outcome, record_id)
        except WorkerStuck as stuck:
            abandon(self._ctx, str(stuck), partial(self._record_stuck, record_id, genes, times))
            raise  # abandon aborts the job; never reached

    def release(self) -> None:
        """No more candidates: the other ranks leave :func:`follow`."""
        if self._active:
            self._bcast(-1, _STOP, self._candidate["genes"][0])

    def _bcast(self, record_id: int, kind: int, genes: np.ndarray) -> None:
        candidate = self._candidate
        candidate["id"], candidate["kind"], candidate["genes"] = record_id, kind, genes
        wait(self._ctx.comms.worker.Ibcast([candidate, MPI.BYTE], root=0), cap=0.001)


def follow(ctx: RunContext) -> None:
    """Loop of a non-leader rank: evaluate each broadcast candidate until told to stop, then
    join the leaders' end-of-search consensus (see :meth:`Mailbox.drain`)."""
    candidate = np.zeros(1, dtype=ctx.dtype)
    generation = 0
    stopping = FollowerStopping(ctx) if stopping_active(ctx) else None
    while True:
        wait(ctx.comms.worker.Ibcast([candidate, MPI.BYTE], root=0), cap=0.001)
        if candidate["kind"][0] == _STOP:
            barrier(ctx.comms.world)
            return
        record_id, genes = int(candidate["id"][0]), candidate["genes"][0].copy()
        confirming = candidate["kind"][0] == _CONFIRMATION  # runs to its end (see Leader)
        outcome, start, end, _ = run_trial(ctx, record_id, genes, None if confirming else stopping)
        if outcome.status != _OK:
            _log.warning("evaluation %d failed on this rank: %s", record_id, outcome.error)
        try:
            settle(ctx, outcome, record_id)
        except WorkerStuck as stuck:
            row = wire_row(ctx, record_id, generation, _FAILED, (start, end), np.nan, genes)
            abandon(ctx, str(stuck), partial(_journal_alone, ctx, row))
        generation += 1


def _journal_alone(ctx: RunContext, row: tuple, error: str) -> None:
    """A follower's record of the failure that stops the job: a journal of its own next to
    its leader's, which readers of the run merge (the leader may be stuck mid-evaluation, so
    its journal is not ours to write)."""
    if ctx.run_dir is None:
        return
    from ..store.journal import JournalWriter  # the store only where there is one
    from ..store.run_store import follower_journal

    record = np.zeros(1, dtype=ctx.dtype)
    record[0] = row
    writer = JournalWriter(
        follower_journal(ctx.run_dir, ctx.worker, ctx.comms.worker.rank), ctx.dtype
    )
    writer.start_session(ctx.t0)
    writer.append(record[0], {"m": None, "e": error, "r": []})
    writer.close()


def _who(ctx: RunContext) -> str:
    comm = ctx.comms.worker
    return f"rank {ctx.comms.world.rank} (rank {comm.rank} of worker {ctx.worker})"


def _resume_hint(ctx: RunContext) -> str:
    if ctx.run_dir is None:
        return ""
    return (
        f" The failure is recorded and finished evaluations are stored in {ctx.run_dir}; "
        "run the search again to resume."
    )


def _say(message: str) -> None:
    sys.stderr.write(f"propagate: {message}\n")  # one write: see store.session._say
    sys.stderr.flush()
