"""A worker's view of its island: the breeding pool, the strategy, and what has been evaluated.

Every record a worker learns of passes through here: its own results, its island peers',
immigrants from other islands and, on resume, the stored records of the island. The strategy
is told every one; the pool keeps the best successful ones. :meth:`Island.propose` never hands
out a configuration the island has already evaluated or has in flight: each proposal is
checked against the configurations this worker knows of (its own, immigrants, the stored
ones) and claimed in the island's claim table, which settles races between its workers.
"""

from __future__ import annotations

import logging

import numpy as np

from ..space import Space
from ..strategies import Breeder
from ..strategies.pareto import nsga2_order
from ..strategies.pool import ParetoPool, Pool
from .comm.claims import ClaimTable
from .population import Population
from .records import Kind, Status
from .seen import Seen
from .stopping import Rungs

_log = logging.getLogger("propagate")
_IMMIGRANT, _DEPARTED, _PENDING = int(Kind.IMMIGRANT), int(Kind.DEPARTED), int(Kind.PENDING)
_OK = int(Status.OK)
_BRED = 32  # proposals of the strategy to try before falling back to uniform samples
_SAMPLED = 64  # uniform samples to try before listing a small space's unseen configurations
# Peers' candidates in flight kept for the strategy (the most recent): bounds what each ask
# adds to a model (TPE adds one trial per pending point), and forgets a peer that died.
_MOST_PENDING = 16


