"""The traffic on a multi-rank worker's communicator: the one owner of it.

A worker is ``ranks_per_worker`` ranks that evaluate each candidate together; its first rank
(the leader) breeds, judges and records, the others (followers) only evaluate. Every message
between them goes through a :class:`Crew`, whose leader half and follower half are called in
the same order on every rank:

=====================================  ==============================================
leader                                  each follower
=====================================  ==============================================
``hand_out(id, genes, kind)``           ``receive()`` -> the candidate (or ``None``)
per repeat, with early stopping:
``tell(reason)`` at its start           ``tell(None)`` -> the leader's reason
``tell(reason)`` at each should_stop    ``tell(None)`` -> the leader's reason
per repeat: ``settle(outcome)``         ``settle(outcome)`` -> the worker's outcome
...next candidate...
``release()``                           ``receive()`` -> ``None``: leave the loop
=====================================  ==============================================

The leader alone decides whether a repeat succeeded, was stopped early (the pruner, the step
budget, ``trial_timeout`` on the leader's clock) or failed on its side; a follower's part can
only fail by raising, and what its objective returns is never looked at (the first rank's
value counts). Candidates travel by broadcast (the followers are idle then); inside a repeat
every message is point-to-point between the leader and each follower, in order:

* the leader sends ``tell`` (a stop decision) at the start of a repeat and at each
  ``should_stop``, ``done`` when its own part has returned, and ``final`` (the worker's status
  of the repeat) once every follower's ``done`` has come;
* a follower sends ``done`` (its status and message) when its part has returned, and then
  reads the leader's messages up to ``final``.

So the ranks need not call ``should_stop`` equally often: a follower asking after the leader's
part has returned (or failed) reads ``done`` and is told to stop; ``tell`` messages it never
asked for are read and dropped before ``final``. After ``final`` every rank holds the same
status, and so takes the same path (another repeat, or the next candidate) by construction.

A rank whose part failed often does so while the worker's other ranks wait for it inside a
collective of the objective (a ``Barrier``, an all-reduce of gradients), which MPI cannot
cancel. A failed rank therefore waits at most ``failure_grace`` seconds for the others; if
they do not come, the worker is stuck: the failure is recorded (by the leader in its journal,
by a follower in a journal of its own next to it) and the whole job is stopped with a message;
the run store stays intact and a re-run resumes.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
from mpi4py import MPI

from .comm.backoff import Backoff, wait
from .context import RunContext
from .evaluation import Outcome, error_headline
from .records import Kind, Status

_log = logging.getLogger("propagate")
_STOP, _EVALUATED = int(Kind.STOP), int(Kind.EVALUATED)
_FAILED = int(Status.FAILED)
_NOTICE = 1.0  # seconds a failed rank waits for its worker before it says so on stderr
_TO_FOLLOWER, _TO_LEADER = 1, 2  # tags on the worker's communicator
_LEADER_DONE = "the worker's first rank has finished its part"

# (record id, genes, (start, end), error): journals the failure after which a worker is stuck
RecordStuck = Callable[[int, np.ndarray, tuple[float, float], str], None]


class WorkerStuck(Exception):
    """A rank failed and its worker's other ranks did not finish the evaluation in time."""


