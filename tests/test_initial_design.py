"""Tests of the portfolio's initial design (:mod:`propagator.strategies.initial_design`).

1. The design: every level and stratum hit evenly, conditional parameters spread over the
   points where they are active, bounds, the same design for the same seed.
2. The portfolio's plan and the island: the design's points by ticket, a taken point asked
   instead, settings.
3. Under mpiexec: the run's first records are the design, each point evaluated once, by
   both workers, and a seeded run repeats.
"""

from __future__ import annotations

import json
import textwrap
from collections import Counter

import numpy as np
import pytest
from conftest import mpiexec_json

from propagator.engine.island import Island
from propagator.engine.records import wire_dtype
from propagator.engine.seen import Seen
from propagator.errors import ConfigError
from propagator.space import Categorical, Float, Int, Space
from propagator.strategies import Portfolio, make_strategy
from propagator.strategies.initial_design import auto_size, initial_design

SPACE = Space(
    {
        "lr": Float(1e-5, 1e-1, log=True),
        "n": Int(1, 12),
        "w": Int(1, 1000, log=True),
        "act": Categorical(["a", "b", "c", "d"]),
        "opt": Categorical(["sgd", "adam", "rmsprop"]),
        "mom": Float(0.0, 1.0, when="opt == 'sgd'"),
        "nesterov": Categorical([True, False], when="opt == 'sgd' and mom > 0.5"),
        "epochs": 5,
    }
)


def points(space: Space, n: int, seed: int) -> list[dict]:
    return [space.decode(g) for g in initial_design(space, n, seed)]


def strata_hit(values: list[float], k: int) -> list[int]:
    """Which of ``k`` equal strata of [0, 1] each value falls in, sorted."""
    return sorted(min(int(v * k), k - 1) for v in values)


