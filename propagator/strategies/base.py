"""The strategy interface: how a worker breeds its next candidate.

A strategy has two halves. The *spec* (a frozen dataclass such as :class:`GA`) holds the
user's settings and is what search files and the run store describe. ``spec.create`` builds
the *breeder* a worker uses: ``ask`` a gene vector from the island pool, ``tell`` it every
result the worker learns of (its own, its island peers' and immigrants). The island and
messaging code only see this interface, so any strategy can run on any island.

Genes are floats in ``[0, 1]``, one per non-constant parameter of the space (see
:mod:`propagator.space`); a breeder that wants to treat integers and categories as such reads
their levels from :func:`gene_levels`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

from ..space import Categorical, Int, Space
from .pool import Pool


class Breeder(ABC):
    """Per-worker breeding state.

    Attributes:
        pool_size: capacity of the island pool this breeder wants.
        model_based: its next candidate comes from a model fitted to every result (CMA-ES,
            TPE), so its island peers' latest results matter to it: the worker then sends
            each result to them at once instead of in batches (see :class:`Mailbox`).
        uses_pending: it reads :meth:`pending` (TPE); its worker then tells its island peers
            each candidate it starts to evaluate, in the message that carries its previous
            result (no extra message).
    """

    pool_size: int
    model_based: bool = False
    uses_pending: bool = False

    @abstractmethod
    def ask(self, pool: Pool, rng: np.random.Generator) -> np.ndarray:
        """A new candidate: a float vector of genes (values outside ``[0, 1]`` are clipped).

        Must draw all its randomness from ``rng`` so that a seeded run repeats.
        """

    def planned(self, ticket: int, run_seed: int) -> np.ndarray | None:
        """The genes this breeder fixed in advance for the run's evaluation ``ticket`` (its
        record id), or ``None`` (default) to be asked. A plan depends on the run's seed and
        the space only, so every worker of the run holds the same one, and the ticket, which
        the run grants to one worker only, deals each planned point to exactly one worker
        without a message (the portfolio's initial design, :mod:`.initial_design`)."""
        return None

    def pending(self, genes: np.ndarray) -> None:  # noqa: B027 - optional hook
        """The candidates the island's other workers are evaluating now, shape
        ``(k, n_genes)`` (the most recent few; replaces the previous set), called before each
        ``ask``: results still to come, which a model-based breeder should not propose again
        nor crowd (with workers asking at once, each would otherwise pick the region its
        peers are already in). Default: ignore."""

    def tell(self, genes: np.ndarray, loss: np.ndarray, ok: np.ndarray) -> None:  # noqa: B027
        """Learn from finished evaluations: ``genes`` of shape ``(n, n_genes)``, their
        ``loss`` (lower is better; NaN where not ``ok``) and ``ok`` flags, both of shape
        ``(n,)``. Called with the worker's own results, its island peers' and immigrants'
        (an immigrant may arrive more than once). Default: ignore."""


@dataclass(frozen=True)
class StrategySpec(ABC):
    """Settings of a strategy; subclasses are frozen dataclasses registered by ``name``."""

    name: ClassVar[str]
    # Can search several objectives at once (then ``create`` gets ``objectives`` and ``tell``
    # vectors of losses); a strategy that does not say so is refused for such a search.
    multi_objective: ClassVar[bool] = False

    @abstractmethod
    def create(self, space: Space, island_workers: int, objectives: int = 1) -> Breeder:
        """The breeder for one worker of an island with ``island_workers`` workers, for
        ``objectives`` objectives (with several, ``tell`` gets losses of shape
        ``(n, objectives)``)."""

    def check(self, space: Space) -> None:  # noqa: B027 - optional hook
        """Raise :class:`ConfigError` if this strategy cannot search ``space`` (called before
        any work, where the error reaches the user as one message). Default: any space."""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **asdict(self)}


def gene_levels(space: Space, max_levels: int = 100_000) -> list[np.ndarray | None]:
    """Per gene, the gene values at the centres of its discrete levels, ascending (``None``
    for a float parameter, and for an integer of more than ``max_levels`` values, which is as
    good as continuous). An ``Int`` has one level per integer (log-sized on a log scale), a
    ``Categorical`` one per choice; any gene in a level's bin decodes to that level's value."""
    params = space.params
    levels: list[np.ndarray | None] = []
    for name in space.genes:
        p = params[name]
        if isinstance(p, Int) and p.high - p.low >= max_levels:
            levels.append(None)
        elif isinstance(p, Int):
            levels.append(np.array([p.encode(v) for v in range(p.low, p.high + 1)]))
        elif isinstance(p, Categorical):
            m = len(p.choices)
            levels.append((np.arange(m) + 0.5) / m)
        else:
            levels.append(None)
    return levels


def reflect(genes: np.ndarray) -> np.ndarray:
    """Genes folded back into ``[0, 1]`` at the bounds (clipping would pile children there)."""
    x = np.abs(genes) % 2.0
    return np.where(x > 1.0, 2.0 - x, x)


def create_breeder(
    spec: StrategySpec, space: Space, island_workers: int, objectives: int = 1
) -> Breeder:
    """``spec``'s breeder; ``objectives`` is passed only when there are several, so that a
    strategy written for one objective (``create(space, island_workers)``) keeps working."""
    if objectives > 1:
        return spec.create(space, island_workers, objectives)
    return spec.create(space, island_workers)