class Crew:
    """One rank's half of its worker's protocol (see the module docstring). With one rank per
    worker every method is free and returns what it was given.

    Args:
        ctx: the rank's context.
        record_stuck: journals the failure after which the worker is stuck, before the job
            stops (see :data:`RecordStuck`).
    """

    def __init__(self, ctx: RunContext, record_stuck: RecordStuck) -> None:
        self._ctx = ctx
        self._comm = ctx.comms.worker
        self.active = ctx.layout.ranks_per_worker > 1
        self.leads = self._comm.rank == 0
        self._candidate = np.zeros(1, dtype=ctx.dtype)
        self._record_stuck = record_stuck
        self._sends: list[MPI.Request] = []
        self._leader_done = False  # a follower has read the leader's "done" of this repeat

    # --- candidates ----------------------------------------------------------------------
    def hand_out(self, record_id: int, genes: np.ndarray, kind: int = _EVALUATED) -> None:
        """Leader: give a candidate to the other ranks, which evaluate it with the leader."""
        if self.active:
            self._bcast(record_id, kind, genes)

    def release(self) -> None:
        """Leader: no more candidates; the other ranks' :meth:`receive` returns ``None``."""
        if self.active:
            self._bcast(-1, _STOP, self._candidate["genes"][0])

    def receive(self) -> tuple[int, int, np.ndarray] | None:
        """Follower: the next candidate as ``(id, kind, genes)``, or ``None`` at the end."""
        candidate = self._candidate
        wait(self._comm.Ibcast([candidate, MPI.BYTE], root=0), cap=0.001)
        if candidate["kind"][0] == _STOP:
            return None
        return int(candidate["id"][0]), int(candidate["kind"][0]), candidate["genes"][0].copy()

    def _bcast(self, record_id: int, kind: int, genes: np.ndarray) -> None:
        candidate = self._candidate
        candidate["id"], candidate["kind"], candidate["genes"] = record_id, kind, genes
        wait(self._comm.Ibcast([candidate, MPI.BYTE], root=0), cap=0.001)

    # --- inside a repeat ----------------------------------------------------------------
    def tell(self, reason: str | None) -> str | None:
        """The leader's answer to "stop now?" on every rank (the argument counts only on the
        leader): ``None`` to go on, else why to stop."""
        if not self.active:
            return reason
        if self.leads:
            self._send_all(("tell", reason))
            return reason
        if self._leader_done:
            return _LEADER_DONE
        message = self._next(None)
        if message[0] == "done":
            self._leader_done = True
            return _LEADER_DONE
        return message[1]

    def settle(self, outcome: Outcome, record_id: int, genes: np.ndarray, start: float) -> Outcome:
        """The worker's outcome of one repeat, the same status on every rank.

        It is the leader's outcome, failed if any rank failed (with that rank's message on the
        leader), and a stop request if any rank was interrupted.

        Args:
            start: when the candidate started (seconds since the search began), for the
                record of a stuck worker.
        """
        if not self.active:
            return outcome
        try:
            if self.leads:
                return self._settle_leader(outcome, record_id)
            return self._settle_follower(outcome, record_id)
        except WorkerStuck as stuck:
            times = (start, time.time() - self._ctx.t0)
            try:
                self._record_stuck(record_id, genes, times, str(stuck))
            finally:
                _log.error(str(stuck))
                _say(str(stuck))
                self._ctx.comms.world.Abort(1)
            raise  # Abort does not return

    def _settle_leader(self, outcome: Outcome, record_id: int) -> Outcome:
        self._send_all(("done", int(outcome.status)))
        grace = self._grace(outcome, record_id)
        stop, failure = outcome.stop, None
        for rank in range(1, self._comm.size):
            _, status, stopped, error = self._next(grace, rank)
            stop = stop or stopped
            if status == _FAILED and failure is None:
                failure = f"rank {rank} of worker {self._ctx.worker} failed:\n{error}"
        if outcome.status != _FAILED and failure is not None:
            outcome = Outcome(Status.FAILED, float("nan"), outcome.metrics, failure)
        outcome = replace(outcome, stop=stop)
        self._send_all(("final", int(outcome.status), stop))
        self._finish_sends()
        return outcome

    def _settle_follower(self, outcome: Outcome, record_id: int) -> Outcome:
        error = outcome.error if outcome.status == _FAILED else None
        self._sends.append(
            self._comm.isend(("done", int(outcome.status), outcome.stop, error), 0, _TO_LEADER)
        )
        grace = self._grace(outcome, record_id)
        while (message := self._next(grace))[0] != "final":
            pass  # stop decisions this rank did not ask for, and the leader's "done"
        self._leader_done = False
        self._finish_sends()
        return replace(outcome, status=Status(message[1]), stop=message[2])

    # --- messages ------------------------------------------------------------------------
    def _send_all(self, message: tuple) -> None:
        for rank in range(1, self._comm.size):
            self._sends.append(self._comm.isend(message, rank, _TO_FOLLOWER))

    def _finish_sends(self) -> None:
        for request in self._sends:
            wait(request, cap=0.001)
        self._sends.clear()

    def _next(self, grace: _Grace | None, source: int = 0) -> tuple:
        """The next message from ``source`` (the leader, or a follower on the leader)."""
        tag = _TO_LEADER if self.leads else _TO_FOLLOWER
        backoff = Backoff(cap=0.001 if grace is None else 0.01)
        while not self._comm.iprobe(source=source, tag=tag):
            if grace is not None:
                grace.check()
            backoff.sleep()
        return self._comm.recv(source=source, tag=tag)

    def _grace(self, outcome: Outcome, record_id: int) -> _Grace | None:
        """How long a rank whose part failed waits for the others (``None``: no limit)."""
        return _Grace(self._ctx, outcome, record_id) if outcome.status == _FAILED else None


class _Grace:
    """The ``failure_grace`` of a rank whose part of an evaluation failed: a notice on stderr
    after a second, :class:`WorkerStuck` when it is over."""

    def __init__(self, ctx: RunContext, outcome: Outcome, record_id: int) -> None:
        self._ctx = ctx
        self._outcome = outcome
        self._record_id = record_id
        self._started = time.monotonic()
        self._told = False

    def check(self) -> None:
        ctx, waited = self._ctx, time.monotonic() - self._started
        if not self._told and waited >= _NOTICE:
            self._told = True
            _say(
                f"{_who(ctx)} failed in evaluation {self._record_id} "
                f"({error_headline(self._outcome.error)}); waiting up to "
                f"{ctx.settings.failure_grace:g} s for the worker's other ranks"
            )
        if waited >= ctx.settings.failure_grace:
            raise WorkerStuck(
                f"{_who(ctx)} failed in evaluation {self._record_id} and the other ranks of "
                f"worker {ctx.worker} did not finish it within {ctx.settings.failure_grace:g} s: "
                "they are probably waiting in a collective for the failed rank, which MPI "
                f"cannot cancel. Stopping the job.{_resume_hint(ctx)} The error:\n"
                f"{self._outcome.error}"
            )


def _who(ctx: RunContext) -> str:
    return f"rank {ctx.comms.world.rank} (rank {ctx.comms.worker.rank} of worker {ctx.worker})"


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
