"""A worker's trainings that go on later, and their checkpoints: ASHA's paused trainings
(:mod:`.promotion`) and the PBT member (:mod:`.members`)."""

from __future__ import annotations

import numpy as np

from .candidate import Evaluated
from .context import RunContext
from .island import Island
from .members import Member
from .promotion import PausedTrainings, Replace
from .records import Status

_PAUSED = int(Status.PAUSED)


class Later:
    """What of a worker's trainings goes on later.

    Attributes:
        paused: its paused trainings, with a pruner that pauses (else ``None``).
        member: its PBT member, with PBT (else ``None``).
        migrants: with PBT, the island's live members, best first, as they migrate (else
            ``None``: the pool's records do).

    Args:
        ctx: the rank's context.
        island: the worker's island (its rungs, its population).
        replace: records what became of a paused training that will not be resumed.
    """

    def __init__(self, ctx: RunContext, island: Island, replace: Replace) -> None:
        pruner = ctx.settings.pruner
        pauses = pruner is not None and pruner.promotion
        self._ctx = ctx
        self.paused = PausedTrainings(ctx, island.rungs, replace) if pauses else None
        population = island.population
        self.member = Member(ctx, population) if population is not None else None
        # with PBT the island's best live members migrate, not the pool's records
        self.migrants = population.best if population is not None else None

    def take_over(self, stored: np.ndarray | None) -> None:
        """On resume of the run: the paused trainings and the member this worker goes on
        with, among its island's ``stored`` records."""
        if self.paused is not None:
            self.paused.take_over(stored)
        if self.member is not None:
            self.member.take_over(stored)

    def leave(self) -> None:
        """The search ends (see :meth:`PausedTrainings.leave`)."""
        if self.paused is not None:
            self.paused.leave()

    def settled(
        self,
        row: np.void,
        genes: np.ndarray,
        evaluated: Evaluated,
        paused_at: tuple[int, int, float] | None,
    ) -> None:
        """An evaluation was recorded as ``row``: a paused training is kept (where it was
        paused: ``paused_at``), any other's checkpoint goes."""
        record_id = int(row["id"])
        checkpoints = self._ctx.checkpoints
        if int(row["status"]) != _PAUSED:
            if (checkpoints.root / str(record_id)).exists():
                checkpoints.remove(record_id)
        elif self.paused is not None:
            self.paused.keep(record_id, genes, evaluated, paused_at)
        if self.member is not None:
            self.member.ended(row)
