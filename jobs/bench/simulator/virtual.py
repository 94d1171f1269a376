"""The virtual MPI: messages, the ticket counter, the claim tables and the cores, on the
simulator's clock.

The real :class:`~propagator.engine.comm.mailbox.Mailbox` batches, routes (through the real
:class:`~propagator.engine.comm.gossip.Gossip`) and counts; :class:`VirtualMailbox` keeps all
of that and replaces only its MPI calls: a message is stamped with its arrival time
(send time + :meth:`Costs.transit`) and waits in the receiver's inbox until the receiver's
clock passes it. Nothing is pickled or copied but the rows themselves.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence

import numpy as np

from propagator.engine.comm.gossip import Gossip
from propagator.engine.comm.mailbox import Mailbox
from propagator.engine.comm.tickets import STOPPED, Claim

from .costs import Costs


class Transport:
    """Every leader's inbox: ``(arrival time, rows)`` in the order sent.

    Args:
        n: workers (one leader each).
        costs: the measured message costs.
    """

    def __init__(self, n: int, costs: Costs) -> None:
        self._inbox: list[list[tuple[float, np.ndarray]]] = [[] for _ in range(n)]
        self._costs = costs
        self.dead = np.zeros(n, dtype=bool)  # dead leaders receive nothing (Issend hangs)
        self.messages = 0
        self.bytes = 0

    def send(self, now: float, rows: np.ndarray, dest: int) -> None:
        self.messages += 1
        self.bytes += rows.nbytes
        if not self.dead[dest]:
            self._inbox[dest].append((now + self._costs.transit(rows.nbytes), rows))

    def take(self, me: int, now: float) -> tuple[int, list[np.ndarray]]:
        """The messages to ``me`` that have arrived by ``now``: their count and rows (each
        sender's in order: the transit time grows with the size only)."""
        inbox = self._inbox[me]
        if not inbox:
            return 0, []
        here = [rows for t, rows in inbox if t <= now]
        if len(here) < len(inbox):
            self._inbox[me] = [(t, rows) for t, rows in inbox if t > now]
        else:
            inbox.clear()
        return len(here), here


class VirtualMailbox(Mailbox):
    """The real mailbox (batching, gossip routing, counts) over :class:`Transport`.

    Args:
        transport: the virtual network.
        me: this leader's worker (its rank: one rank per worker).
        clock: the simulator's clock (seconds).
        dtype, peers, flush_interval, gossip: as :class:`Mailbox`.
    """

    def __init__(
        self,
        transport: Transport,
        me: int,
        clock: Callable[[], float],
        dtype: np.dtype,
        peers: Sequence[int],
        flush_interval: float,
        gossip: Gossip | None,
    ) -> None:
        super().__init__(None, dtype, peers, flush_interval, gossip=gossip, clock=clock)
        self._recv_buf = np.zeros(0, dtype=np.uint8)  # receive() below needs no buffer
        self._transport = transport
        self._me = me
        self._now = clock

    def _send(self, rows: np.ndarray, dests: Sequence[int]) -> None:
        for dest in dests:
            self._transport.send(self._now(), rows, dest)
            self.sent_messages += 1
            self.sent_bytes += rows.nbytes

    def progress(self) -> None:
        """Nothing to complete: a virtual send owns no buffer."""

    def receive(self) -> np.ndarray:
        """The records that have arrived, through the gossip's filter as the real mailbox."""
        n, parts = self._transport.take(self._me, self._now())
        self.received_messages += n
        if not n:
            return self._nothing
        rows = np.concatenate(parts) if n > 1 else parts[0].copy()
        return rows if self._gossip is None else self._gossip.heard(rows)


class Counter:
    """The ticket counter on rank 0 as a single server: each claim is an atomic that waits
    for the ones before it (``costs.atomic`` each) and travels ``costs.latency`` each way.
    Implements what :class:`~propagator.engine.comm.tickets.Tickets` calls.

    Args:
        costs: the measured costs.
        limit: one past the last id (``None``: no evaluation budget).
        background: arrival times of the claims of workers that are not simulated (one
            per evaluation; see :func:`.simulation.background`), s.
    """

    def __init__(
        self, costs: Costs, limit: int | None, background: np.ndarray | None = None
    ) -> None:
        self._costs = costs
        self._limit = STOPPED if limit is None else limit
        self._next = 0
        self._free = 0.0  # when the host's last atomic completes
        self._background = np.zeros(0) if background is None else np.sort(background)
        self._served = 0  # background claims served so far
        self.now = 0.0  # the claiming worker's clock, set before each claim
        self.claims = 0

    def claim(self, n: int) -> Claim:
        arrive = self.now + self._costs.latency
        self._serve_background(arrive)
        self._free = max(arrive, self._free) + self._costs.atomic
        self.now = self._free + self._costs.latency  # when the reply is back
        self.claims += 1
        old, self._next = self._next, self._next + n
        if old >= STOPPED:
            return Claim(old, 0, 0)
        count = max(0, min(n, self._limit - old))
        return Claim(old, count, max(0, self._limit - old - count))

    def stop(self) -> None:
        self._next += STOPPED

    def _serve_background(self, until: float) -> None:
        """Serve the claims of workers not simulated that arrive before ``until`` (each
        takes an id and the host's time, as a simulated one)."""
        times, atomic = self._background, self._costs.atomic
        i = self._served
        while i < len(times) and times[i] <= until:
            self._free = max(times[i], self._free) + atomic
            self._next += 1
            i += 1
        self._served = i


class Claims:
    """An island's claim table (exact; each claim is one atomic round trip, counted).

    Implements what :meth:`Island.propose` calls.
    """

    def __init__(self) -> None:
        self._keys: set[int] = set()
        self.probes = 0

    def claim(self, key: int) -> bool:
        self.probes += 1
        if key in self._keys:
            return False
        self._keys.add(key)
        return True


class Cores:
    """The CPUs the workers share: ``None`` for a core each (a cluster), or ``n`` cores
    taken first come, first served (oversubscribed ranks on this machine)."""

    def __init__(self, n: int | None) -> None:
        self._free = None if n is None else [0.0] * n

    def run(self, now: float, cpu: float) -> tuple[float, float]:
        """A burst of ``cpu`` seconds asked at ``now``: when it starts and ends."""
        if self._free is None:
            return now, now + cpu
        start = max(now, self._free[0])
        heapq.heapreplace(self._free, start + cpu)
        return start, start + cpu

    def start(self, now: float) -> float:
        """When a burst asked at ``now`` would start."""
        return now if self._free is None else max(now, self._free[0])
