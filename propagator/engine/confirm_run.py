"""A worker leader's confirmations (see :mod:`.confirm`): each task claimed, evaluated to its
end and recorded as a confirmation.

A task is one evaluation of a configuration, or, with PBT, a schedule's stretches: the first
trains from scratch and pauses after its last step (saving its training), each next one
continues from a link of the previous one's checkpoint with its own genes, as a PBT segment
does, but never from another training's. The other ranks of the worker follow a stretch as
they follow a segment (they stop, pause and restore when the first rank says).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from .candidate import Evaluated, run_candidate
from .comm.tickets import TicketCounter, Tickets
from .context import RunContext
from .crew import Crew
from .ledger import Ledger
from .members import Segment
from .records import Kind, Status
from .stopping import LeaderStopping

_CONFIRMATION, _EVALUATED = int(Kind.CONFIRMATION), int(Kind.EVALUATED)
_RESUMED, _PAUSED = int(Kind.RESUMED), int(Status.PAUSED)


@dataclass(frozen=True)
class Stretch:
    """One evaluation of a confirmation task: its id, its genes, and the step it pauses
    after (``None``: it trains to its end)."""

    record_id: int
    genes: np.ndarray
    until: int | None = None


Task = tuple[Stretch, ...]


class Confirmations:
    """Runs the confirmation tasks a worker claims.

    Args:
        ctx: the rank's context.
        crew: the worker's protocol.
        ledger: records and journals each evaluation.
        counter: the confirmations' ticket counter (one ticket per task).
    """

    def __init__(self, ctx: RunContext, crew: Crew, ledger: Ledger, counter: TicketCounter):
        self._ctx = ctx
        self._crew = crew
        self._ledger = ledger
        self._counter = counter
        # A schedule's stretches pause; the confirmations' counter has no step budget, so
        # the stopping rules are the pause and the time limit.
        schedules = ctx.settings.pbt is not None
        self._stopping = LeaderStopping(ctx, counter, None, _nothing, crew) if schedules else None

    def run(self, tasks: Sequence[Task]) -> None:
        """Claim and evaluate tasks until none is left, or one must stop the search."""
        tickets = Tickets(self._counter, self._ctx.layout.n_workers)
        while (ticket := tickets.next(time.perf_counter())) is not None:
            if not self._task(tasks[ticket]):
                return

    def _task(self, task: Task) -> bool:
        """One task's stretches in turn; whether the confirmations go on (a stretch that
        ends otherwise than paused ends its task)."""
        parent: np.void | None = None
        member = task[0].record_id
        for stretch in task:
            evaluated = self._evaluate(stretch, parent, member)
            if evaluated is None:
                return True
            outcome = evaluated.outcome
            if outcome.stop or outcome.mistake:
                return False
            lineage = (-1 if parent is None else int(parent["id"]), member)
            row = self._ledger.record(
                stretch.record_id, stretch.genes, evaluated, _CONFIRMATION, lineage=lineage
            )
            if parent is not None:
                self._ctx.checkpoints.remove(int(parent["id"]))
            if int(row["status"]) != _PAUSED:
                self._ctx.checkpoints.remove(stretch.record_id)
                return True
            parent = row
        return True

    def _evaluate(self, stretch: Stretch, parent: np.void | None, member: int) -> Evaluated | None:
        """Evaluate a stretch, after ``parent``'s training (``None``: from scratch); ``None``
        when the parent's checkpoint is gone."""
        ctx, crew, genes = self._ctx, self._crew, stretch.genes
        if self._stopping is None:
            crew.hand_out(stretch.record_id, genes, _CONFIRMATION)
            return run_candidate(ctx, crew, stretch.record_id, genes)
        so_far = None
        if parent is not None:
            ranks = ctx.layout.ranks_per_worker
            if not ctx.checkpoints.link(int(parent["id"]), stretch.record_id, ranks):
                return None
            step, value = int(parent["step"]), float(parent["values"][0])
            segment = Segment(int(parent["id"]), member, genes, step, value, stretch.until)
            so_far = segment.resumed(time.time() - ctx.t0)
        crew.hand_out(stretch.record_id, genes, _EVALUATED if so_far is None else _RESUMED)
        self._stopping.candidate(stretch.record_id, [] if so_far is None else so_far.judged)
        self._stopping.pause_at(stretch.until)
        evaluated = run_candidate(ctx, crew, stretch.record_id, genes, self._stopping, so_far)
        if evaluated is not None and so_far is not None:  # a stretch's record: its own steps
            evaluated = replace(evaluated, reports=evaluated.reports[len(so_far.reports) :])
        return evaluated


def _nothing() -> None:
    """No records arrive during the confirmations (the rungs are not asked)."""
