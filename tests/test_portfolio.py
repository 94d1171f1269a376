"""The portfolio strategy: members dealt over islands, effort shifting to the members whose
children succeed, settings checked."""

from __future__ import annotations

import numpy as np
import pytest

import propagator as pg
from propagator.engine.island import Island
from propagator.engine.records import wire_dtype
from propagator.engine.seen import Seen
from propagator.settings import Settings, strategies_for
from propagator.strategies import GA, Breeder, Portfolio, Random, StrategySpec, deal
from propagator.strategies.pool import Pool

SPACE = pg.Space({"x": pg.Float(0, 1), "y": pg.Float(0, 1)})


def test_one_island_shares_every_member_and_islands_get_their_deal():
    spec = Portfolio(members=("ga", "random", {"name": "ga", "population": 8}))
    assert strategies_for(spec, 1) == (spec,)
    two = deal(spec, 2)
    assert two[0] == Portfolio((GA(), GA(population=8)), spec.memory, spec.floor)
    assert two[1] == Random()
    five = deal(spec, 5)
    assert five[:3] == (GA(), Random(), GA(population=8)) and five[3:] == (GA(), Random())


def test_the_default_strategy_is_the_portfolio_on_every_island():
    assert Settings(budget=pg.Budget(10)).strategy[0].name == "portfolio"
    auto = Portfolio()
    floats = pg.Space({"x": pg.Float(0, 1), "n": pg.Int(1, 9)})
    assert [m.name for m in auto.members_for(floats)] == ["ga", "cmaes"]
    mixed = pg.Space({"x": pg.Float(0, 1), "act": pg.Categorical(["a", "b"])})
    assert [m.name for m in auto.members_for(mixed)] == ["ga", "cmaes", "tpe"]
    conditional = pg.Space({"n": pg.Int(1, 3), "w": pg.Int(1, 9, when="n > 1")})
    assert [m.name for m in auto.members_for(conditional)] == ["ga", "cmaes", "tpe"]
    # From MODEL_WORKERS workers on an island, TPE and CMA-ES alone on structured spaces
    assert [m.name for m in auto.members_for(mixed, 1, 7)] == ["ga", "cmaes", "tpe"]
    assert [m.name for m in auto.members_for(mixed, 1, 8)] == ["tpe", "cmaes"]
    assert [m.name for m in auto.members_for(conditional, 1, 8)] == ["tpe", "cmaes"]
    assert [m.name for m in auto.members_for(floats, 1, 8)] == ["ga", "cmaes"]
    several = [m.name for m in auto.members_for(mixed, 2, 8)]
    assert several == [m.name for m in auto.members_for(mixed, 2, 1)]
    # Every island resolves the space's members as one island does (issue 17), no longer
    # the fixed ga, cmaes, tpe dealt one per island.
    spread = Settings(budget=pg.Budget(10), islands=3, strategy=strategies_for("portfolio", 3))
    assert spread.strategy == (auto,) * 3


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"members": []}, "at least one strategy"),
        ({"members": "ga"}, "must be a list"),
        ({"members": ["gaa"]}, "did you mean 'ga'"),
        ({"members": [{"name": "portfolio"}]}, "cannot hold another portfolio"),
        ({"memory": 1.0}, r"memory must be in \[0, 1\)"),
        ({"floor": -0.1}, r"floor must be in \[0, 1\]"),
        ({"pursuit": 0}, r"pursuit must be in \(0, 1\]"),
        ({"pursuit": 1.5}, r"pursuit must be in \(0, 1\]"),
        ({"pursuit": "fast"}, r"pursuit must be a number"),
    ],
)
def test_bad_settings_are_refused_with_the_field(settings, message):
    with pytest.raises(pg.ConfigError, match=message):
        pg.strategies.make_strategy({"name": "portfolio", **settings})


class _Fixed(Breeder):
    """Always proposes the same genes (told results are ignored)."""

    pool_size = 4

    def __init__(self, value: float) -> None:
        self._value = value

    def ask(self, pool, rng):
        return np.full(2, self._value)


class _FixedSpec(StrategySpec):
    name = "fixed"

    def __init__(self, value: float) -> None:
        object.__setattr__(self, "value", value)

    def create(self, space, island_workers):
        return _Fixed(self.value)


