"""Evaluation ids, the global evaluation budget and run-wide flags, as atomic counters.

The counter lives in an MPI window on the first leader. A worker claims tickets with a single
``MPI_Fetch_and_op`` (passive target, one ``Lock_all`` epoch for the whole run): the ticket
numbers are the evaluation ids, unique without any coordinator, and the budget is exact because
no ticket past the limit is granted. Stopping everyone early (a broken objective, a signal)
adds ``STOPPED`` to the counter, so every later claim fails; the counter never needs the owner
to take part (intranode it is a shared-memory atomic, internode an RDMA atomic where the
network has them, and where it has not, :mod:`.progress` answers for the owner while it
evaluates). A second slot counts the workers that have had a successful evaluation, so
a worker can tell "my objective is broken" from "my corner of the space fails"; three more
collect progress (evaluations done, failed, best loss) that leaders publish now and then and
rank 0 shows. The last counts the steps of a budget in steps (``trial.report`` calls): a step is
reserved before it runs (see :mod:`propagator.engine.stopping`), and none is granted past the
limit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from mpi4py import MPI

from ...settings import MAX_EVALUATIONS
from .backoff import IDLE_CAP, barrier

STOPPED = MAX_EVALUATIONS
_TICKETS, _SUCCESSES, _DONE, _FAILED, _BEST, _STEPS = range(6)  # int64 slots; _BEST float64


@dataclass(frozen=True)
class Claim:
    first: int  # first granted id
    count: int  # ids granted: first .. first + count - 1 (0: budget spent or stopped)
    remaining: int  # tickets left after this claim (for chunk sizing)


class TicketCounter:
    """The run-wide counters. Collective construction and :meth:`close` over ``comm``.

    Args:
        comm: the search's communicator (every rank takes part in creating the window;
            only leaders claim).
        start: first id (> 0 when resuming).
        limit: one past the last id that may be granted, or ``None`` for no evaluation budget.
        steps: steps this session may claim (``None``: no step budget).
    """

    def __init__(
        self, comm: MPI.Comm, start: int = 0, limit: int | None = None, steps: int | None = None
    ) -> None:
        if limit is not None and limit >= STOPPED:
            raise ValueError(f"evaluation budget must be below {STOPPED}")
        self._limit = STOPPED if limit is None else limit
        self._steps = steps
        self._win = MPI.Win.Allocate(48 if comm.rank == 0 else 0, 8, comm=comm)
        if comm.rank == 0:
            memory = self._win.tomemory()
            np.frombuffer(memory, dtype=np.int64)[:_BEST] = (start, 0, 0, 0)
            np.frombuffer(memory, dtype=np.float64)[_BEST] = np.inf
            np.frombuffer(memory, dtype=np.int64)[_STEPS] = 0
        barrier(comm, IDLE_CAP)
        self._win.Lock_all()
        self._add = np.zeros(1, dtype=np.int64)
        self._old = np.zeros(1, dtype=np.int64)
        self._fadd = np.zeros(1, dtype=np.float64)
        self._fold = np.zeros(1, dtype=np.float64)

    def _fetch_add(self, n: int, slot: int = _TICKETS) -> int:
        self._add[0] = n
        self._win.Fetch_and_op(self._add, self._old, 0, slot, MPI.SUM)
        self._win.Flush(0)
        return int(self._old[0])

    def claim(self, n: int) -> Claim:
        """Ask for ``n`` ids; gets up to ``n`` (fewer near the end of the budget, 0 after it)."""
        old = self._fetch_add(n)
        if old >= STOPPED:
            return Claim(old, 0, 0)
        count = max(0, min(n, self._limit - old))
        return Claim(old, count, max(0, self._limit - old - count))

    def claim_step(self) -> bool:
        """Reserve one step of the step budget; ``False`` once it is spent."""
        if self._steps is None:
            return True
        if self._fetch_add(1, _STEPS) < self._steps:
            return True
        # A refusal takes its increment back, so that the slot counts exactly the steps
        # granted and a step given back (:meth:`return_step`) can be granted again.
        self._fetch_add(-1, _STEPS)
        return False

    def return_step(self) -> None:
        """Give back a step reserved by :meth:`claim_step` and never reported."""
        if self._steps is not None:
            self._fetch_add(-1, _STEPS)

    def stop(self) -> None:
        """Make every later claim, by any worker, fail."""
        self._fetch_add(STOPPED)

    def note_success(self) -> None:
        """Count this worker as having had a successful evaluation (call once)."""
        self._fetch_add(1, _SUCCESSES)

    def any_success(self) -> bool:
        """Whether any worker has reported a success."""
        return self._fetch_add(0, _SUCCESSES) > 0

    def publish(self, done: int, failed: int, best_loss: float) -> None:
        """Add a leader's new evaluations and failures, and offer its best loss."""
        self._fetch_add(done, _DONE)
        self._fetch_add(failed, _FAILED)
        self._fadd[0] = best_loss
        self._win.Fetch_and_op(self._fadd, self._fold, 0, _BEST, MPI.MIN)
        self._win.Flush(0)

    def progress(self) -> tuple[int, int, float]:
        """Evaluations done and failed, and the best loss, as published so far."""
        self._win.Fetch_and_op(self._fadd, self._fold, 0, _BEST, MPI.NO_OP)
        self._win.Flush(0)
        return self._fetch_add(0, _DONE), self._fetch_add(0, _FAILED), float(self._fold[0])

    def close(self) -> None:
        """Collective: release the window (call right after the end-of-search consensus, so
        that everyone arrives at once)."""
        self._win.Unlock_all()
        self._win.Free()


class Tickets:
    """One worker's stream of ids, claimed from the counter in adaptive chunks.

    Chunks cover about ``chunk_seconds`` of this worker's evaluations, so fast objectives
    touch the counter rarely, and shrink to a fair share of what is left near the end of the
    budget (guided self-scheduling), so no worker sits on tickets others could use.
    """

    def __init__(self, counter: TicketCounter, n_workers: int, chunk_seconds: float = 0.2) -> None:
        self._counter = counter
        self._n_workers = n_workers
        self._chunk_seconds = chunk_seconds
        self._next = 0
        self._end = 0
        self._remaining: int | None = None
        self._seconds_per_eval: float | None = None
        self._claimed_at = 0.0
        self._used_since_claim = 0

    def next(self, now: float) -> int | None:
        """The next id, or ``None`` when the budget is spent or the search was stopped."""
        if self._next >= self._end:
            if self._used_since_claim:
                self._seconds_per_eval = (now - self._claimed_at) / self._used_since_claim
            claim = self._counter.claim(self._chunk())
            if claim.count == 0:
                return None
            self._next, self._end = claim.first, claim.first + claim.count
            self._remaining = claim.remaining
            self._claimed_at, self._used_since_claim = now, 0
        self._used_since_claim += 1
        self._next += 1
        return self._next - 1

    def _chunk(self) -> int:
        if self._seconds_per_eval is None:
            return 1
        by_time = int(self._chunk_seconds / max(self._seconds_per_eval, 1e-7))
        by_share = (
            self._remaining // (2 * self._n_workers) if self._remaining is not None else by_time
        )
        return max(1, min(by_time, by_share, 4096))
