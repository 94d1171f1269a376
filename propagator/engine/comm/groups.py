"""The communicators of a search, split once from the user's communicator."""

from __future__ import annotations

from dataclasses import dataclass

from mpi4py import MPI

from ..layout import Layout
from .backoff import IDLE_CAP, wait


@dataclass
class Comms:
    """Communicators one rank takes part in.

    Attributes:
        world: a private duplicate of the search's communicator (engine collectives).
        worker: this worker's ranks, for the engine's candidate broadcast.
        trial: this worker's ranks again, for the objective (``trial.comm``); ``COMM_SELF`` for
            single-rank workers. Separate from ``worker`` so the objective's traffic can never
            match the engine's.
        ranks_per_worker: ``k``; worker ``w``'s leader is world rank ``w·k``.

    Leaders talk to each other on ``world``: a separate leaders' communicator would cost one
    more collective split, and every rank has to join the end-of-search consensus anyway.
    """

    world: MPI.Comm
    worker: MPI.Comm
    trial: MPI.Comm
    ranks_per_worker: int

    @property
    def is_leader(self) -> bool:
        return self.world.rank % self.ranks_per_worker == 0

    def leader_rank(self, worker: int) -> int:
        """World rank of ``worker``'s leader."""
        return worker * self.ranks_per_worker

    def free(self) -> None:
        for c in (self.trial, self.worker, self.world):
            if c is not None and c not in (MPI.COMM_SELF, MPI.COMM_WORLD) and c != MPI.COMM_NULL:
                c.Free()


def split(comm: MPI.Comm, layout: Layout) -> Comms:
    """Collective over ``comm``: build the communicators of ``layout``."""
    # Idup, polled asleep, rather than a spinning Dup: ranks still starting would share the
    # cores with those waiting here. Its end also means every rank has arrived, so the
    # blocking split below does not spin for long.
    world, duplicated = comm.Idup()
    wait(duplicated, IDLE_CAP)
    k = layout.ranks_per_worker
    rank = world.rank
    if k == 1:
        worker, trial = MPI.COMM_SELF, MPI.COMM_SELF
    else:
        worker = world.Split(rank // k, rank)
        trial = worker.Dup()
    return Comms(world, worker, trial, k)
