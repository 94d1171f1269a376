"""The pruner interface: when an evaluation is hopeless, from the values its island has seen.

A pruner watches a few *rungs*: geometric steps ``min_step · reduction^k``. Every record of an
evaluation carries the value it reported at each rung it reached (``Record.rungs``; at the
first report at or after the rung's step), so a worker learns every rung value of its island
from the records it receives anyway: its island peers' (finished or pruned), immigrants and,
on resume, the stored ones. No message is sent for pruning. The decision for a running
evaluation is taken when it reports the value of a rung, against the values of that rung the
worker knows of then.

This costs freshness: a rung value is known once its evaluation has finished (or was
pruned), not when it was reported. Early in a search, when few evaluations have finished,
pruning is therefore gentle; the decisions sharpen as the island's records come in.
Migration adds other islands' rung values with their immigrants; resume restores every stored
one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import ConfigError

RUNGS = 12  # rungs recorded per evaluation: min_step · reduction^0 .. ^11


@dataclass(frozen=True)
class PrunerSpec(ABC):
    """Settings of a pruner; subclasses are frozen dataclasses registered by ``name``.

    Args:
        min_step: the first rung's step (default 1).
        reduction: the factor between rungs' steps (default 3).
    """

    min_step: int = 1
    reduction: int = 3

    name: ClassVar[str]

    def __post_init__(self) -> None:
        for field, low in (("min_step", 1), ("reduction", 2)):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(
                    f"early_stopping.{field} must be an integer >= {low}, but got {value!r}"
                )

    def steps(self) -> np.ndarray:
        """The rungs' steps."""
        return self.min_step * self.reduction ** np.arange(RUNGS, dtype=np.int64)

    @abstractmethod
    def keeps(self, loss: float, others: np.ndarray) -> bool:
        """Whether an evaluation whose loss at a rung is ``loss`` goes on, given the losses
        the island's other evaluations had at that rung (lower is better)."""

    def explain(self, loss: float, others: np.ndarray) -> str:
        """Why :meth:`keeps` said stop, in words."""
        return f"{loss:.6g} is not good enough against {len(others)} others at this rung"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **asdict(self)}


def rung_values(reports: list[tuple[int, float]], steps: np.ndarray) -> np.ndarray:
    """An evaluation's value at each rung: that of its first report at or after the rung's
    step (NaN for rungs it did not reach)."""
    out = np.full(len(steps), np.nan)
    k = 0
    for step, value in reports:
        while k < len(steps) and step >= steps[k]:
            out[k] = value
            k += 1
    return out
