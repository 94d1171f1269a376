"""The portfolio: several strategies sharing an island, effort shifting to those that succeed.

Every member is told every result, so each keeps a full picture of the island; at each ask
one member breeds. Which one is drawn by adaptive pursuit (Thierens 2005): each member's
recent success rate is an exponentially weighted mean of "its child entered the pool"
(starting at 1/2), and at every ask the shares move a step ``pursuit`` toward giving the
member with the best rate all but ``floor`` of the asks, the others ``floor / members`` each
(members tied for the best rate split the leader's part, so the equal starting rates favour
none). When the island refuses a child as a duplicate and asks again (nothing is told in
between), a member is drawn again but the shares stay: they step once per candidate, not once
per try.
A strategy that stops improving fades but is still tried now and then, and takes over again
when the landscape turns in its favour (as TPE on a rugged start, CMA-ES near a smooth
optimum). Pursuit replaced shares proportional to the rates, which left two members that
both succeed about a fifth of the time (the GA's 1/5th rule, CMA-ES's step size control)
at half the asks each however fast either converged: over 15 seeds of the 14 functions
(``jobs/bench/quality.py --seeds 15``) pursuit found the better median on 10 and the worse
on 3, rosenbrock 3.6e-8 against 8.1e-3.

The default members (``members: auto``) follow the space: the GA and CMA-ES always; the
local quadratic models (:mod:`.quadratic`) too on spaces of at most 10 float genes; TPE too
where the space has categorical or conditional parameters. Measured with
``jobs/bench/quality.py`` (2 ranks, median of 5 seeds): on the 14 continuous functions the GA
and CMA-ES with a floor of 0.1 beat Propulate on 12 and sequential Optuna TPE on 12, while the
three with TPE beat them on 9 and 12 (TPE's share slows the convergence there); on the
categorical and conditional problems (a NAS cell, a tabular MLP grid, a mixed conditional
space) the mix with TPE found the better configurations (NAS cell regret 0.29 against 0.59 at
50 evaluations). Adding the quadratic models took the smooth functions of up to 10 genes
from CMA-ES's 1e-10 to 1e-16 to 1e-22 and below (sphere, rosenbrock, eggcrate, himmelblau;
15 seeds: better on 8 functions, worse on 5, schwefel 727 against 602 the largest loss).

With 8 or more workers on an island (``MODEL_WORKERS``), ``auto`` on categorical or
conditional spaces is TPE and CMA-ES alone. Each worker's portfolio adapts on its own
children only, about ``budget / workers`` asks, and pursuit needs about ten to follow a
leader: at 8 workers and 50-100 evaluations the shares barely leave a third each, and the
GA's third went to breeding from a pool still filling. Measured (``jobs/bench/quality.py
--set discrete --seeds 10``, the 12 discrete, mixed and conditional problems, wins-ties-
losses of the median regret at 50 / 100 evaluations), TPE and CMA-ES against the GA, CMA-ES
and TPE: at 8 workers 11-0-1 / 8-4-0 and, rerun, 7-1-4 / 8-4-0; at 4 workers 5-3-4 /
3-4-5; at 2 workers 1-5-6 / 1-6-5, where the GA's share pays. Starting the shares with TPE
in the lead instead (its rate one success ahead) was worse at 2 workers (4-4-4 / 2-6-4)
and behind TPE and CMA-ES at 8 (5-1-6 / 1-5-6). Budgets above 100 evaluations on such
spaces were not measured at 8 workers.

With several islands, ``members: auto`` gives every island this same portfolio (the
space's members, shared by the island's steps as on one island): each island adapts its own
shares, and migration carries the best configurations between them. It replaced dealing the
fixed ga, cmaes, tpe one per island whatever the space (TPE on continuous spaces, never the
quadratic models), and beat dealing the space's members instead:
``jobs/bench/portfolio_islands.py --seeds 8`` on the 14 functions (one worker per island,
500 evaluations in all), its medians against the fixed deal won 10, tied 1 and lost 3 at 2
and at 4 islands (Mann-Whitney p < 0.05: better on 9 and 6, worse on 0 and 1, schwefel at 4
islands 873 against 563), against the space's members dealt 10-2-2 and 11-1-2 (better on 2,
worse on none); on the discrete set (12 seeds; there the members are ga, cmaes, tpe
either way) no difference was significant. A list of members given explicitly is dealt out
among the islands (island ``i`` gets members ``i, i + islands, ...``; see :func:`deal`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..space import Categorical, Space
from .base import Breeder, StrategySpec, create_breeder, gene_levels
from .checks import is_int, require
from .initial_design import auto_size, initial_design
from .pool import Pool

DEFAULT_MEMBERS = ("ga", "cmaes", "tpe")  # "auto" on categorical or conditional spaces
MODEL_MEMBERS = ("tpe", "cmaes")  # ... with at least MODEL_WORKERS workers on the island
MODEL_WORKERS = 8
QUADRATIC_GENES = 10  # "auto" adds the local quadratic models on up to this many float genes
AUTO = "auto"


class _PortfolioBreeder(Breeder):
    def __init__(self, members: list[Breeder], spec: Portfolio, space: Space, design: int) -> None:
        self._members = members
        # The GA breeds from the pool and wants it small (elitist); the model-based members
        # keep their own history and ignore it.
        self.pool_size = min(m.pool_size for m in members)
        self.model_based = any(m.model_based for m in members)
        self.uses_pending = any(m.uses_pending for m in members)
        self._learns = [type(m).tell is not Breeder.tell for m in members]
        self._rate = np.full(len(members), 0.5)
        self._share = np.full(len(members), 1.0 / len(members))
        self._memory = spec.memory
        self._floor = spec.floor
        self._pursuit = spec.pursuit
        self._space = space
        self._design_size = design
        self._design: tuple[int, np.ndarray] | None = None  # (run seed, the points)
        self._asked: tuple[int, np.ndarray, Any, Any] | None = None  # member, child, bar, passes
        # Whether a result arrived since the last ask: the island re-asks (after a duplicate)
        # without telling anything in between, and it tells every result it evaluates.
        self._told = True

    def ask(self, pool: Pool, rng: np.random.Generator) -> np.ndarray:
        k = len(self._members)
        if self._told:
            best = self._rate == self._rate.max()
            target = self._floor / k + best * (1.0 - self._floor) / np.count_nonzero(best)
            self._share += self._pursuit * (target - self._share)
            self._told = False
        p = self._share
        member = int(min(np.searchsorted(np.cumsum(p), rng.random() * p.sum()), k - 1))
        child = np.asarray(self._members[member].ask(pool, rng), dtype=np.float64)
        self._asked = (member, np.clip(child, 0.0, 1.0), pool.bar(), pool.passes)
        return child

    def planned(self, ticket: int, run_seed: int) -> np.ndarray | None:
        if not 0 <= ticket < self._design_size:
            return None
        if self._design is None or self._design[0] != run_seed:
            self._design = (run_seed, initial_design(self._space, self._design_size, run_seed))
        return self._design[1][ticket].copy()

    def pending(self, genes: np.ndarray) -> None:
        for member in self._members:
            if member.uses_pending:
                member.pending(genes)

    def tell(self, genes: np.ndarray, loss: np.ndarray, ok: np.ndarray) -> None:
        for member, learns in zip(self._members, self._learns, strict=True):
            if learns:
                member.tell(genes, loss, ok)
        if not len(genes):
            return
        self._told = True
        if self._asked is None:
            return
        member, child, bar, passes = self._asked
        for i in np.flatnonzero((genes == child).all(axis=1)):
            success = bool(ok[i]) and passes(bar, loss[i])
            self._rate[member] += (1.0 - self._memory) * (success - self._rate[member])
            self._asked = None
            return

    @property
    def shares(self) -> np.ndarray:
        """Each member's current probability of breeding (for reports and tests)."""
        return self._share.copy()


