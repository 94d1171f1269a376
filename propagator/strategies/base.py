"""The strategy interface: how a worker breeds its next candidate.

A strategy has two halves. The *spec* (a frozen dataclass such as :class:`GA`) holds the
user's settings and is what search files and the run store describe. ``spec.create`` builds
the *breeder* a worker uses: ``ask`` a gene vector from the island pool, ``tell`` it every
result the worker learns of (its own and its island peers'). The island and messaging code only
see this interface, so any strategy can run on any island.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

from ..pool import Pool


class Breeder(ABC):
    """Per-worker breeding state.

    Attributes:
        pool_size: capacity of the island pool this breeder wants.
    """

    pool_size: int

    @abstractmethod
    def ask(self, pool: Pool, rng: np.random.Generator) -> np.ndarray:
        """A new candidate: a float vector of genes (values outside ``[0, 1]`` are clipped).

        Must draw all its randomness from ``rng`` so that a seeded run repeats.
        """

    def tell(self, genes: np.ndarray, loss: float, ok: bool) -> None:  # noqa: B027 - optional hook
        """Learn from a finished evaluation (``loss`` is NaN when not ``ok``). Default: ignore."""


@dataclass(frozen=True)
class StrategySpec(ABC):
    """Settings of a strategy; subclasses are frozen dataclasses registered by ``name``."""

    name: ClassVar[str]

    @abstractmethod
    def create(self, n_genes: int, island_workers: int) -> Breeder:
        """The breeder for one worker of an island with ``island_workers`` workers."""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **asdict(self)}
