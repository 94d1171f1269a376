"""Uniform random search: the baseline every other strategy must beat."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..space import Space
from .base import Breeder, StrategySpec
from .pool import Pool


class _RandomBreeder(Breeder):
    pool_size = 16

    def __init__(self, n_genes: int) -> None:
        self._n = n_genes

    def ask(self, pool: Pool, rng: np.random.Generator) -> np.ndarray:
        return rng.random(self._n)


@dataclass(frozen=True)
class Random(StrategySpec):
    """Sample every candidate uniformly (log-uniformly for ``log`` parameters)."""

    name = "random"
    multi_objective = True

    def create(self, space: Space, island_workers: int, objectives: int = 1) -> Breeder:
        return _RandomBreeder(space.dim)
