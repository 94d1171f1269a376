"""Bounded dissemination (``dissemination: gossip``): whom a leader's records go to.

With ``all`` every batch of records goes to every other leader of the island, so messages
and bytes per evaluation grow with the island's size W. With gossip a leader sends at most
4 copies of a record per evaluation, on average, at any W, and spends them where they matter:

- **The ring peer.** A leader's k-th batch goes whole to the leader ``2**(k mod L)``
  places further on the island's ring (``L = ceil(log2 W)``). With every leader at the same
  k (as at the start), these shifts alone bring a record known to one leader to all W
  within L rounds, however they are ordered (their partial sums cover ``0 .. 2**L - 1``).
- **The elite.** Each leader keeps the best records it knows of (as many as its island
  pool holds, by the first objective). The batch's records that enter it also go to other
  leaders drawn at random (distinct): at least one, and as many more as the copies saved
  allow. A record that does not enter its evaluator's elite is worse than as many records
  of the island as a pool holds, so no pool takes it: it goes to the ring peer only (a
  sample for model-based strategies and pruners), and the 3 copies it saves carry the
  elite further (at most ``4 (L + 3)`` copies are saved up, so bursts stay short).
- **Relayed copies.** A record that enters a leader's elite from a peer is pushed on once,
  a new best (better than any the leader knew) with each of its next ``L + 3`` batches: one
  relayed copy per batch, best first, with both its messages. A receiver keeps a relayed
  copy only if it enters its own elite, so it never takes a record twice (the elite only
  improves: a record it learned is in it, or no better than its worst). The random peers
  keep the best spreading when the leaders' batch counts drift apart (unequal evaluation
  times).
- **Small islands** (up to :data:`SMALL_ISLAND` = 16 leaders). A relayed copy goes to the
  ring peer only, and the copies saved go to the records that enter the elite: to every
  other leader when they can, and then marked (:data:`EVERYONE`) so that nobody, the
  sender included, pushes them on. Beside the records that entered, a relayed copy halved
  their width: in the simulator (``jobs/bench/simulate_quality.py``, 8 workers, the GA,
  500 evaluations, 20 seeds) about 98 % of batches carried one, and an entering record
  reached the ring peer and 1.4 others on average, 2.4 of the 7.
- **Departures** (records that migrated to another island) go to every peer, since any of
  them may hold the record: a worker sends them with probability ``migration.probability /
  W`` per evaluation, so they cost less than one message per evaluation at any W.

Why the elite: with each batch to two peers and the best alone pushed on, each worker's pool
held a sample of its island's, and the GA lost on 10 of the 14 benchmark functions at 8
ranks (500 evaluations, 20 seeds, Mann-Whitney p < 0.05; ``jobs/bench/dissemination.py
--quality``); with the elite spread as above it lost on 3 (sphere, rastrigin,
birastrigin) and won on 1 (leon). A rerun of that design on sphere, rastrigin and leon
found no significant difference (p 0.37, 0.08, 0.74; gossip's median worse on the first
two): real runs of an instant objective on an oversubscribed machine vary with the load.

Why small islands differ (simulated, ``simulate_quality.py``: all against gossip, the GA,
500 evaluations, one island of W, lognormal times of CV 0.5, 20 seeds; ``-``: gossip worse
at p < 0.05). At W = 8 the design above lost on 6 of the 14 functions (step, quartic,
rastrigin, bisphere, birastrigin, eggcrate); with relayed copies to the ring peer only it
lost on bisphere and birastrigin among the 7 functions it had lost or nearly lost (sphere,
step, quartic, rastrigin, bisphere, birastrigin, eggcrate), its medians closer to
``all``'s on all 7 (rastrigin 101.9 -> 91.4 against 89.5; birastrigin 231.8 -> 202 against
184.5). Tried and dropped: a relayed copy beside the records only with the copies left
over (4 of the 7 lost), pushing only new bests (no gain over the ring-only relay), no
relayed copies at all (level on all 7, but a new best then does not reach the island in
``L + 3`` rounds). The rule stops at 16 leaders: from 25 on, the round model's new best
did not always reach 99 % within ``L + 3`` rounds with the ring-only relay.

What gossip cannot fix with 4 copies: at W >= 16 the GA lost on 10 of the 14 functions at
W = 16, and its ``all`` baseline gains there come from the pool: the GA breeds only once
its pool (2 W records) is full, and a worker under gossip knows about 5 records per own
evaluation, not W. Share of the GA's asks with the pool not yet full (rastrigin, 3 seeds):
W = 8: 4.6 % with ``all``, 6.7 % with gossip; W = 16: 9.4 % / 24.7 %; W = 64: 38 % / 100 %
(at 64 workers and 500 evaluations a gossip worker never breeds: it samples uniformly).
The default portfolio's pool holds 4 records.

Bounds: a batch holds one record at least, and its messages hold a row at least each and
cost one copy per row and rank: at most 4 copies and so 4 messages per evaluation, on
average over a leader's batches (plus departures). ``tests/test_gossip.py`` checks that a
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

COPIES = 4  # copies of a record per evaluation, on average over a leader's batches, at most
ROUNDS_AFTER = 3  # a new best is pushed with ceil(log2 W) + this many of the leader's batches
# Set in a copy's ``kind`` on the wire (the kinds are small), cleared on receipt.
RELAYED = 0x40
# Set in a copy's ``kind`` when its sender sent it to every other leader: nobody pushes it on.
EVERYONE = 0x20
# Gossip needs this many leaders (its own included) to differ from ``all``: with fewer, the
# ring peer and one other are all the others.
SMALLEST_ISLAND = 4
# Up to this many leaders a relayed copy goes to the ring peer only (see the docstring): with
# up to 16 a new best still reached every leader within L + 3 rounds in the round model of
# tests/test_gossip.py; from 25 on it did not always (96 % at 25, 28, 30, 32 and 38).
SMALL_ISLAND = 16

_OK, _DEPARTED = int(Status.OK), int(Kind.DEPARTED)
_EVALUATED, _RESUMED = int(Kind.EVALUATED), int(Kind.RESUMED)  # the records that are pushed


class Elite:
    """The best ``size`` successful records a leader knows of, by the first objective, and
    how many more of its batches each is to ride along with.

    Records only enter (a better one displaces the worst), so a record once learned is
    either here or no better than the worst here: a copy of it is never learned twice.

    Args:
        size: records kept (the island pool's capacity).
        dtype: the wire dtype.
        sign: +1 when the first objective is minimised, -1 when maximised.
        pushes: batches a new best rides along with.
    """

    def __init__(self, size: int, dtype: np.dtype, sign: float, pushes: int) -> None:
        self._size = size
        self._sign = float(sign)
        self._pushes = pushes
        self._rows = np.zeros(0, dtype=dtype)  # best first
        self._loss = np.zeros(0)
        self._left = np.zeros(0, dtype=np.int64)
        self._ids: set[int] = set()

    @property
    def best(self) -> float:
        """The lowest loss known (inf: none yet)."""
        return float(self._loss[0]) if len(self._loss) else math.inf

    def new(self, rows: np.ndarray) -> np.ndarray:
        """Indices of the ``rows`` that would enter: successful, not known, better than the
        worst kept (while full); one per id."""
        loss = self.losses(rows)
        bar = self._loss[-1] if len(self._loss) == self._size else math.inf
        fresh = np.flatnonzero(loss < bar)
        if not len(fresh):
            return fresh
        ids = rows["id"][fresh].tolist()
        first = {i: k for k, i in reversed(list(enumerate(ids))) if i not in self._ids}
        return fresh[sorted(first.values())]

    def learn(self, rows: np.ndarray) -> np.ndarray:
        """Take in ``rows``: island records that enter are to be pushed (a new best
        :attr:`pushes` times, the others once), immigrants (every leader has them) and
        departures (they left) are kept only to be known. Returns the indices that entered."""
        entered = fresh = self.new(rows)
        if not len(fresh):
            return entered
        rows = rows[fresh]
        kind, loss = rows["kind"], self.losses(rows)
        island = (kind == _EVALUATED) | (kind == _RESUMED)
        left = island.astype(np.int64)
        best = int(np.argmin(loss))
        if island[best] and loss[best] < self.best:
            left[best] = self._pushes
        self._merge(rows, loss, left)
        return entered

    def stop(self, ids: np.ndarray) -> None:
        """Push the records ``ids`` no more (they left the island)."""
        self._left[np.isin(self._rows["id"], ids)] = 0

    def take(self, going: np.ndarray) -> np.ndarray | None:
        """The best record still to be pushed that is not among the ids ``going`` (those go
        out now), as a one-row array marked relayed; ``None`` if there is none."""
        for i in np.flatnonzero(self._left > 0).tolist():
            if self._rows["id"][i] not in going:
                self._left[i] -= 1
                copy = self._rows[i : i + 1].copy()
                copy["kind"] |= RELAYED
                return copy
        return None

    def losses(self, rows: np.ndarray) -> np.ndarray:
        """The first objective's loss of each row; inf where not successful."""
        ok = rows["status"] == _OK
        return np.where(ok, rows["values"][:, 0] * self._sign, math.inf)

    def _merge(self, rows: np.ndarray, loss: np.ndarray, left: np.ndarray) -> None:
        all_loss = np.concatenate([self._loss, loss])
        keep = np.argsort(all_loss, kind="stable")[: self._size]
        both = np.empty(len(all_loss), dtype=rows.dtype)  # np.concatenate is 10x slower
        both[: len(self._rows)] = self._rows
        both[len(self._rows) :] = rows
        self._rows = both[keep]
        self._loss = all_loss[keep]
        self._left = np.concatenate([self._left, left])[keep]
        self._ids = set(self._rows["id"].tolist())


class Gossip:
    """One leader's peer choice and forwarding (see the module's docstring).

    Args:
        ring: world ranks of the island's leaders, in worker order (this one's included;
            kept, not copied); at least :data:`SMALLEST_ISLAND` of them.
        me: this leader's place in ``ring``.
        rng: the leader's own stream for the random peers (seeded from the run seed).
        sign: +1 when the first objective is minimised, -1 when maximised.
        dtype: the wire dtype.
        elite: records to forward at most: the best this many known (the pool's capacity).
    """

    def __init__(
        self,
        ring: Sequence[int],
        me: int,
        rng: np.random.Generator,
        sign: float,
        dtype: np.dtype,
        elite: int = 1,
    ) -> None:
        if len(ring) < SMALLEST_ISLAND:
            raise ValueError(f"gossip needs {SMALLEST_ISLAND} or more leaders, got {len(ring)}")
        self._ring = ring
        self._me = me
        self._rng = rng
        self._shifts = max(1, math.ceil(math.log2(len(ring))))
        self.push_rounds = self._shifts + ROUNDS_AFTER
        self._k = 0  # batches sent
        self._elite = Elite(elite, dtype, sign, self.push_rounds)
        self._budget = 0  # copies saved from earlier batches
        self._saved = COPIES * self.push_rounds  # at most (bursts stay short)

    @property
    def best(self) -> float:
        """The lowest loss this leader knows of (inf: none yet)."""
        return self._elite.best

    def peers(self, extra: int = 1) -> list[int]:
        """The ring peer of the next batch, then ``extra`` other ranks drawn at random
        (distinct; at most all but this and the ring peer). Advances the batch count."""
        n, me = len(self._ring), self._me
        ring = (me + (1 << (self._k % self._shifts))) % n  # never me: 0 < shift < n
        self._k += 1
        low, high = sorted((me, ring))
        if extra <= 1:  # the usual cases, without choice()'s cost
            others = [int(self._rng.integers(n - 2))] if extra else []
        else:
            others = self._rng.choice(n - 2, size=min(extra, n - 2), replace=False).tolist()
        ranks = [self._ring[ring]]
        for i in others:  # an index among the n - 2 others: skip me and the ring peer
            i += i >= low
            i += i >= high
            ranks.append(self._ring[i])
        return ranks

    def route(self, batch: np.ndarray) -> list[tuple[np.ndarray, list[int]]]:
        """The messages for a batch of this leader's records: ``(rows, ranks)`` pairs."""
        departed = batch["kind"] == _DEPARTED
        messages = []
        if departed.any():
            gone = batch[departed]
            self._elite.stop(gone["id"])  # pushing them would bring them back
            self._elite.learn(gone)
            messages.append((gone, [r for r in self._ring if r != self._ring[self._me]]))
            batch = batch[~departed]
        if len(batch):
            messages += self._spread(batch)
        return messages

    def _spread(self, batch: np.ndarray) -> list[tuple[np.ndarray, list[int]]]:
        """The batch to the ring peer, and its rows that entered this leader's elite to as
        many random others as the copies saved allow (one at least), with the relayed copy
        of the best record still to be pushed (on a small island, to the ring peer only)."""
        entered = self._elite.learn(batch)
        good = batch[entered]
        relayed = self._elite.take(batch["id"])
        first = _with(batch, relayed)
        self._budget = min(self._budget, self._saved) + COPIES * len(batch) - len(first)
        others = len(self._ring) - 2
        if len(self._ring) > SMALL_ISLAND:  # the relayed copy spreads the best
            extra = _with(good, relayed)
            if not len(extra):
                return [(first, self.peers(0))]
            return _split(first, extra, self.peers(self._widen(len(extra))))
        # A small island: the copies go to the records that entered, to everyone when they
        # can; a relayed copy to the ring peer only (beside them it halved their width, and
        # the GA lost on 6 of the 14 functions at 8 workers in the simulator: see above).
        if not len(good):
            return [(first, self.peers(0))]
        wide = self._widen(len(good))
        if wide == others:  # everyone has them: nobody need push them on
            self._elite.stop(good["id"])
            first = first.copy() if first is batch else first  # the caller's rows stay as sent
            first["kind"][entered] |= EVERYONE
            good["kind"] |= EVERYONE
        return _split(first, good, self.peers(wide))

    def _widen(self, n: int) -> int:
        """To how many others each of ``n`` records goes beside the ring peer: as many as the
        copies saved allow, one at least, all the others at most; those copies are spent."""
        wide = min(len(self._ring) - 2, max(1, self._budget // n))
        self._budget -= wide * n
        return wide

    def heard(self, rows: np.ndarray) -> np.ndarray:
        """The received ``rows`` to take in: relayed copies are unmarked, and kept only when
        they enter this leader's elite (so never twice). May modify ``rows``."""
        kind = rows["kind"]
        everyone = (kind & EVERYONE) != 0
        if everyone.any():
            rows["kind"] = kind = kind & ~EVERYONE
        relayed = (kind & RELAYED) != 0
        if not relayed.any():
            self._elite.learn(rows)
            keep = slice(None)
        else:
            rows["kind"] = kind & ~RELAYED
            keep = ~relayed
            self._elite.learn(rows[keep])
            copies = np.flatnonzero(relayed)
            keep[copies[self._elite.new(rows[copies])]] = True
            self._elite.learn(rows[copies])
        if everyone.any():
            self._elite.stop(rows["id"][everyone])  # every leader has them
        return rows[keep]


def _split(
    first: np.ndarray, extra: np.ndarray, ranks: list[int]
) -> list[tuple[np.ndarray, list[int]]]:
    """``first`` to the ring peer (``ranks[0]``), ``extra`` to the others."""
    return [(first, ranks[:1]), (extra, ranks[1:])]


def _with(rows: np.ndarray, relayed: np.ndarray | None) -> np.ndarray:
    """``rows`` and the ``relayed`` row after them (if any)."""
    if relayed is None:
        return rows
    out = np.empty(len(rows) + 1, dtype=rows.dtype)  # np.concatenate is 10x slower
    out[:-1] = rows
    out[-1:] = relayed
    return out
