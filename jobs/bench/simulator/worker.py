"""One simulated worker: the real island view, breeder, gossip, migration and ticket stream,
driven through the steps of :meth:`propagator.engine.leader.Leader._step` on a virtual clock.

What is real: :class:`~propagator.engine.island.Island` (the strategy's ``ask``/``tell``, the
pool, the seen configurations, merging received records), the mailbox's batching and the
gossip's routing (:class:`.virtual.VirtualMailbox`), :class:`~propagator.engine.migration.
Emigration`, :class:`~propagator.engine.comm.tickets.Tickets` (the budget) and the leader's
own seeding of its streams. What is modelled: the loop around them (the order of the leader's
steps, not its code: the crew, the ledger and the evaluation wrapper are charged as the
measured ``loop`` cost), the objective (a lognormal sleep), and every cost (``costs.json``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from propagator.engine.comm.mailbox import FLUSH_INTERVAL
from propagator.engine.comm.tickets import Tickets
from propagator.engine.island import Island
from propagator.engine.leader import _generators, _gossip
from propagator.engine.migration import Emigration
from propagator.engine.records import Kind, Status

from .costs import Costs
from .virtual import Claims, Counter, Transport, VirtualMailbox

_OK, _EVALUATED = int(Status.OK), int(Kind.EVALUATED)


def smooth(genes: np.ndarray) -> float:
    """The default loss: smooth on the genes, its minimum inside the box."""
    return float(np.sum((genes - 0.3) ** 2))


@dataclass
class Shared:
    """What every simulated worker uses: the network, the counter, the costs, the clock, the
    objective on the genes and the best value found so far."""

    transport: Transport
    counter: Counter
    costs: Costs
    strategy: str  # the costs' strategy name
    n_workers: int
    run_seed: int
    now: float = 0.0  # the clock the mailboxes read (the worker being stepped's)
    loss: Callable[[np.ndarray], float] = smooth
    best: float = math.inf

    def clock(self) -> float:
        return self.now


@dataclass
class Step:
    """What one control-plane step cost and what comes next.

    Attributes:
        cpu: seconds of CPU (breeding, the loop, messages).
        wait: seconds waiting for atomics (tickets, claims), after the CPU.
        genes: the next candidate (``None``: the worker stops).
        record_id: its ticket.
    """

    cpu: float
    wait: float
    genes: np.ndarray | None
    record_id: int


class SimWorker:
    """A worker leader (one rank per worker).

    Args:
        shared: the simulation's common parts.
        ctx: the rank's stand-in context (layout, settings, worker, island, comms).
        island: its island view, with its breeder (built by the caller).
        claims: its island's claim table (``None``: repeats allowed or island of one).
    """

    def __init__(
        self, shared: Shared, ctx: SimpleNamespace, island: Island, claims: Claims | None
    ) -> None:
        self._shared = shared
        self._island = island
        self._claims = claims
        island.claims = claims
        self.worker = ctx.worker
        self._rng, migrate_rng = _generators(ctx, None)
        workers = ctx.layout.island_workers(ctx.island)
        peers = [w for w in workers if w != ctx.worker]
        interval = 0.0 if island.model_based else FLUSH_INTERVAL  # as the leader's _mailbox
        gossip = _gossip(ctx, island.pool.capacity)
        self.mailbox = VirtualMailbox(
            shared.transport, ctx.worker, shared.clock, ctx.dtype, peers, interval, gossip
        )
        self.emigration = Emigration(ctx, self.mailbox, migrate_rng)
        self._tickets = Tickets(shared.counter, shared.n_workers)
        self._row = np.zeros((), dtype=ctx.dtype)
        self._row["worker"] = self._row["owner"] = ctx.worker
        self._row["island"] = ctx.island
        self._row["step"] = -1
        self.told = 0  # records the island view was told (for the breeding costs)

    def settle(self, record_id: int, genes: np.ndarray, start: float, end: float) -> int:
        """Record a finished evaluation, share it, maybe emigrate, flush (as the leader's
        ``_settle``); returns the messages sent."""
        sent = self.mailbox.sent_messages
        row = self._row.copy()
        row["id"], row["genes"], row["start"], row["end"] = record_id, genes, start, end
        row["values"] = value = self._shared.loss(genes)
        self._shared.best = min(self._shared.best, value)
        row["status"], row["kind"] = _OK, _EVALUATED
        self._island.learn(row)
        self.told += 1
        self.mailbox.post(row)
        self.emigration.maybe(self._island.pool)
        self.mailbox.flush()
        return self.mailbox.sent_messages - sent

    def step(self, now: float, deadline: float) -> Step:
        """Absorb what arrived, take a ticket and propose (the leader's ``_step`` up to the
        evaluation), at ``now`` on the shared clock."""
        shared, costs = self._shared, self._shared.costs
        own, per_record = costs.breeding(shared.strategy, self.told)
        received = self.mailbox.received_messages
        rows = self.mailbox.receive()
        if len(rows):
            self._island.absorb(rows)
            self.told += len(rows)
        cpu = (self.mailbox.received_messages - received) * costs.recv_cpu
        cpu += len(rows) * per_record
        if now >= deadline:
            return Step(cpu, 0.0, None, -1)
        counter = shared.counter
        counter.now, claims = now + cpu, counter.claims
        record_id = self._tickets.next(now + cpu)
        wait = counter.now - (now + cpu) if counter.claims > claims else 0.0
        if record_id is None:
            return Step(cpu, wait, None, -1)
        probes = self._claims.probes if self._claims is not None else 0
        genes = self._island.propose(self._rng, record_id, shared.run_seed)
        if self._claims is not None:
            wait += (self._claims.probes - probes) * (costs.atomic + 2 * costs.latency)
        return Step(cpu + own + costs.loop, wait, genes, record_id)
