"""Filtering told records that a strategy has already learnt from.

With pollination the best records of an island are sent again and again, and a record that
left an island may come back; a strategy that keeps its own history must count each record
once, or a repeated immigrant would fill whole generations of CMA-ES or tilt TPE's densities.

``tell`` gets no record ids, so a record is recognised by its genes and loss together. That
also matches a genuine re-evaluation of the same point with the same loss (a deterministic
objective on a discrete space), which would then be lost; so the worker's own candidates
always count: they are told exactly once, by the worker itself. Only the repeats of other
workers' records are dropped, which in a small discrete space costs a strategy some of its
peers' information but never stalls it.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np


def _keys(genes: np.ndarray, loss: np.ndarray | None = None) -> list[bytes]:
    # + 0.0 turns -0.0 into 0.0: they decode alike and must compare equal
    rows = np.ascontiguousarray(genes, dtype=np.float64) + 0.0
    if loss is not None:
        rows = np.column_stack([rows, np.asarray(loss, dtype=np.float64) + 0.0])
    return [row.tobytes() for row in rows]


class SeenFilter:
    """Remembers the last ``capacity`` distinct records told, and the worker's own candidates
    not told yet.

    A record seen again moves to the back of the memory, so an immigrant that keeps arriving
    is never forgotten; memory is bounded (about 100 bytes plus the genes per record).

    Args:
        capacity: how many distinct records to remember (default 10,000).
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._asked: OrderedDict[bytes, int] = OrderedDict()

    def asked(self, genes: np.ndarray) -> None:
        """Note a candidate this worker asked for: its result counts when told."""
        (key,) = _keys(genes[None, :])
        self._asked[key] = self._asked.get(key, 0) + 1
        self._asked.move_to_end(key)
        if len(self._asked) > self._capacity:
            self._asked.popitem(last=False)

    def fresh(self, genes: np.ndarray, loss: np.ndarray) -> np.ndarray:
        """Which rows (``genes`` of shape ``(n, n_genes)``, ``loss`` of shape ``(n,)``) to
        learn from: the worker's own candidates, and records not told before (nor earlier in
        the same call). Marks them as seen."""
        out = np.ones(len(genes), dtype=bool)
        seen, asked = self._seen, self._asked
        for i, (point, key) in enumerate(zip(_keys(genes), _keys(genes, loss), strict=True)):
            own = asked.get(point, 0)
            if own:
                if own == 1:
                    del asked[point]
                else:
                    asked[point] = own - 1
            elif key in seen:
                seen.move_to_end(key)
                out[i] = False
                continue
            seen[key] = None
            seen.move_to_end(key)
            if len(seen) > self._capacity:
                seen.popitem(last=False)
        return out
