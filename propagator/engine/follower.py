"""The loop of a multi-rank worker's other ranks (followers): evaluate each candidate the
worker's leader hands out, with it, until it says stop (the protocol: :mod:`.crew`)."""

from __future__ import annotations

import logging

import numpy as np

from .candidate import Evaluated, run_candidate, wire_row
from .comm.backoff import barrier
from .context import RunContext
from .crew import Crew
from .evaluation import Outcome
from .records import Kind, Status
from .stopping import FollowerStopping, stopping_active

_log = logging.getLogger("propagate")
_CONFIRMATION, _RESUMED, _FAILED = int(Kind.CONFIRMATION), int(Kind.RESUMED), int(Status.FAILED)
_RESUMING = Evaluated(Outcome(Status.PAUSED, np.nan, None, None), 0.0, 0.0, [], [])


def follow(ctx: RunContext) -> None:
    """Loop of a non-leader rank: evaluate each candidate until told to stop, then join the
    leaders' end-of-search consensus (see :meth:`Mailbox.drain`)."""
    generation = 0

    def journal_alone(record_id: int, genes: np.ndarray, times: tuple, error: str) -> None:
        row = wire_row(ctx, record_id, generation, _FAILED, times, np.nan, genes)
        _journal_alone(ctx, row, error)

    crew = Crew(ctx, journal_alone)
    stopping = FollowerStopping(crew) if stopping_active(ctx) else None
    while (candidate := crew.receive()) is not None:
        record_id, kind, genes = candidate
        confirming = kind == _CONFIRMATION  # runs to its end (see Leader)
        # a resumed training: the leader alone holds what it reported before its pause
        paused = _RESUMING if kind == _RESUMED else None
        evaluated = run_candidate(
            ctx, crew, record_id, genes, None if confirming else stopping, paused
        )
        if evaluated is not None and evaluated.outcome.status == _FAILED:
            _log.warning("evaluation %d failed", record_id)
        generation += 1
    barrier(ctx.comms.world)


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
