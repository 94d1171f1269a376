"""Progress for the engine's RMA windows while the rank that hosts them runs the objective.

The ticket counter (:mod:`.tickets`) lives on rank 0 and each claim table (:mod:`.claims`) on
its island's first leader: ranks that also evaluate. Where the network does not do an atomic
itself (MPICH over a network without hardware atomics, MPICH's ``MPIR_CVAR_NOLOCAL=1`` on one
machine), a ``Fetch_and_op`` or ``Compare_and_swap`` aimed at a rank completes only when that
rank enters MPI: while its objective trains for an hour without MPI calls, every worker that
wants a ticket or a claim waits for the hour to end. Measured (``jobs/bench/rma_progress.py``):
with rank 0 asleep 8 s, the three other ranks completed 1 evaluation instead of about 400.

So a hosting rank runs a small thread that calls ``MPI_Iprobe`` every :data:`POKE` seconds,
which drives MPICH's progress engine, and sleeps in between (a thread that spins, as MPICH's
own ``MPIR_CVAR_ASYNC_PROGRESS`` does, takes a core from the objective). It needs
``MPI_THREAD_MULTIPLE`` (mpi4py's default request). It starts only where it helps: on ranks
that host a window, with an MPICH-family library, and when some rank of the search is not on
this rank's node (between ranks of one node, MPICH's atomics are shared-memory atomics that
need nobody's progress). Elsewhere the search depends on the MPI library for progress, as
before, and a line in the log says so when that may stall the search.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from mpi4py import MPI

from .backoff import IDLE_CAP, barrier

_log = logging.getLogger("propagate")

POKE = 0.002  # seconds between pokes: 1-2 % of a core; an atomic waits 1 ms more on average
_TAG = 32001  # no message has it: the probe only drives progress, it never matches
_MPICH_FAMILY = ("MPICH", "MVAPICH", "INTEL(R) MPI")
_ASYNC = "MPIR_CVAR_ASYNC_PROGRESS"


class ProgressThread:
    """Drives MPI progress on ``comm`` every ``period`` seconds until :meth:`stop`.

    Args:
        comm: a communicator of this rank; it must stay valid until :meth:`stop` returns.
        period: seconds between two ``Iprobe`` calls (default :data:`POKE`).
    """

    def __init__(self, comm: MPI.Comm, period: float = POKE) -> None:
        self._comm = comm
        self._period = period
        self._running = True
        self.pokes = 0
        self._thread = threading.Thread(target=self._loop, name="propagate-mpi-progress")
        self._thread.daemon = True  # never keeps a failing process alive
        self._thread.start()

    def _loop(self) -> None:
        comm, period = self._comm, self._period
        while self._running:
            time.sleep(period)
            comm.Iprobe(MPI.ANY_SOURCE, _TAG)
            self.pokes += 1

    def stop(self) -> None:
        """Stop poking and wait for the thread (at most one period)."""
        self._running = False
        self._thread.join()


def start_progress(comm: MPI.Comm, hosting: bool) -> ProgressThread | None:
    """Collective over ``comm``: start a :class:`ProgressThread` on this rank if it hosts an
    RMA window (``hosting``) that ranks on other nodes reach, through an MPI that needs the
    target's progress for that; ``None`` where none is needed or none can run (logged)."""
    remote = _has_remote_ranks(comm)
    if not (hosting and remote) or os.environ.get(_ASYNC, "0").strip() not in ("", "0"):
        return None  # shared-memory atomics, or MPICH's own progress thread runs
    library = MPI.Get_library_version().strip().splitlines()[0]
    if not any(name in library.upper() for name in _MPICH_FAMILY):
        _log.info(
            "rank %d hosts the ticket counter or a claim table for ranks on other nodes; "
            "while its objective runs, their progress depends on the MPI library (%s)",
            *(comm.rank, library),
        )
        return None
    if MPI.Query_thread() < MPI.THREAD_MULTIPLE:
        _log.warning(
            "rank %d hosts the ticket counter or a claim table for ranks on other nodes, and "
            "MPI was initialised without MPI_THREAD_MULTIPLE, so no progress thread can serve "
            "them: while its objective runs without MPI calls, their progress depends on the "
            "MPI library (with MPICH, set %s=1, or leave mpi4py.rc.thread_level at 'multiple')",
            *(comm.rank, _ASYNC),
        )
        return None
    _log.info(
        "rank %d hosts the ticket counter or a claim table for ranks on other nodes: a thread "
        "drives its MPI progress every %g ms, also while its objective runs",
        *(comm.rank, 1e3 * POKE),
    )
    return ProgressThread(comm)


def _has_remote_ranks(comm: MPI.Comm) -> bool:
    """Collective: whether some rank of ``comm`` is off this rank's node (as MPI sees it)."""
    barrier(comm, IDLE_CAP)  # arrive together: the blocking split below spins while it waits
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        return node.size < comm.size
    finally:
        node.Free()
