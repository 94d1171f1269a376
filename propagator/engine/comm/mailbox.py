"""Record traffic between worker leaders: batched, non-blocking, numpy buffers only.

Every message is a contiguous array of wire records sent as raw bytes with ``Issend``; the
receiver matches it with ``Improbe`` and receives it with ``Imrecv``, so nothing is pickled
and nothing blocks. Above MPI's eager limit a message travels by rendezvous, and unless the
receiver can copy it alone (MPICH's shared memory does, with CMA, from about 9 kB), its data
moves only while the *sender* is inside MPI: a blocking receive of a probed message then waits
for the sender's evaluation (measured with the mpich wheel, 1,000 bytes with the limit lowered
and on its network path: 2 s of a 2 s objective). Receives are therefore completed by polling,
and a message is handed over once it and every earlier message from its sender are in
(records and departures stay in their order).

Records evaluated in quick succession are batched: a batch goes out when ``flush_interval``
has passed since the last one, so a slow objective's record leaves right after its
evaluation while a no-op objective sends one message per interval instead of one per record.
The leader of a model-based strategy's worker sets the interval to 0 (see
:class:`~propagator.strategies.Breeder`): its peers' next asks depend on every result.

Whom a batch goes to: every island peer, or with ``dissemination: gossip`` the two peers and
the relayed best that :class:`~.gossip.Gossip` chooses (received records pass through it too).

Shutdown is the NBX consensus (Hoefler et al., 2010): a leader that stops evaluating keeps
receiving until all its synchronous sends have been matched and its own receives completed,
then enters a non-blocking barrier and keeps receiving until the barrier completes; ranks that
never send (the other ranks of multi-rank workers) just enter the barrier. When it completes,
every message of every leader has been matched; the receives still under way are completed,
and a last probe checks that nothing is left (logged, with the counts of messages sent and
received), so no leader exits with a message in flight and none waits for a reply that never
comes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import numpy as np
from mpi4py import MPI

from .backoff import IDLE_CAP, Backoff
from .gossip import Gossip

_log = logging.getLogger("propagate")

TAG_RECORDS = 11
FLUSH_INTERVAL = 0.001  # seconds
# One Iprobe moves only part of the incoming traffic along (MPICH 4/5, shared memory): with a
# single "probe until empty" per evaluation, messages from 3 peers backed up to ~1 s of latency
# on 16 ranks; probing on through 5 misses in a row keeps it at about one evaluation.
_PROBES_AFTER_EMPTY = 5
# Messages taken per receive at most: the rest wait for the next. When each receive took
# milliseconds (rendezvous through 256-byte cells, received with a blocking Recv), one peer
# sending every 10 ms kept "probe until empty" going: 3 of 4 workers evaluated once in 55 s.
_MOST_PER_RECEIVE = 256


class Mailbox:
    """A leader's record channel to the other leaders.

    Args:
        comm: the search's communicator (all ranks; only leaders send or receive).
        dtype: the wire dtype.
        peers: ranks that receive every :meth:`post` (the island's other leaders).
        flush_interval: seconds between batches of posted records (default 1 ms).
        max_batch: records per batch at most.
        gossip: routes batches to a few peers instead of all (``None``: to every peer).
        clock: seconds, for the flush interval (a simulator passes its virtual clock).
    """

    def __init__(
        self,
        comm: MPI.Comm,
        dtype: np.dtype,
        peers: Sequence[int],
        flush_interval: float = FLUSH_INTERVAL,
        max_batch: int = 256,
        gossip: Gossip | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._comm = comm
        self._clock = clock
        self._dtype = dtype
        self._peers = list(peers)
        self._flush_interval = flush_interval
        self._gossip = gossip
        self._batch = np.zeros(max_batch, dtype=dtype)
        self._n_batch = 0
        self._last_flush = clock()
        self._sends: list[MPI.Request] = []
        self._buffers: list[np.ndarray] = []
        self._recv_buf = np.zeros(max_batch * dtype.itemsize, dtype=np.uint8)
        # receives under way, in the order they were matched: (request, source, buffer)
        self._receiving: list[tuple[MPI.Request, int, np.ndarray]] = []
        self._nothing = np.zeros(0, dtype=dtype)  # most polls: a view costs a microsecond
        self._status = MPI.Status()
        self.sent_messages = 0
        self.sent_bytes = 0
        self.received_messages = 0
        self.unreceived_at_shutdown = 0

    @property
    def broadcasts(self) -> bool:
        """Whether posted records go to every island peer (there are some, and no gossip)."""
        return bool(self._peers) and self._gossip is None

    # --- sending -----------------------------------------------------------------------------
    def post(self, row: np.void) -> None:
        """Queue a record for the island peers (sent at the next due :meth:`flush`)."""
        if not self._peers:
            return
        self._batch[self._n_batch] = row
        self._n_batch += 1
        if self._n_batch == len(self._batch):
            self.flush(force=True)

    def flush(self, force: bool = False) -> None:
        """Send the queued records if the interval has passed (or ``force``)."""
        now = self._clock()
        if self._n_batch and (force or now - self._last_flush >= self._flush_interval):
            batch = self._batch[: self._n_batch].copy()
            if self._gossip is None:
                self._send(batch, self._peers)
            else:
                for rows, dests in self._gossip.route(batch):
                    self._send(rows, dests)
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
        """Every record whose message has been received, in one array (empty if none).

        The array is a view of a reused buffer: use it before the next call.
        """
        used = self._complete() if self._receiving else 0
        used = self._match(used)
        if not used:
            return self._nothing
        rows = self._recv_buf[:used].view(self._dtype)
        return rows if self._gossip is None else self._gossip.heard(rows)

    def _match(self, used: int) -> int:
        """Receive every message that has arrived (``Improbe`` + ``Imrecv``) after the first
        ``used`` bytes of the buffer; returns the bytes now in it. A message whose data is
        not all there yet (rendezvous) keeps its part of the buffer until :meth:`_complete`,
        and the buffer is replaced by a copy."""
        comm, status = self._comm, self._status
        misses = taken = 0
        while misses < _PROBES_AFTER_EMPTY and taken < _MOST_PER_RECEIVE:
            message = comm.Improbe(MPI.ANY_SOURCE, TAG_RECORDS, status)
            if message is None:
                misses += 1
                continue
            misses = 0
            taken += 1
            self.received_messages += 1
            n, source = status.Get_count(MPI.BYTE), status.Get_source()
            if self._receiving and any(source == entry[1] for entry in self._receiving):
                data = np.empty(n, dtype=np.uint8)  # after that sender's earlier message
                self._receiving.append((message.Irecv([data, MPI.BYTE]), source, data))
                continue
            self._room(used, n)
            data = self._recv_buf[used : used + n]
            request = message.Irecv([data, MPI.BYTE])
            if request.Test():  # nearly always: the data was there
                used += n
                continue
            self._receiving.append((request, source, data))
            self._renew(used, len(self._recv_buf))  # that part stays lent to the request
        return used

    def _complete(self) -> int:
        """Put the messages whose receives have completed at the start of the buffer, each
        only after its sender's earlier ones; returns their bytes."""
        used = 0
        waiting: set[int] = set()  # senders with an earlier message still under way
        left = []
        for entry in self._receiving:
            request, source, data = entry
            if source in waiting or not request.Test():
                waiting.add(source)
                left.append(entry)
                continue
            self._room(used, len(data))
            self._recv_buf[used : used + len(data)] = data
            used += len(data)
        self._receiving = left
        return used

    def _room(self, used: int, more: int) -> None:
        """Room for ``more`` bytes after the first ``used`` (a larger buffer if needed)."""
        if used + more > len(self._recv_buf):
            self._renew(used, 2 * (used + more))

    def _renew(self, used: int, size: int) -> None:
        """A new buffer of ``size`` bytes that starts with the first ``used`` of the old."""
        fresh = np.zeros(size, dtype=np.uint8)
        fresh[:used] = self._recv_buf[:used]
        self._recv_buf = fresh

    # --- shutdown ----------------------------------------------------------------------------
    def drain(self) -> None:
        """Collective over ``comm`` (NBX): flush, then receive until every rank is done.

        Call once, after the last :meth:`post`; records that arrive meanwhile are dropped
        (nobody breeds any more). Logs the messages sent and received, and warns if any
        message was left unreceived (none is, by the protocol: the check is a safeguard).
        """
        self.flush(force=True)
        barrier: MPI.Request | None = None
        backoff = Backoff(cap=0.001)
        while barrier is None or not barrier.Test():
            got = len(self.receive()) > 0
            self.progress()
            if barrier is None and not self._sends and not self._receiving:
                barrier = self._comm.Ibarrier()
            if got:
                backoff.reset()
            else:
                backoff.sleep()
        self._finish()

    def _finish(self) -> None:
        """After the barrier: complete the receives under way (every message has been
        matched, and their senders are in MPI from now on); a message matched only now, or
        a send not yet matched, was left unreceived (counted, received, warned about)."""
        matched = self.received_messages
        backoff = Backoff(cap=IDLE_CAP)
        self._match(0)  # records that arrive now are dropped, as in drain
        while self._receiving:
            self.receive()
            backoff.sleep()
        self.unreceived_at_shutdown = self.received_messages - matched + len(self._sends)
        _log.info(
            "mailbox closed: %d messages sent, %d received, %d left unreceived at shutdown",
            *(self.sent_messages, self.received_messages, self.unreceived_at_shutdown),
        )
        if self.unreceived_at_shutdown:
            _log.warning(
                "%d record messages were still in flight at shutdown",
                self.unreceived_at_shutdown,
            )
