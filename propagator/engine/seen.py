"""The configurations an island has evaluated or has in flight, so that none is evaluated twice.

A configuration is what the objective gets: the decoded params after conditions. Two gene
vectors that decode to the same params (genes of an inactive parameter, two genes in the same
integer or category bin) are the same configuration. Each is kept as a 64-bit hash of its
decoded params: each active parameter's position and value (a category by its choice's index),
as float64 bytes, hashed with BLAKE2b. The key is the same in every process, so that workers
compare keys through the island's claim table (:mod:`.comm.claims`), and as good as random: two
of a million configurations share one with a probability of 3e-8. (Python's own ``hash`` is
neither: a string's differs between processes, and ``hash(-1) == hash(-2)``.) A check is O(1)
and costs one decode; in a space of floats without conditions, where different genes always
mean different params, the genes themselves are hashed. The keys are kept exactly, whatever
their number, in a flat table of 12 to 24 bytes per key (:class:`.keyset.KeySet`; a Python
set took 148).
"""

from __future__ import annotations

import hashlib
import itertools
import math

import numpy as np

from ..space import Categorical, Float, Space
from ..space.params import choice_key
from ..strategies.base import gene_levels
from .keyset import KeySet

ENUMERABLE = 200_000  # grid points at most, for listing a small discrete space's configurations


class Seen:
    """A set of configurations of ``space``.

    Args:
        space: the search space.
    """

    def __init__(self, space: Space) -> None:
        self._space = space
        params = space.params
        self._genes_decide = all(
            isinstance(params[n], Float) and params[n].when is None for n in space.genes
        ) and all(p.when is None for p in params.values())
        # Per parameter with a gene: its position, and its choices' indices for a category.
        self._position = {name: i for i, name in enumerate(space.genes)}
        self._choice = {
            name: {choice_key(c): i for i, c in enumerate(p.choices)}
            for name, p in params.items()
            if isinstance(p, Categorical)
        }
        self._keys = KeySet()
        self._grid: dict[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def nbytes(self) -> int:
        """Bytes the keys take (12 to 24 per key)."""
        return self._keys.nbytes

    def key(self, genes: np.ndarray) -> int:
        """The configuration ``genes`` decodes to, as a 64-bit hash (the same in every
        process)."""
        if self._genes_decide:
            data = np.ascontiguousarray(genes, dtype=np.float64).tobytes()
        else:
            position, choice = self._position, self._choice
            data = np.array(
                [
                    (position[name], choice[name][choice_key(v)] if name in choice else v)
                    for name, v in self._space.decode(genes).items()
                    if name in position
                ],
                dtype=np.float64,
            ).tobytes()
        return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little", signed=True)

    def private(self, genes: np.ndarray) -> bool:
        """Whether no other worker can hold ``genes``' configuration except by drawing the
        same 64-bit floats: a space of floats without conditions and every gene strictly
        inside ``(0, 1)`` (a strategy may clip a gene to a bound, where two workers meet).
        Such a configuration needs no claim in the island's table."""
        return (
            self._genes_decide
            and self._space.dim > 0
            and all(0.0 < g < 1.0 for g in genes.tolist())
        )

    def __contains__(self, key: int) -> bool:
        return key in self._keys

    def add(self, key: int) -> bool:
        """Add a configuration by its :meth:`key`; whether it was new."""
        return self._keys.add(key)

    def add_all(self, genes: np.ndarray) -> np.ndarray:
        """Add the configurations of the rows of a 2-D array of genes; their keys."""
        keys = [self.key(g) for g in genes]
        self._keys.update(keys)
        return np.array(keys, dtype=np.int64)

    def size(self) -> int | None:
        """How many configurations the space has, when it is discrete and small enough to
        list (see :data:`ENUMERABLE`); ``None`` otherwise."""
        grid = self._listed()
        return None if grid is None else len(grid)

    def unseen(self, rng: np.random.Generator) -> np.ndarray | None:
        """Genes of a configuration not in the set, drawn uniformly among them, for a space
        small enough to list; ``None`` when every configuration is in the set or the space
        cannot be listed."""
        grid = self._listed()
        if grid is None:
            return None
        left = [k for k in grid if k not in self._keys]
        if not left:
            return None
        return grid[left[int(rng.integers(len(left)))]].copy()

    def _listed(self) -> dict[int, np.ndarray] | None:
        """Every configuration of a small discrete space, by key (built once)."""
        if self._grid is not None:
            return self._grid
        levels = gene_levels(self._space)
        if any(lv is None for lv in levels):
            return None
        if math.prod(len(lv) for lv in levels) > ENUMERABLE:
            return None
        grid: dict[int, np.ndarray] = {}
        for point in itertools.product(*levels):
            genes = np.array(point, dtype=np.float64)
            grid.setdefault(self.key(genes), genes)
        self._grid = grid
        return grid
