"""Bounded dissemination (``dissemination: gossip``): whom a leader's records go to.

With ``all`` every batch of records goes to every other leader of the island, so messages
and bytes per evaluation grow with the island's size W. With gossip each batch goes to two
leaders only, and the island's best is pushed on until nearly everyone knows it:

- **Peers.** A leader's k-th batch goes to the leader ``2**(k mod L)`` places further on
  the island's ring (``L = ceil(log2 W)``), and to one other leader drawn at random. With
  every leader at the same k (as at the start), the ring's shifts alone bring a record
  known to one leader to all W within L rounds, however the shifts are ordered (their
  partial sums cover ``0 .. 2**L - 1``); the random peer keeps the spread fast when the
  leaders' k drift apart (unequal evaluation times) and mixes the records a pool sees.
- **The best.** A leader that learns a record better than any it knew (its own or a
  peer's, by the first objective) sends a copy of it with each of its next ``L + 3``
  batches, marked as relayed. A receiver keeps a relayed copy only if it beats everything
  that receiver knew, so a record is never taken twice (a record's first copy from its
  evaluator is never marked; the marked copies are only ever bests).
- **Departures** (records that migrated to another island) go to every peer, since any of
  them may hold the record: a worker sends them with probability ``migration.probability /
  W`` per evaluation, so they cost less than one message per evaluation at any W.

Bounds: at most 2 messages per batch, and a batch holds at least one record, so at most 2
per evaluation (plus departures); each record is copied to 2 peers, plus at most one relayed
best per message, so at most 4 copies per evaluation. :mod:`tests.test_gossip` checks that a
new best reaches >= 99 % of W within ``L + 3`` rounds in a round model of up to 4,096
leaders driving this class. Nothing here calls MPI: :class:`~.mailbox.Mailbox` sends what
:meth:`Gossip.route` returns and passes what it receives through :meth:`Gossip.heard`, and a
leader never routes after its mailbox starts draining, so nothing is forwarded during
shutdown.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..records import Kind, Status

FANOUT = 2  # peers per batch: one on the ring, one at random
ROUNDS_AFTER = 3  # a best is pushed for ceil(log2 W) + this many of the leader's batches
# Set in a copy's ``kind`` on the wire (the kinds are small), cleared on receipt.
RELAYED = 0x40
# Gossip needs this many leaders (its own included) to differ from ``all``: with fewer, the two
# peers are all the others.
SMALLEST_ISLAND = FANOUT + 2

_OK, _DEPARTED = int(Status.OK), int(Kind.DEPARTED)
_ISLAND_KINDS = (int(Kind.EVALUATED), int(Kind.RESUMED))  # records a best may be pushed from


class Gossip:
    """One leader's peer choice and best forwarding.

    Args:
        ring: world ranks of the island's leaders, in worker order (this one's included;
            kept, not copied); at least :data:`SMALLEST_ISLAND` of them.
        me: this leader's place in ``ring``.
        rng: the leader's own stream for the random peer (seeded from the run seed).
        sign: +1 when the first objective is minimised, -1 when maximised.
    """

    def __init__(self, ring: Sequence[int], me: int, rng: np.random.Generator, sign: float) -> None:
        if len(ring) < SMALLEST_ISLAND:
            raise ValueError(f"gossip needs {SMALLEST_ISLAND} or more leaders, got {len(ring)}")
        self._ring = ring
        self._me = me
        self._rng = rng
        self._sign = float(sign)
        self._shifts = max(1, math.ceil(math.log2(len(ring))))
        self.push_rounds = self._shifts + ROUNDS_AFTER
        self._k = 0  # batches sent
        self.best = math.inf  # the lowest loss this leader knows of
        self._hot: np.ndarray | None = None  # the best's relayed copy while it is pushed
        self._hot_id = -1
        self._hot_left = 0

    def peers(self) -> list[int]:
        """The two ranks the next batch goes to (advances the batch count)."""
        n, me = len(self._ring), self._me
        ring = (me + (1 << (self._k % self._shifts))) % n  # never me: 0 < shift < n
        self._k += 1
        low, high = sorted((me, ring))
        other = int(self._rng.integers(n - 2))  # uniform over the n - 2 others
        other += other >= low
        other += other >= high
        return [self._ring[ring], self._ring[other]]

    def route(self, batch: np.ndarray) -> list[tuple[np.ndarray, list[int]]]:
        """The messages for a batch of this leader's records: ``(rows, ranks)`` pairs."""
        departed = batch["kind"] == _DEPARTED
        messages = []
        if departed.any():
            gone = batch[departed]
            if self._hot is not None and self._hot_id in gone["id"]:
                self._hot = None  # it left the island: pushing it would bring it back
            messages.append((gone, [r for r in self._ring if r != self._ring[self._me]]))
            batch = batch[~departed]
        if len(batch):
            self._note(batch)
            messages.append((self._with_hot(batch), self.peers()))
        return messages

    def _with_hot(self, batch: np.ndarray) -> np.ndarray:
        """The batch, with the relayed copy of the best while it is to be pushed."""
        hot = self._hot
        if hot is None or self._hot_id in batch["id"]:
            return batch  # nothing to push, or the best's first copies go now
        self._hot_left -= 1
        if self._hot_left <= 0:
            self._hot = None
        out = np.empty(len(batch) + 1, dtype=batch.dtype)  # np.concatenate is 10x slower
        out[:-1] = batch
        out[-1:] = hot
        return out

    def heard(self, rows: np.ndarray) -> np.ndarray:
        """The received ``rows`` to take in: relayed copies are unmarked, and kept only when
        one beats every record this leader knew (the best of them; the others are copies of
        records it knew, or beaten by that one). May modify ``rows``."""
        kind = rows["kind"]
        relayed = (kind & RELAYED) != 0
        if not relayed.any():
            self._note(rows)
            return rows
        rows["kind"] = kind & ~RELAYED
        keep = ~relayed
        self._note(rows[keep])
        copies = np.flatnonzero(relayed)
        loss = self._losses(rows[copies])
        i = int(np.argmin(loss))
        if loss[i] < self.best:
            keep[copies[i]] = True
            self._note(rows[copies[i] : copies[i] + 1])
        return rows[keep]

    def _note(self, rows: np.ndarray) -> None:
        """Learn the best of ``rows``; an island record better than all known is pushed."""
        if not len(rows):
            return
        loss = self._losses(rows)
        i = int(np.argmin(loss))
        if not loss[i] < self.best:
            return
        self.best = float(loss[i])
        self._hot = None
        if int(rows["kind"][i]) in _ISLAND_KINDS:  # an immigrant went to every leader
            self._hot = rows[i : i + 1].copy()
            self._hot["kind"] |= RELAYED
            self._hot_id = int(rows["id"][i])
            self._hot_left = self.push_rounds

    def _losses(self, rows: np.ndarray) -> np.ndarray:
        """The first objective's loss of each row; inf where not successful."""
        ok = rows["status"] == _OK
        return np.where(ok, rows["values"][:, 0] * self._sign, math.inf)
