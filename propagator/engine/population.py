"""PBT: an island's population, as a worker knows it: each member's last segment, and whom a
member in the worst quantile copies."""

from __future__ import annotations

import numpy as np

from .records import Status

_PAUSED = int(Status.PAUSED)


class Population:
    """The live members a worker knows of: per member, its latest segment's record (those of
    its island peers, immigrants and its own; a member whose segment ended otherwise than
    paused, complete, failed or pruned, has left).

    Args:
        sign: +1 when minimising, -1 when maximising.
        quantile: the share at the bottom that copies from the same share at the top.
    """

    def __init__(self, sign: float, quantile: float) -> None:
        self._sign = sign
        self._quantile = quantile
        self._latest: dict[int, np.void] = {}  # member -> its latest segment's row

    def __len__(self) -> int:
        return len(self._latest)

    def learn(self, rows: np.ndarray) -> None:
        """Take in segment records (any order; a member's later segment replaces its
        earlier one, and one that ended otherwise than paused removes it)."""
        for row in rows:
            member = int(row["member"])
            if member < 0:
                continue
            known = self._latest.get(member)
            if known is not None and (known["end"], known["id"]) > (row["end"], row["id"]):
                continue
            if int(row["status"]) == _PAUSED:
                self._latest[member] = row.copy()
            else:
                self._latest.pop(member, None)

    def forget(self, member: int) -> None:
        """A member that can no longer be copied (its saved training is gone)."""
        self._latest.pop(member, None)

    def best(self) -> np.ndarray:
        """The members' latest segments, best first (ties by id)."""
        if not self._latest:
            return np.zeros(0)
        rows = np.array(list(self._latest.values()))
        return rows[self._order(rows)]

    def _order(self, rows: np.ndarray) -> np.ndarray:
        losses = self._sign * rows["values"][:, 0]
        return np.lexsort((rows["id"], np.where(np.isnan(losses), np.inf, losses)))

    def source(self, member: int, rng: np.random.Generator) -> np.void | None:
        """The segment ``member`` copies: one of the best ``quantile`` drawn at random when it
        ranks among the worst ``quantile`` of the members known; else ``None`` (it goes on
        with its own). Ties rank by id, so every worker sees the same order."""
        if member not in self._latest or len(self._latest) < 2:
            return None
        ranked = self.best()
        k = max(1, int(len(ranked) * self._quantile))
        if member not in ranked["member"][-k:]:
            return None
        return ranked[int(rng.integers(k))]
