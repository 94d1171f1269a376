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


def _rows(genes: np.ndarray, loss: np.ndarray | None = None) -> np.ndarray:
    """Float64 rows of ``genes`` with the ``loss`` columns after them (one array, so that a
    row's point key and record key are slices of the same bytes)."""
    n, d = genes.shape
    extra = None if loss is None else np.asarray(loss, dtype=np.float64)
    if extra is not None and extra.ndim == 1:
        extra = extra[:, None]
    rows = np.empty((n, d + (0 if extra is None else extra.shape[1])))
    rows[:, :d] = genes
    if extra is not None:
        rows[:, d:] = extra
    rows += 0.0  # -0.0 becomes 0.0: they decode alike and must compare equal
    return rows


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
        key = _rows(genes[None, :])[0].tobytes()
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
        d = genes.shape[1]
        for i, row in enumerate(_rows(genes, loss)):
            key = row.tobytes()
            point = key[: 8 * d]
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