# =============================================================================================
# 1. The design
# =============================================================================================


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n", [7, 12, 20])
def test_levels_are_dealt_evenly_and_floats_hit_every_stratum(n: int, seed: int) -> None:
    genes = initial_design(SPACE, n, seed)
    assert genes.shape == (n, SPACE.dim)
    assert ((genes >= 0) & (genes <= 1)).all()
    got = points(SPACE, n, seed)
    for name, m in (("act", 4), ("opt", 3)):
        counts = Counter(p[name] for p in got)
        assert len(counts) == min(m, n)
        assert set(counts.values()) <= {n // m, -(-n // m)}, (name, counts)
    # 12 integer levels: each once at n = 12, distinct below, each at least once above
    counts = Counter(p["n"] for p in got)
    assert max(counts.values()) == max(1, -(-n // 12)) and len(counts) == min(n, 12)
    # floats and integers of many levels: one point in each of the n strata of the gene
    for name in ("lr", "w"):
        i = SPACE.genes.index(name)
        assert strata_hit(genes[:, i].tolist(), n) == list(range(n))


@pytest.mark.parametrize("seed", range(5))
def test_conditional_parameters_are_spread_where_active(seed: int) -> None:
    n = 20
    genes = initial_design(SPACE, n, seed)
    got = points(SPACE, n, seed)
    sgd = [i for i, p in enumerate(got) if p["opt"] == "sgd"]
    assert len(sgd) in (6, 7)  # 20 points over 3 optimisers
    # momentum: one value in each of the len(sgd) strata of its range, among sgd points only
    mom = genes[sgd, SPACE.genes.index("mom")]
    assert strata_hit(mom.tolist(), len(sgd)) == list(range(len(sgd)))
    # nesterov (active when sgd and mom > 0.5): both levels, evenly, on its active points
    nesterov = Counter(p["nesterov"] for p in got if "nesterov" in p)
    k = sum(nesterov.values())
    assert k == sum(p.get("mom", 0) > 0.5 for p in got) >= 2
    assert set(nesterov.values()) <= {k // 2, -(-k // 2)} and len(nesterov) == 2
    assert all(("mom" in p) == (p["opt"] == "sgd") for p in got)


def test_more_levels_than_points_give_distinct_levels() -> None:
    space = Space({"k": Int(0, 99), "c": Categorical(list(range(30)))})
    got = points(space, 10, seed=4)
    assert len({p["k"] for p in got}) == 10 and len({p["c"] for p in got}) == 10
    # spread over the range: one in each tenth
    assert strata_hit([p["k"] / 100 for p in got], 10) == list(range(10))


def test_the_same_seed_gives_the_same_design_and_another_seed_another() -> None:
    a = initial_design(SPACE, 15, 3)
    assert np.array_equal(a, initial_design(SPACE, 15, 3))
    assert not np.array_equal(a, initial_design(SPACE, 15, 4))


def test_the_kept_hypercube_spreads_better_than_a_random_one() -> None:
    """Maximin over 16 candidates: the closest pair is farther apart than a single random
    hypercube's, in the median over seeds (2 floats, 12 points)."""
    from propagator.strategies import initial_design as module

    space = Space({"x": Float(0, 1), "y": Float(0, 1)})
    levels = [None, None]
    kept, single = [], []
    for seed in range(20):
        kept.append(module._closest_pair(initial_design(space, 12, seed)))
        genes, _ = module._hypercube(space, 12, levels, np.random.default_rng(seed))
        single.append(module._closest_pair(genes))
    assert np.median(kept) > 1.5 * np.median(single)


def test_auto_size_is_the_ga_population() -> None:
    assert auto_size(SPACE, 1) == auto_size(SPACE, 2) == 4
    assert auto_size(SPACE, 8) == 16
    assert auto_size(Space({"c": 3}), 8) == 0


# =============================================================================================
# 2. The portfolio's plan and the island
# =============================================================================================


def test_the_portfolio_plans_the_design_by_ticket_and_nothing_after() -> None:
    breeder = Portfolio(design="auto").create(SPACE, island_workers=3)
    design = initial_design(SPACE, 6, 7)
    for ticket in range(6):
        assert np.array_equal(breeder.planned(ticket, 7), design[ticket])
    assert breeder.planned(6, 7) is None and breeder.planned(-1, 7) is None
    assert np.array_equal(breeder.planned(0, 8), initial_design(SPACE, 6, 8)[0])
    assert Portfolio().create(SPACE, 2).planned(0, 7) is None  # the default: none
    assert make_strategy("ga").create(SPACE, 2).planned(0, 7) is None  # the default: none


def test_the_island_takes_a_planned_point_once_and_asks_after_it_was_taken() -> None:
    dim = SPACE.dim
    island = Island(
        SPACE, Portfolio(design=3).create(SPACE, 1), wire_dtype(dim), [1.0], Seen(SPACE)
    )
    rng = np.random.default_rng(0)
    design = initial_design(SPACE, 3, 11)
    assert np.array_equal(island.propose(rng, 0, 11), design[0])
    # ticket 0 again (the point is already this worker's): the strategy is asked instead
    again = island.propose(rng, 0, 11)
    assert again is not None and not np.array_equal(again, design[0])
    assert np.array_equal(island.propose(rng, 2, 11), design[2])
    assert island.propose(rng, 3, 11) is not None  # past the design


@pytest.mark.parametrize(
    ("design", "message"),
    [(-1, "-1"), ("many", "'many'"), (2.5, "2.5"), (True, "True")],
)
def test_bad_design_settings_are_config_errors(design: object, message: str) -> None:
    want = rf"strategy\.design must be 'auto' or an integer >= 0, but got {message}"
    with pytest.raises(ConfigError, match=want):
        make_strategy({"name": "portfolio", "design": design})


def test_the_design_setting_round_trips_and_is_dealt_to_island_portfolios() -> None:
    from propagator.strategies import deal

    spec = Portfolio(members=("ga", "tpe", "cmaes"), design=6)
    assert make_strategy(json.loads(json.dumps(spec.to_dict()))) == spec
    assert make_strategy(Portfolio(design="auto").to_dict()).design == "auto"
    assert Portfolio().design == 0
    first, _ = deal(spec, 2)
    assert first.design == 6


# =============================================================================================
# 3. Under mpiexec
# =============================================================================================

_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from mpi4py import MPI
    import propagator as pg
    from propagator.space import Categorical, Float, Int, Space

    space = Space({"x": Float(0, 1), "k": Int(0, 9), "c": Categorical(["a", "b", "c"]),
                   "y": Float(0, 1, when="c == 'a'")})

    def f(p, trial=None):
        return (p["x"] - 0.3) ** 2 + (p["k"] - 4) ** 2 / 10 + (p["c"] != "a") + p.get("y", 1)

    strategy = {"name": "portfolio", "design": "auto"}
    r = pg.search(f, space, budget=int(sys.argv[2]), seed=int(sys.argv[3]), strategy=strategy)
    rows = r.rows
    json.dump({"ids": rows["id"].tolist(), "genes": rows["genes"].tolist(),
               "worker": rows["worker"].tolist(), "seed": r.info.seed},
              open(f"{sys.argv[1]}/rank{MPI.COMM_WORLD.rank}.json", "w"))
    """
)


def _run(tmp_path, budget: int, seed: int, name: str) -> dict:
    out = tmp_path / name
    out.mkdir()
    script = tmp_path / "design_search.py"
    script.write_text(_SCRIPT)
    ranks = mpiexec_json(2, [str(script), str(out), str(budget), str(seed)], out, timeout=120)
    return ranks[0]


@pytest.mark.mpi
def test_the_first_records_of_a_run_are_the_design_once_each_and_a_seeded_run_repeats(
    tmp_path,
) -> None:
    space = Space(
        {
            "x": Float(0, 1),
            "k": Int(0, 9),
            "c": Categorical(["a", "b", "c"]),
            "y": Float(0, 1, when="c == 'a'"),
        }
    )
    first = _run(tmp_path, 24, 5, "a")
    n = auto_size(space, 2)  # 4
    design = initial_design(space, n, first["seed"])
    by_id = dict(zip(first["ids"], first["genes"], strict=True))
    assert sorted(by_id) == list(range(24))
    assert np.array_equal([by_id[i] for i in range(n)], design)
    # each design point evaluated once (by whichever worker drew its ticket), none again later
    evaluated = [tuple(g) for g in first["genes"]]
    assert all(evaluated.count(tuple(g)) == 1 for g in design.tolist())
    again = _run(tmp_path, 24, 5, "b")
    assert np.array_equal(
        [by_id[i] for i in range(n)],
        [dict(zip(again["ids"], again["genes"], strict=True))[i] for i in range(n)],
    )