class Island:
    """What one worker knows of its island.

    Args:
        space: the search space.
        breeder: this worker's strategy.
        dtype: the wire dtype.
        signs: per objective, +1 when minimising, -1 when maximising (turns metric values
            into losses); with several objectives the pool ranks records as NSGA-II does.
        seen: the configurations this worker knows of (``None``: repeats are allowed).
        claims: the island's claim table (with ``seen``; it is built after the island, so it
            may be set later).
        rungs: the island's rung values, for the pruner (``None`` without one).
        population: the island's PBT members (``None`` without PBT).
    """

    def __init__(
        self,
        space: Space,
        breeder: Breeder,
        dtype: np.dtype,
        signs: np.ndarray,
        seen: Seen | None,
        claims: ClaimTable | None = None,
        rungs: Rungs | None = None,
        population: Population | None = None,
    ) -> None:
        self.pool = (ParetoPool if len(signs) > 1 else Pool)(breeder.pool_size, dtype)
        self.seen = seen
        self.claims = claims
        self.rungs = rungs
        self.population = population
        self.duplicates_avoided = 0
        self.immigrants_received = 0
        self.heard_success = False  # a peer or an immigrant succeeded
        self.pending_heard = 0  # peers' candidates announced while in flight
        self._pending: dict[int, np.ndarray] = {}  # their record ids -> genes, oldest first
        self._dim = space.dim
        self._breeder = breeder
        self._learns = type(breeder).tell is not Breeder.tell
        self._signs = np.asarray(signs, dtype=np.float64)

    @property
    def model_based(self) -> bool:
        """Whether the strategy fits a model to every result (see :class:`Breeder`)."""
        return self._breeder.model_based

    @property
    def uses_pending(self) -> bool:
        """Whether the strategy reads its peers' candidates in flight (see :class:`Breeder`)."""
        return self._breeder.uses_pending

    def propose(
        self, rng: np.random.Generator, ticket: int = -1, run_seed: int = 0
    ) -> np.ndarray | None:
        """The next candidate's genes (in ``[0, 1]``), claimed for this worker; ``None`` when
        the island has evaluated every configuration of the space. ``ticket`` is the record
        id the candidate will have (-1: none), for a strategy's plan built from ``run_seed``
        (:meth:`Breeder.planned`); a planned point already taken is replaced by an ask."""
        if self._breeder.uses_pending:
            held = list(self._pending.values())
            self._breeder.pending(np.array(held) if held else np.zeros((0, self._dim)))
        planned = self._breeder.planned(ticket, run_seed) if ticket >= 0 else None
        if planned is not None and (self.seen is None or self._take(planned)):
            return planned  # a design point lies in [0, 1] already
        for _ in range(_BRED):
            # a strategy may step outside [0, 1] (np.clip is slower on a few genes)
            genes = np.minimum(np.maximum(self._breeder.ask(self.pool, rng), 0.0), 1.0)
            if self.seen is None or self._take(genes):
                return genes
            self.duplicates_avoided += 1
        for _ in range(_SAMPLED):
            genes = rng.random(self._dim)
            if self._take(genes):
                return genes
        while (genes := self.seen.unseen(rng)) is not None:
            if self._take(genes):
                return genes
        return None

    def reserve(self, genes: np.ndarray) -> None:
        """Mark a configuration given from outside (an initial one) as this worker's."""
        if self.seen is not None:
            self._take(genes)

    def _take(self, genes: np.ndarray) -> bool:
        """Claim a configuration unless it is known to be taken."""
        key = self.seen.key(genes)
        if not self.seen.add(key):
            return False
        # a claim is an MPI round trip to the table's host, spared where no peer can collide
        return self.claims is None or self.seen.private(genes) or self.claims.claim(key)

    def learn(self, row: np.void) -> None:
        """This worker's own finished evaluation (its configuration is already seen)."""
        rows = row[None]
        self._watch(rows)
        # one row: scalar work instead of _losses' array expressions (the hot path)
        ok = row["status"] == _OK
        loss = row["values"] * self._signs if ok else np.full(len(self._signs), np.nan)
        if len(loss) == 1:
            loss = loss[0]
        if ok:
            self.pool.offer(row, loss)
        if self._learns:  # a failure's loss is NaN, and a pruned evaluation's
            self._breeder.tell(rows["genes"], np.array([loss]), np.array([ok]))

    def seed(self, rows: np.ndarray) -> np.ndarray:
        """Start from the stored records of earlier sessions of this run on this island;
        returns their configuration keys (none when repeats are allowed)."""
        keys = np.zeros(0, dtype=np.int64)
        if not len(rows):
            return keys
        # A confirmation repeats a configuration the search chose: no parent, no new evidence
        # for a strategy's model beyond its first evaluation.
        confirmation = rows["kind"] == int(Kind.CONFIRMATION)
        if confirmation.any():
            if self.seen is not None:
                self.seen.add_all(rows["genes"][confirmation])
            rows = rows[~confirmation]
        ok, loss = self._offer_best(rows)
        if self.seen is not None:
            keys = self.seen.add_all(rows["genes"])
        self._watch(rows)
        if self._learns:
            self._breeder.tell(rows["genes"], loss, ok)
        self.heard_success = self.heard_success or bool(ok.any())
        return keys

    def _hold(self, rows: np.ndarray) -> None:
        """Keep peers' candidates in flight until their results arrive (a sender's result
        always follows its announcement)."""
        self.pending_heard += len(rows)
        for record_id, genes in zip(rows["id"].tolist(), rows["genes"], strict=True):
            self._pending[record_id] = genes.copy()
        while len(self._pending) > _MOST_PENDING:
            del self._pending[next(iter(self._pending))]

    def _watch(self, rows: np.ndarray) -> None:
        """Records for the pruner's rungs and the PBT population."""
        if self.rungs is not None:
            self.rungs.learn(rows)
        if self.population is not None:
            self.population.learn(rows)

    def seed_warm(self, rows: np.ndarray) -> None:
        """Start from another search's records (a warm start): they enter the pool and the
        strategy, but not the seen configurations (here they may be evaluated again)."""
        ok, loss = self._offer_best(rows)
        if self._learns and len(rows):
            self._breeder.tell(rows["genes"], loss, ok)

    def _offer_best(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Offer the best successful rows to the pool; their ok flags and losses (NaN where
        not ok)."""
        ok, loss = self._losses(rows)
        good = np.flatnonzero(ok)
        order = nsga2_order(loss[good]) if loss.ndim == 2 else np.argsort(loss[good], kind="stable")
        for i in good[order][: self.pool.capacity]:
            self.pool.offer(rows[i], loss[i])
        return ok, loss

    def _losses(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Which rows succeeded, and their losses: shape ``(n,)``, or ``(n, objectives)``
        with several; NaN where not successful."""
        ok = rows["status"] == _OK
        loss = np.where(ok[:, None], rows["values"] * self._signs, np.nan)
        return ok, loss if len(self._signs) > 1 else loss[:, 0]

    def absorb(self, rows: np.ndarray) -> None:
        """Apply records that arrived: island peers' results, immigrants, departures
        (records that migrated away from a peer's pool) and peers' candidates in flight."""
        kind = rows["kind"]
        pending = kind == _PENDING
        if pending.any():
            self._hold(rows[pending])
            rows, kind = rows[~pending], kind[~pending]
        if self._pending:
            for record_id in rows["id"]:
                self._pending.pop(int(record_id), None)
        departed = kind == _DEPARTED
        if departed.any():
            for record_id in rows["id"][departed]:
                self.pool.remove(record_id)
            rows, kind = rows[~departed], kind[~departed]
        if not len(rows):
            return
        self._watch(rows)
        immigrant = kind == _IMMIGRANT
        if self.seen is not None and immigrant.any():
            # Immigrants are not in this island's claim table; island peers' results are, or
            # are private (Seen.private).
            self.seen.add_all(rows["genes"][immigrant])
        ok, loss = self._losses(rows)
        if self._learns:
            self._breeder.tell(rows["genes"], loss, ok)
        if not ok.any():
            return
        self.heard_success = True
        self.immigrants_received += int(np.count_nonzero(immigrant & ok))
        pool = self.pool
        # Only rows that would enter the pool are worth a Python-level loop (with several
        # objectives the pool's ranking decides).
        worst = pool.loss.max() if len(pool) == pool.capacity and loss.ndim == 1 else np.inf
        maybe = ok if loss.ndim == 2 else ok & (immigrant | (loss < worst))
        for i in np.flatnonzero(maybe):
            if immigrant[i]:
                pool.replace_worst(rows[i], loss[i])
            else:
                pool.offer(rows[i], loss[i])
