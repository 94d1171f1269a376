"""How the ranks of a job form workers and islands (pure arithmetic, no MPI).

Ranks ``[w·k, (w+1)·k)`` form worker ``w`` (``k = ranks_per_worker``); the first rank of each
worker is its leader. Islands are contiguous blocks of workers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ConfigError


@dataclass(frozen=True)
class Layout:
    """Workers and islands of one job.

    Attributes:
        world_size: number of ranks.
        ranks_per_worker: ranks per worker (``k``).
        island_sizes: workers per island.
    """

    world_size: int
    ranks_per_worker: int
    island_sizes: tuple[int, ...]

    @property
    def n_workers(self) -> int:
        return self.world_size // self.ranks_per_worker

    @property
    def n_islands(self) -> int:
        return len(self.island_sizes)

    def island_start(self, island: int) -> int:
        """Index of the island's first worker."""
        return sum(self.island_sizes[:island])

    def island_workers(self, island: int) -> range:
        start = self.island_start(island)
        return range(start, start + self.island_sizes[island])

    def island_of(self, worker: int) -> int:
        for island in range(self.n_islands):
            if worker in self.island_workers(island):
                return island
        raise IndexError(f"worker {worker} out of range (there are {self.n_workers})")

    def describe(self) -> str:
        """A human-readable account, e.g. for ``propagate validate``."""
        k = self.ranks_per_worker
        lines = [
            f"{self.world_size} ranks -> {self.n_workers} workers of {k} rank{'s' * (k > 1)} "
            f"-> {self.n_islands} island{'s' * (self.n_islands > 1)}"
        ]
        for i in range(self.n_islands):
            ws = self.island_workers(i)
            lines.append(
                f"  island {i}: workers {ws.start}..{ws.stop - 1} "
                f"(ranks {ws.start * k}..{ws.stop * k - 1})"
            )
        return "\n".join(lines)


def make_layout(world_size: int, ranks_per_worker: int, islands: int | Sequence[int]) -> Layout:
    """Split ``world_size`` ranks into workers and islands.

    Args:
        world_size: number of ranks in the job.
        ranks_per_worker: ranks per worker; must divide ``world_size``.
        islands: number of equal-sized islands (the first ``workers % islands`` get one worker
            more), or explicit workers per island summing to the number of workers.

    Raises:
        ConfigError: with the numbers and how to fix them.
    """
    k = ranks_per_worker
    if world_size % k:
        raise ConfigError(
            f"the job has {world_size} ranks, which ranks_per_worker={k} does not divide; "
            f"run with a multiple of {k} ranks (e.g. mpirun -n {max(k, world_size // k * k)})"
        )
    n_workers = world_size // k
    if isinstance(islands, Sequence):
        sizes = tuple(int(n) for n in islands)
        if sum(sizes) != n_workers:
            raise ConfigError(
                f"islands {list(sizes)} hold {sum(sizes)} workers, but {world_size} ranks with "
                f"ranks_per_worker={k} make {n_workers} workers"
            )
    else:
        if islands > n_workers:
            raise ConfigError(
                f"islands={islands} needs at least {islands} workers, but {world_size} ranks "
                f"with ranks_per_worker={k} make only {n_workers}"
            )
        base, extra = divmod(n_workers, islands)
        sizes = tuple(base + (i < extra) for i in range(islands))
    return Layout(world_size, k, sizes)