@dataclass(frozen=True)
class Portfolio(StrategySpec):
    """Several strategies on one island, each ask bred by one of them (see the module).

    Args:
        members: the strategies, as names, mappings or specs, or ``"auto"`` (default): GA
            and CMA-ES; the quadratic models too on at most 10 float parameters; TPE too
            when the space has categorical or conditional parameters, and then TPE and
            CMA-ES alone with 8 or more workers on the island. With several islands
            every island runs all of ``"auto"``'s members; an explicit list is dealt out.
        memory: weight of the past in each member's success rate per result (default 0.9:
            about the last ten of its children count).
        floor: share of the asks made uniformly, whatever the success rates (default 0.1).
        pursuit: how far the shares move toward the best member's at each ask, in ``(0, 1]``
            (default 0.1: about ten asks to follow a change of leader).
        design: how many of the run's first evaluations come from its initial design
            (:mod:`.initial_design`: a Latin hypercube over the space, even over each
            parameter's levels and over the points where a conditional one is active), dealt
            by record id among all the run's workers, before the members breed; ``"auto"``:
            ``max(4, 2 × workers on the island)``, the uniform draws it replaces (see
            :func:`.initial_design.auto_size`); 0 (default): none. Off by default because it
            measured level with those draws, not better (6 discrete problems at 50 and 100
            evaluations on 2 and 8 ranks, 5-10 seeds: 11-4-9 in all, one significant win).
    """

    members: tuple | str = AUTO
    memory: float = 0.9
    floor: float = 0.1
    pursuit: float = 0.1
    design: int | str = 0

    name = "portfolio"

    def __post_init__(self) -> None:
        from . import make_strategy  # the registry imports this module

        if self.members != AUTO:
            object.__setattr__(self, "members", _specs(self.members, make_strategy))
        for field, value in (
            ("memory", self.memory),
            ("floor", self.floor),
            ("pursuit", self.pursuit),
        ):
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ConfigError(f"strategy.{field} must be a number, but got {value!r}")
        if not 0.0 <= self.memory < 1.0:
            raise ConfigError(f"strategy.memory must be in [0, 1), but got {self.memory!r}")
        if not 0.0 <= self.floor <= 1.0:
            raise ConfigError(f"strategy.floor must be in [0, 1], but got {self.floor!r}")
        if not 0.0 < self.pursuit <= 1.0:
            raise ConfigError(f"strategy.pursuit must be in (0, 1], but got {self.pursuit!r}")
        d = self.design
        require(d == AUTO or (is_int(d) and d >= 0), "design", "'auto' or an integer >= 0", d)

    def members_for(
        self, space: Space, objectives: int = 1, island_workers: int = 1
    ) -> tuple[StrategySpec, ...]:
        """The members that search ``space`` with ``island_workers`` workers on the island
        (``"auto"`` resolved; with several objectives only members that handle them)."""
        if self.members != AUTO:
            return self.members
        from . import make_strategy

        structured = any(
            isinstance(p, Categorical) or p.when is not None for p in space.params.values()
        )
        if structured and objectives == 1 and island_workers >= MODEL_WORKERS:
            names = MODEL_MEMBERS
        elif structured or objectives > 1:
            names = DEFAULT_MEMBERS
        elif 0 < space.dim <= QUADRATIC_GENES and all(g is None for g in gene_levels(space)):
            names = ("ga", "cmaes", "quadratic")
        else:
            names = ("ga", "cmaes")
        members = tuple(make_strategy(name) for name in names)
        return tuple(m for m in members if objectives == 1 or m.multi_objective)

    def check(self, space: Space) -> None:
        for member in self.members_for(space):
            member.check(space)

    def create(self, space: Space, island_workers: int, objectives: int = 1) -> Breeder:
        members = self.members_for(space, objectives, island_workers)
        breeders = [create_breeder(m, space, island_workers, objectives) for m in members]
        design = auto_size(space, island_workers) if self.design == AUTO else int(self.design)
        return _PortfolioBreeder(breeders, self, space, design)

    @property
    def multi_objective(self) -> bool:  # type: ignore[override]
        return self.members == AUTO or all(m.multi_objective for m in self.members)

    def to_dict(self) -> dict:
        members = self.members if self.members == AUTO else [m.to_dict() for m in self.members]
        return {
            "name": self.name,
            "members": members,
            "memory": self.memory,
            "floor": self.floor,
            "pursuit": self.pursuit,
            "design": self.design,
        }


