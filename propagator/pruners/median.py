"""The median stopping rule (Golovin et al., 2017), at the rungs' steps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from .base import PrunerSpec


@dataclass(frozen=True)
class Median(PrunerSpec):
    """An evaluation stops at a rung when its loss there is worse than the median of the
    losses the island's other evaluations had at that rung, once at least ``warmup`` of them
    are known.

    Args:
        min_step: the first rung's step (default 1).
        reduction: the factor between rungs' steps (default 3).
        warmup: other evaluations a rung needs before anything is stopped there (default 5).
    """

    warmup: int = 5

    name = "median"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.warmup, int) or isinstance(self.warmup, bool) or self.warmup < 1:
            raise ConfigError(
                f"early_stopping.warmup must be an integer >= 1, but got {self.warmup!r}"
            )

    def keeps(self, loss: float, others: np.ndarray) -> bool:
        return len(others) < self.warmup or bool(loss <= np.median(others))

    def cutoff(self, values: np.ndarray) -> float:
        # a loss at or below the median of all stays at or below that of the others
        return np.inf if len(values) - 1 < self.warmup else float(np.median(values))

    def explain(self, loss: float, others: np.ndarray) -> str:
        return f"{loss:.6g} is worse than the median {np.median(others):.6g} of {len(others)}"
