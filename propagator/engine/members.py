"""PBT on a worker: the member it trains, segment after segment (see :mod:`propagator.pbt`).

After each segment the worker asks its island's :class:`~.population.Population` whether its
member is among the worst; then the next segment continues from a copy of a better member's
saved training, with that member's configuration explored, else from its own. The copy is a
hard link of the other's checkpoint files under the new segment's id
(:meth:`Checkpoints.link`): nothing is sent between workers, ranks of a worker each take
their own shard, and it works across nodes wherever the run directory is shared. A worker's
checkpoints are deleted ``KEPT`` segments after they were saved: each live member keeps its
latest and a few before it, which copies of it on other islands (migrants) may still name.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

import numpy as np

from ..pbt import explore
from .candidate import Evaluated
from .context import RunContext
from .evaluation import Outcome
from .population import Population
from .records import Kind, Status

_log = logging.getLogger("propagate")
KEPT = 2  # earlier paused segments of a worker that keep their checkpoints
_PAUSED, _CONFIRMATION = int(Status.PAUSED), int(Kind.CONFIRMATION)


@dataclass(frozen=True)
class Segment:
    """Where a member's next segment starts, and where it pauses.

    Attributes:
        parent: the segment whose saved training it continues (-1: it starts afresh).
        member: the member it trains.
        genes: its configuration.
        step, value: the parent's last step and value (the training's reports so far).
        until: the step it pauses after (``None``: it trains to its end).
    """

    parent: int
    member: int
    genes: np.ndarray
    step: int
    value: float
    until: int | None

    def resumed(self, now: float) -> Evaluated | None:
        """The training so far, as the resumed evaluation the segment continues (``None``:
        it starts afresh); it starts ``now`` (seconds since the search started)."""
        if self.parent < 0:
            return None
        outcome = Outcome(Status.PAUSED, self.value, None, None)
        so_far = [(self.step, self.value)]
        return Evaluated(outcome, now, now, so_far, so_far)


class Member:
    """The member a worker trains, between its segments.

    Args:
        ctx: the rank's context (the PBT settings, the checkpoints).
        population: the island's members as this worker knows them.
    """

    def __init__(self, ctx: RunContext, population: Population) -> None:
        self._ctx = ctx
        self._spec = ctx.settings.pbt
        self._population = population
        self._own: np.void | None = None  # the member's latest segment, paused
        self._kept: deque[int] = deque()  # its paused segments that keep a checkpoint
        self._started = 0  # members this worker started in this session

    @property
    def done(self) -> bool:
        """Whether this worker has no member to train any more: replaying a schedule, the
        budget's evaluations make ``evaluations / stretches`` members, dealt out to the
        workers in turn (so no worker starts one the budget cannot finish)."""
        replay, evaluations = self._spec.replay, self._ctx.settings.budget.evaluations
        if not replay or self._own is not None or evaluations is None:
            return False
        layout = self._ctx.layout
        member = self._started * layout.n_workers + self._ctx.worker
        return member >= evaluations // len(replay)

    def next(self, record_id: int, rng: np.random.Generator) -> Segment | None:
        """The segment ``record_id`` trains: a copy of a better member explored, or the
        member's own training; ``None``: a new member, from a proposed configuration (the
        worker has none, or its training ended). Gives ``record_id`` its checkpoint."""
        if self._spec.replay:
            return self._replayed(record_id)
        own = self._own
        if own is None:
            return None
        member = int(own["member"])
        source = self._population.source(member, rng)
        if source is not None:
            if self._ctx.checkpoints.link(int(source["id"]), record_id, self._ranks):
                genes = explore(self._ctx.space, source["genes"], self._spec, rng)
                _log.info(
                    "evaluation %d: member %d copies member %d (evaluation %d) at step %d",
                    *(record_id, member, int(source["member"]), int(source["id"])),
                    int(source["step"]),
                )
                return self._segment(source, member, genes)
            self._population.forget(int(source["member"]))  # its checkpoint is gone
        if not self._continue(own, record_id):
            return None
        return self._segment(own, member, own["genes"])

    def first(self, record_id: int, genes: np.ndarray) -> Segment:
        """A new member's first segment, from ``genes`` (a proposed configuration)."""
        return Segment(-1, record_id, genes, 0, np.nan, self._spec.interval)

    def _replayed(self, record_id: int) -> Segment:
        """The next stretch of the replayed schedule: a new member's first, or the own
        member's next."""
        own, space = self._own, self._ctx.space
        if own is None:
            self._started += 1
            params, until = self._spec.stretch(1)
            return Segment(-1, record_id, space.encode(params), 0, np.nan, until)
        if not self._continue(own, record_id):
            return self._replayed(record_id)
        step = int(own["step"])
        params, until = self._spec.stretch(step + 1)
        value = float(own["values"][0])
        return Segment(int(own["id"]), int(own["member"]), space.encode(params), step, value, until)

    def _continue(self, own: np.void, record_id: int) -> bool:
        """Give ``record_id`` the member's own training; ``False`` (the member is dropped)
        when it is gone."""
        if self._ctx.checkpoints.link(int(own["id"]), record_id, self._ranks):
            return True
        _log.warning("evaluation %d: the member's training is gone; a new one starts", record_id)
        self._own = None
        return False

    def _segment(self, source: np.void, member: int, genes: np.ndarray) -> Segment:
        """A segment that continues ``source`` for ``interval`` steps."""
        step, value = int(source["step"]), float(source["values"][0])
        genes = np.asarray(genes, dtype=np.float64)
        until = step + self._spec.interval
        return Segment(int(source["id"]), member, genes, step, value, until)

    def ended(self, row: np.void) -> None:
        """A segment of this worker was recorded: a paused one is the member's latest; any
        other ends the member. The worker's paused segments keep their checkpoints for
        ``KEPT`` more segments, so that a copy of them that migrated can still be copied."""
        self._own = row.copy() if int(row["status"]) == _PAUSED else None
        if self._own is not None:
            self._kept.append(int(row["id"]))
        while len(self._kept) > KEPT + 1:
            self._ctx.checkpoints.remove(self._kept.popleft())

    def take_over(self, stored: np.ndarray | None) -> None:
        """On resume of the run: go on with the member this worker trained last, if its
        last segment was paused and its checkpoint is complete; of its earlier paused
        segments' checkpoints it keeps the last ``KEPT``."""
        if stored is None or not len(stored):
            return
        # a confirmation (a replay of a winner's schedule) is no member of the search
        mine = stored[(stored["worker"] == self._ctx.worker) & (stored["kind"] != _CONFIRMATION)]
        if not len(mine):
            return
        mine = mine[np.lexsort((mine["id"], mine["end"]))]
        paused = [int(i) for i in mine["id"][mine["status"] == _PAUSED]]
        for record_id in paused[: -(KEPT + 1)]:
            self._ctx.checkpoints.remove(record_id)
        self._kept.extend(paused[-(KEPT + 1) :])
        last = mine[-1]
        complete = self._ctx.checkpoints.complete(int(last["id"]), self._ranks)
        if int(last["status"]) == _PAUSED and complete:
            self._own = last.copy()

    @property
    def _ranks(self) -> int:
        return self._ctx.layout.ranks_per_worker
