"""The bounded breeding pool of one worker's view of its island."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .pareto import nsga2_order


class Pool:
    """The best ``capacity`` successful records this worker knows of on its island.

    Every operation is O(capacity · genes) at most, independent of how many evaluations the
    search has done. Rows are wire records; ``loss`` is the value to minimise (the metric,
    negated when maximising). Failed evaluations never enter.

    Args:
        capacity: maximum number of members (the GA's population size).
        dtype: the wire dtype of the rows.
    """

    def __init__(self, capacity: int, dtype: np.dtype) -> None:
        if capacity < 1:
            raise ValueError(f"pool capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._rows = np.zeros(capacity, dtype=dtype)
        self._loss = np.full(capacity, np.inf)
        self._n = 0
        self._ids: set[int] = set()
        self._bar: float | None = None  # bar() until the members change

    def __len__(self) -> int:
        return self._n

    @property
    def rows(self) -> np.ndarray:
        """The members (a view: do not keep it across updates)."""
        return self._rows[: self._n]

    @property
    def genes(self) -> np.ndarray:
        """Member genes, shape ``(len(pool), n_genes)`` (a view)."""
        return self._rows["genes"][: self._n]

    @property
    def loss(self) -> np.ndarray:
        """Member losses, lower is better (a view)."""
        return self._loss[: self._n]

    def offer(self, row: np.void, loss: float) -> bool:
        """Add ``row`` if there is room or it beats the worst member. Returns whether it entered."""
        return self._add(row, loss, always=False)

    def replace_worst(self, row: np.void, loss: float) -> bool:
        """Add ``row`` unconditionally, evicting the worst member when full (immigration)."""
        return self._add(row, loss, always=True)

    def remove(self, record_id: int) -> bool:
        """Drop the member with this id (it migrated away). Returns whether it was there."""
        record_id = int(record_id)
        if record_id not in self._ids:
            return False
        i = int(np.flatnonzero(self._rows["id"][: self._n] == record_id)[0])
        last = self._n - 1
        self._rows[i] = self._rows[last]
        self._loss[i] = self._loss[last]
        self._loss[last] = np.inf
        self._n = last
        self._ids.discard(record_id)
        self._bar = None
        return True

    def best(self, k: int, eligible: np.ndarray | None = None) -> np.ndarray:
        """Copies of the ``k`` best members (among ``eligible``, a boolean mask), best first."""
        candidates = np.arange(self._n) if eligible is None else np.flatnonzero(eligible)
        order = candidates[np.argsort(self._loss[candidates], kind="stable")[:k]]
        return self._rows[order]

    def bar(self) -> Any:
        """What a new record must beat to enter the pool now (see :meth:`passes`)."""
        if self._bar is None:  # asked on every breeding step; most offers change nothing
            self._bar = float(self.loss.max()) if self._n else math.inf
        return self._bar

    @staticmethod
    def passes(bar: Any, loss: Any) -> bool:
        """Whether a record with ``loss`` beats ``bar`` (from :meth:`bar`), so would have
        entered the pool then: a strategy's measure of success."""
        return bool(loss < bar)

    def _add(self, row: np.void, loss: float, always: bool) -> bool:
        record_id = int(row["id"])
        if record_id in self._ids:
            return False
        if self._n < self.capacity:
            i = self._n
            self._n += 1
        else:
            i = int(self._loss[: self._n].argmax())
            if not always and not loss < self._loss[i]:
                return False
            self._ids.discard(int(self._rows["id"][i]))
        self._rows[i] = row
        self._loss[i] = loss
        self._ids.add(record_id)
        self._bar = None
        return True


class ParetoPool(Pool):
    """The island pool of a search with several objectives: the ``capacity`` records NSGA-II
    ranks best (by non-dominated front, then crowding distance; see :mod:`.pareto`).

    ``offer`` and ``replace_worst`` take each record's vector of losses; :attr:`loss` is then
    each member's place in that order (0 the best), so that what reads a pool by its losses
    (migration's best, the GA's elitism) reads it by NSGA-II's ranking. :attr:`losses` has the
    vectors.
    """

    def __init__(self, capacity: int, dtype: np.dtype) -> None:
        super().__init__(capacity, dtype)
        self._losses = np.zeros((capacity, dtype["values"].shape[0]))

    @property
    def losses(self) -> np.ndarray:
        """Member losses, shape ``(len(pool), n_objectives)`` (a view)."""
        return self._losses[: self._n]

    def bar(self) -> np.ndarray:
        """The members' losses: a new record succeeds when none of them dominates it."""
        return self.losses.copy()

    @staticmethod
    def passes(bar: np.ndarray, loss: np.ndarray) -> bool:
        dominated = (bar <= loss).all(axis=1) & (bar < loss).any(axis=1)
        return bool(np.isfinite(loss).all() and not dominated.any())

    def remove(self, record_id: int) -> bool:
        record_id = int(record_id)
        if record_id not in self._ids:
            return False
        i = int(np.flatnonzero(self._rows["id"][: self._n] == record_id)[0])
        self._losses[i] = self._losses[self._n - 1]
        super().remove(record_id)
        self._rank()
        return True

    def _add(self, row: np.void, loss: float, always: bool) -> bool:
        record_id = int(row["id"])
        if record_id in self._ids:
            return False
        losses = np.asarray(loss, dtype=np.float64)
        if self._n < self.capacity:
            i = self._n
            self._n += 1
        else:
            candidates = np.vstack([self.losses, losses])
            order = nsga2_order(candidates)
            worst = int(order[-1]) if not always or order[-1] != self._n else int(order[-2])
            if worst == self._n:  # the newcomer ranks last: it does not enter
                return False
            i = worst
            self._ids.discard(int(self._rows["id"][i]))
        self._rows[i] = row
        self._losses[i] = losses
        self._ids.add(record_id)
        self._rank()
        return True

    def _rank(self) -> None:
        place = np.empty(self._n)
        place[nsga2_order(self.losses)] = np.arange(self._n)
        self._loss[: self._n] = place