def _specs(members: object, make: Any) -> tuple[StrategySpec, ...]:
    if isinstance(members, (str, bytes)) or not isinstance(members, Sequence):
        raise ConfigError(
            f"strategy.members must be a list of strategies or 'auto', but got {members!r}"
        )
    if not members:
        raise ConfigError("strategy.members must name at least one strategy")
    specs = tuple(make(m) for m in members)
    if any(isinstance(s, Portfolio) for s in specs):
        raise ConfigError("strategy.members cannot hold another portfolio")
    return specs


def deal(spec: Portfolio, n_islands: int) -> tuple[StrategySpec, ...]:
    """One strategy per island. ``members: auto``: ``spec`` itself on every island, so each
    runs the members its space gives one island. Explicit members: dealt out round-robin,
    each island's share as a portfolio of its own (or the member itself when it gets one);
    with more islands than members, the members repeat."""
    members = spec.members
    if members == AUTO:
        return (spec,) * n_islands
    out: list[StrategySpec] = []
    for island in range(n_islands):
        if island < len(members):
            share = members[island::n_islands]
        else:
            share = (members[island % len(members)],)
        portfolio = Portfolio(share, spec.memory, spec.floor, spec.pursuit, spec.design)
        out.append(share[0] if len(share) == 1 else portfolio)
    return tuple(out)
