"""Configurations claimed on each island: a hash set in an MPI window, so that two workers of
an island never evaluate the same configuration, not even when they propose it at the same
moment.

Each island with more than one worker keeps an open-addressing table of 64-bit configuration
keys in a window on its first leader. A worker claims a configuration with one
``MPI_Compare_and_swap`` per probe (passive target, one ``Lock_all`` epoch for the run, as the
ticket counter, and served by :mod:`.progress` while the host evaluates): a slot holding 0
takes the key and the claim succeeds; a slot holding the key means someone claimed it first.
Linear probing keeps the table at most half full; should a key find no free slot in the whole
table (a time-only budget that ran past the table's size), the claim succeeds unchecked rather
than stall the search, and the worker says so at once. A configuration no peer can hold except
by drawing the same 64-bit floats (:meth:`..seen.Seen.private`) is not claimed: the round trip
would buy nothing.
"""

from __future__ import annotations

import logging

import numpy as np
from mpi4py import MPI

from ..layout import Layout
from .backoff import IDLE_CAP, barrier

_log = logging.getLogger("propagate")

_MIN_SLOTS = 1 << 10
_MAX_SLOTS = 1 << 23  # 64 MiB per island host at most
_TIME_ONLY = 1 << 19  # a budget in time only: room for about 500,000 new configurations


def table_slots(evaluations: int | None, stored: int = 0) -> int:
    """Slots for an island that will hold its ``stored`` configurations and up to
    ``evaluations`` new ones (``None``: a budget in time only): a power of 2, at least twice
    as many."""
    want = max(_MIN_SLOTS, 2 * ((_TIME_ONLY if evaluations is None else evaluations) + stored))
    return min(_MAX_SLOTS, 1 << (want - 1).bit_length())


class ClaimTable:
    """The claim tables of every island. Collective construction and :meth:`close`.

    Args:
        comm: the search's communicator.
        layout: workers and islands.
        island: this rank's island.
        slots: slots per table (the same on every rank, see :func:`table_slots`).
        preload: keys already evaluated on this island (a resumed run); the table's host
            enters them before anyone claims.
    """

    def __init__(
        self, comm: MPI.Comm, layout: Layout, island: int, slots: int, preload: np.ndarray
    ) -> None:
        first = layout.island_start(island) * layout.ranks_per_worker
        self._host = first
        self.shared = layout.island_sizes[island] > 1
        self.hosting = self.shared and comm.rank == first
        self._slots = slots
        self._win = MPI.Win.Allocate(8 * slots if self.hosting else 0, 8, comm=comm)
        if self.hosting:
            table = np.frombuffer(self._win.tomemory(), dtype=np.int64)
            table[:] = 0
            for key in set(preload.tolist()):  # np.unique would import numpy.ma: 20 ms
                self._insert_local(table, key)
        barrier(comm, IDLE_CAP)
        self._win.Lock_all()
        self._key = np.zeros(1, dtype=np.int64)
        self._empty = np.zeros(1, dtype=np.int64)
        self._found = np.zeros(1, dtype=np.int64)
        self.overflowed = False

    def claim(self, key: int) -> bool:
        """Claim a configuration for this worker: ``True`` if nobody on the island had."""
        if not self.shared or self.overflowed:
            return True
        key = key or 1  # 0 marks an empty slot
        self._key[0] = key
        win, host, mask = self._win, self._host, self._slots - 1
        cas, flush, found = win.Compare_and_swap, win.Flush, self._found
        slot = key & mask
        for _ in range(self._slots):
            cas(self._key, self._empty, found, host, slot)
            flush(host)
            if found[0] == 0:
                return True
            if found[0] == key:
                return False
            slot = (slot + 1) & mask
        if not self.overflowed:
            self.overflowed = True
            _log.warning(
                "the island's claim table is full (%d configurations): from now on two workers "
                "of the island may evaluate the same configuration at the same moment",
                self._slots,
            )
        return True

    def _insert_local(self, table: np.ndarray, key: int) -> None:
        key = key or 1
        slot = key & (self._slots - 1)
        for _ in range(self._slots):
            if table[slot] in (0, key):
                table[slot] = key
                return
            slot = (slot + 1) & (self._slots - 1)

    def close(self) -> None:
        """Collective: release the windows (with the ticket counter's, at the end)."""
        self._win.Unlock_all()
        self._win.Free()
