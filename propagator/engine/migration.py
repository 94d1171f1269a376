"""Sending a worker's best records to other islands (after its evaluations, at random)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..strategies.pool import Pool
from .comm.mailbox import Mailbox
from .context import RunContext
from .records import Kind

_IMMIGRANT, _DEPARTED = int(Kind.IMMIGRANT), int(Kind.DEPARTED)


class Emigration:
    """When and whom a worker sends to other islands.

    After each evaluation a worker emigrates with probability ``migration.probability /
    workers on its island``, so an island sends about ``probability`` times per round of its
    workers' evaluations. The best records leave; each target island gets
    ``topology[from][to]`` of them. Where the topology gives more target islands than
    ``migration.targets``, each emigration goes to that many of them, drawn at random: a
    migrant goes to every worker of its target island, so each target costs about
    ``probability`` messages per evaluation, and a bounded number of targets keeps that
    bounded at any number of islands. With pollination they are copies, and a worker sends a
    target island only the ones it has not sent there last time: an island's best changes
    ever more rarely as a run goes on, and a copy it holds already would be dropped on
    arrival. With migration they move: only the worker that owns a record may send it, and it
    leaves its island's pools.

    Args:
        ctx: the rank's context.
        mailbox: the leader's record channel.
        rng: the worker's migration stream.
    """

    def __init__(self, ctx: RunContext, mailbox: Mailbox, rng: np.random.Generator) -> None:
        layout, migration = ctx.layout, ctx.settings.migration
        island_size = layout.island_sizes[ctx.island]
        self._ctx = ctx
        self._mailbox = mailbox
        self._rng = rng
        self._probability = migration.probability / island_size if layout.n_islands > 1 else 0.0
        self._to = migration.row(layout.n_islands, ctx.island)
        self._most = migration.targets
        self._pollination = migration.pollination
        self._last: dict[int, np.ndarray] = {}  # target island: ids of the copies sent last
        self.sent = 0

    def maybe(self, pool: Pool, members: Callable[[], np.ndarray] | None = None) -> None:
        """After an evaluation: perhaps send migrants from ``pool``; with PBT, the island's
        best live members instead (``members()``: their latest segments, best first; asked
        only when migrants go), as copies: their saved trainings stay where they are, for
        the receivers to copy from."""
        if not self._probability:
            return
        source = pool if members is None else members()
        if not len(source) or self._rng.random() >= self._probability:
            return
        targets = np.flatnonzero(self._to)
        if len(targets) > self._most:  # no draw otherwise: the stream stays as it was
            targets = np.sort(self._rng.choice(targets, self._most, replace=False))
        if members is not None:
            for island in targets:
                self._send(source[: int(self._to[island])], int(island))
            return
        if self._pollination:
            for island in targets:
                self._send_new(pool.best(int(self._to[island])), int(island))
            return
        # The targets take turns in random order, so none is starved when few are eligible.
        mine = pool.rows["owner"] == self._ctx.worker
        emigrants = pool.best(int(self._to[targets].sum()), mine)
        start = 0
        for island in self._rng.permutation(targets):
            batch = emigrants[start : start + int(self._to[island])]
            start += len(batch)
            self._send(batch, int(island))
            for r in batch:
                pool.remove(r["id"])
                r["kind"] = _DEPARTED
                self._mailbox.post(r)

    def _send_new(self, rows: np.ndarray, island: int) -> None:
        """Send ``island`` those of the copies ``rows`` that were not in the last sent it."""
        ids = rows["id"]
        last = self._last.get(island)
        self._last[island] = ids.copy()
        self._send(rows if last is None else rows[~np.isin(ids, last)], island)

    def _send(self, rows: np.ndarray, island: int) -> None:
        if not len(rows):
            return
        ctx = self._ctx
        workers = ctx.layout.island_workers(island)
        migrants = rows.copy()
        migrants["kind"] = _IMMIGRANT
        migrants["owner"] = self._rng.choice(np.asarray(workers), size=len(migrants))
        self._mailbox.send(migrants, [ctx.comms.leader_rank(w) for w in workers])
        self.sent += len(migrants)
