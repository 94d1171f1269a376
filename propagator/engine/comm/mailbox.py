"""Record traffic between worker leaders: batched, non-blocking, numpy buffers only.

Every message is a contiguous array of wire records sent as raw bytes with ``Issend``; the
receiver learns its length from ``Iprobe`` and receives into a reused buffer, so nothing is
pickled and nothing blocks: a message of any size (10,000-gene records exceed the eager limit)
completes while both sides keep polling.

Records evaluated in quick succession are batched: a batch goes out when ``flush_interval``
has passed since the last one, so a slow objective's record leaves right after its
evaluation while a no-op objective sends one message per interval instead of one per record.
The leader of a model-based strategy's worker sets the interval to 0 (see
:class:`~propagator.strategies.Breeder`): its peers' next asks depend on every result.

Shutdown is the NBX consensus (Hoefler et al., 2010): a leader that stops evaluating keeps
receiving until all its synchronous sends have been matched, then enters a non-blocking
barrier and keeps receiving until the barrier completes; ranks that never send (the other
ranks of multi-rank workers) just enter the barrier. When it completes, every message of every
leader has been received, so no leader exits with a message in flight and none waits for a
reply that never comes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from mpi4py import MPI

from .backoff import Backoff

TAG_RECORDS = 11
FLUSH_INTERVAL = 0.001  # seconds
# One Iprobe moves only part of the incoming traffic along (MPICH 4/5, shared memory): with a
# single "probe until empty" per evaluation, messages from 3 peers backed up to ~1 s of latency
# on 16 ranks; probing on through 5 misses in a row keeps it at about one evaluation.
_PROBES_AFTER_EMPTY = 5


class Mailbox:
    """A leader's record channel to the other leaders.

    Args:
        comm: the search's communicator (all ranks; only leaders send or receive).
        dtype: the wire dtype.
        peers: ranks that receive every :meth:`post` (the island's other leaders).
        flush_interval: seconds between batches of posted records (default 1 ms).
        max_batch: records per batch at most.
    """

    def __init__(
        self,
        comm: MPI.Comm,
        dtype: np.dtype,
        peers: Sequence[int],
        flush_interval: float = FLUSH_INTERVAL,
        max_batch: int = 256,
    ) -> None:
        self._comm = comm
        self._dtype = dtype
        self._peers = list(peers)
        self._flush_interval = flush_interval
        self._batch = np.zeros(max_batch, dtype=dtype)
        self._n_batch = 0
        self._last_flush = time.perf_counter()
        self._sends: list[MPI.Request] = []
        self._buffers: list[np.ndarray] = []
        self._recv_buf = np.zeros(max_batch * dtype.itemsize, dtype=np.uint8)
        self._nothing = np.zeros(0, dtype=dtype)  # most polls: a view costs a microsecond
        self._status = MPI.Status()
        self.sent_messages = 0
        self.sent_bytes = 0

    # --- sending -----------------------------------------------------------------------------
    def post(self, row: np.void) -> None:
        """Queue a record for every island peer (sent at the next due :meth:`flush`)."""
        if not self._peers:
            return
        self._batch[self._n_batch] = row
        self._n_batch += 1
        if self._n_batch == len(self._batch):
            self.flush(force=True)

    def flush(self, force: bool = False) -> None:
        """Send the queued records if the interval has passed (or ``force``)."""
        now = time.perf_counter()
        if self._n_batch and (force or now - self._last_flush >= self._flush_interval):
            self._send(self._batch[: self._n_batch].copy(), self._peers)
            self._n_batch = 0
            self._last_flush = now

    def send(self, rows: np.ndarray, dests: Sequence[int]) -> None:
        """Send ``rows`` now to each leader in ``dests`` (migrants)."""
        self._send(np.ascontiguousarray(rows, dtype=self._dtype), dests)

    def _send(self, rows: np.ndarray, dests: Sequence[int]) -> None:
        for dest in dests:
            self._sends.append(self._comm.Issend([rows, MPI.BYTE], dest, TAG_RECORDS))
            self._buffers.append(rows)
            self.sent_messages += 1
            self.sent_bytes += rows.nbytes
        self.progress()

    def progress(self) -> None:
        """Forget sends that have completed (releasing their buffers)."""
        if not self._sends:
            return
        done = MPI.Request.Testsome(self._sends)
        if done:
            for i in sorted(done, reverse=True):
                del self._sends[i]
                del self._buffers[i]

    # --- receiving ---------------------------------------------------------------------------
    def receive(self) -> np.ndarray:
        """Every record that has arrived, in one array (empty if none).

        The array is a view of a reused buffer: use it before the next call.
        """
        comm, status = self._comm, self._status
        used = 0
        misses = 0
        while misses < _PROBES_AFTER_EMPTY:
            if not comm.Iprobe(MPI.ANY_SOURCE, TAG_RECORDS, status):
                misses += 1
                continue
            misses = 0
            n = status.Get_count(MPI.BYTE)
            if used + n > len(self._recv_buf):
                grown = np.zeros(2 * (used + n), dtype=np.uint8)
                grown[:used] = self._recv_buf[:used]
                self._recv_buf = grown
            comm.Recv([self._recv_buf[used:], n, MPI.BYTE], status.Get_source(), TAG_RECORDS)
            used += n
        return self._recv_buf[:used].view(self._dtype) if used else self._nothing

    # --- shutdown ----------------------------------------------------------------------------
    def drain(self) -> None:
        """Collective over ``comm`` (NBX): flush, then receive until every rank is done.

        Call once, after the last :meth:`post`; records that arrive meanwhile are dropped
        (nobody breeds any more).
        """
        self.flush(force=True)
        barrier: MPI.Request | None = None
        backoff = Backoff(cap=0.001)
        while True:
            got = len(self.receive()) > 0
            self.progress()
            if barrier is None and not self._sends:
                barrier = self._comm.Ibarrier()
            if barrier is not None and barrier.Test():
                return
            if got:
                backoff.reset()
            else:
                backoff.sleep()