def _drive(b, pool, rng, asks: int, succeeds: int) -> None:
    """``asks`` asks of a portfolio of two ``_Fixed`` members; only member ``succeeds``'s
    children enter the pool."""
    for _ in range(asks):
        child = b.ask(pool, rng)
        loss = 0.0 if (child[0] > 0.5) == bool(succeeds) else 1.0
        b.tell(child[None, :], np.array([loss]), np.array([True]))


def _full_pool(b) -> Pool:
    dtype = wire_dtype(2)
    pool = Pool(b.pool_size, dtype)
    for i, loss in enumerate((0.5, 0.6, 0.7, 0.8)):
        row = np.zeros(1, dtype)[0]
        row["id"] = i
        pool.offer(row, loss)
    return pool


def test_effort_pursues_the_member_whose_children_enter_the_pool():
    b = Portfolio(members=(_FixedSpec(0.1), _FixedSpec(0.9))).create(SPACE, 1)
    pool = _full_pool(b)
    rng = np.random.default_rng(0)
    floor = Portfolio().floor
    _drive(b, pool, rng, 200, succeeds=0)
    # the leader gets all but the floor; the other member keeps floor / 2
    np.testing.assert_allclose(b.shares, [1 - floor / 2, floor / 2], atol=1e-3)
    # the leader changes: within a few dozen asks the shares follow
    _drive(b, pool, rng, 60, succeeds=1)
    assert b.shares[1] > 0.9
    assert b.shares.sum() == pytest.approx(1.0)


def test_members_tied_for_the_best_rate_share_the_leaders_part():
    """Equal rates favour no member (argmax would pursue the first); here member 2's children
    fail, members 0 and 1 stay tied at the starting rate (only peers' results are told)."""
    b = Portfolio(members=(_FixedSpec(0.1), _FixedSpec(0.5), _FixedSpec(0.9))).create(SPACE, 1)
    pool = _full_pool(b)
    rng = np.random.default_rng(0)
    peer = np.full((1, 2), 0.3)
    b.ask(pool, rng)
    np.testing.assert_allclose(b.shares, 1 / 3)
    for _ in range(200):
        child = b.ask(pool, rng)
        if child[0] > 0.5:
            b.tell(child[None, :], np.array([np.nan]), np.array([False]))
        else:
            b.tell(peer, np.array([0.0]), np.array([True]))
    floor = Portfolio().floor
    lead = (1 - floor) / 2 + floor / 3
    np.testing.assert_allclose(b.shares, [lead, lead, floor / 3], atol=1e-3)


def test_the_shares_move_once_per_candidate_not_per_re_ask_after_a_duplicate():
    b = Portfolio(members=(_FixedSpec(0.1), _FixedSpec(0.9))).create(SPACE, 1)
    rng = np.random.default_rng(0)
    _drive(b, _full_pool(b), rng, 5, succeeds=0)  # member 0 leads, the shares not yet settled
    island = Island(SPACE, b, wire_dtype(2), np.array([1.0]), Seen(SPACE))
    for value in (0.1, 0.9):  # both members' only children are evaluated already
        island.reserve(np.full(2, value))
    before = b.shares
    floor, pursuit = Portfolio().floor, Portfolio().pursuit
    once = before + pursuit * (np.array([1 - floor / 2, floor / 2]) - before)
    genes = island.propose(rng)  # every bred child is refused: a uniform sample instead
    assert island.duplicates_avoided > 1
    assert genes is not None and not np.isin(genes, (0.1, 0.9)).all()
    np.testing.assert_allclose(b.shares, once)


def test_a_portfolio_search_repeats_for_a_seed_and_finds_the_bowl():
    def bowl(p):
        return (p["x"] - 0.3) ** 2 + (p["y"] - 0.7) ** 2

    spec = {"name": "portfolio", "members": ["ga", "cmaes"]}
    a = pg.search(bowl, SPACE, budget=150, strategy=spec, seed=4)
    b = pg.search(bowl, SPACE, budget=150, strategy=spec, seed=4)
    assert a.rows["genes"].tolist() == b.rows["genes"].tolist()
    assert a.best.value < 1e-4
