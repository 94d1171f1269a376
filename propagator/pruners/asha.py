"""Asynchronous successive halving (ASHA; Li et al., 2020), as a stopping rule."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import PrunerSpec


@dataclass(frozen=True)
class ASHA(PrunerSpec):
    """An evaluation goes on past a rung when its loss there is among the best ``1/reduction``
    of the losses the island has seen at that rung, its own included: with ``n`` of them,
    it must not be worse than the ``max(1, n // reduction)``-th best. Alone at a rung it goes
    on; of two it must be the better (with ``reduction`` 3), and so on.

    Args:
        min_step: the first rung's step (default 1).
        reduction: the rungs' spacing and the share kept, ``1/reduction`` (default 3).
    """

    name = "asha"

    def keeps(self, loss: float, others: np.ndarray) -> bool:
        ranked = np.sort(np.append(others, loss))
        return bool(loss <= ranked[max(1, len(ranked) // self.reduction) - 1])

    def explain(self, loss: float, others: np.ndarray) -> str:
        n = len(others) + 1
        kept = max(1, n // self.reduction)
        return f"{loss:.6g} is not among the best {kept} of the {n} losses at this rung"
