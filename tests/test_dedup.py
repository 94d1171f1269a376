"""No configuration is evaluated twice on an island; a small space evaluated completely ends
the search cleanly (issue 10, part 1)."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import run_mpi
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import propagator as pg
from propagator.engine.seen import Seen
from propagator.strategies.base import gene_levels

sys.path.insert(0, str(Path(__file__).parent / "mpi"))
from scenarios import configurations


def test_a_key_is_the_configuration_not_the_genes():
    space = pg.Space(
        {
            "n": pg.Int(1, 4),
            "act": pg.Categorical([1, 1.0, True]),
            "w": pg.Int(8, 64, when="n >= 3"),
        }
    )
    seen = Seen(space)
    # n = 1 (bin [0, 0.25)), w inactive: its gene does not matter
    assert seen.key(np.array([0.1, 0.1, 0.2])) == seen.key(np.array([0.2, 0.2, 0.9]))
    # 1, 1.0 and True are three different choices, though Python's == equates them
    keys = {seen.key(np.array([0.1, u, 0.5])) for u in (0.1, 0.5, 0.9)}
    assert len(keys) == 3
    # n = 4 makes w active: different w, different configuration
    assert seen.key(np.array([0.9, 0.1, 0.2])) != seen.key(np.array([0.9, 0.1, 0.9]))


def test_every_integer_is_its_own_configuration():
    """Python's hash(-1) == hash(-2): keys must not rest on it."""
    seen = Seen(pg.Space({"a": pg.Int(-3, 3), "b": pg.Categorical(["x", "y"])}))
    grid = [np.array([(i + 0.5) / 7, (j + 0.5) / 2]) for i in range(7) for j in range(2)]
    assert len({seen.key(g) for g in grid}) == 14 == seen.size()


def test_floats_without_conditions_are_keyed_by_their_genes():
    seen = Seen(pg.Space({"x": pg.Float(0, 1), "y": pg.Float(-1, 1, log=False)}))
    a = np.array([0.25, 0.5])
    assert seen.key(a) == seen.key(a.copy()) != seen.key(np.array([0.25, 0.5000001]))


def test_only_floats_strictly_inside_their_range_skip_the_claim():
    """A claim settles races between an island's workers; two workers meet on a float gene
    only at a bound (a strategy clipped it), or anywhere in an integer, a category, a
    condition's inactive parameter or a space without genes."""
    floats = Seen(pg.Space({"x": pg.Float(0, 1), "y": pg.Float(1e-3, 1, log=True)}))
    assert floats.private(np.array([0.3, 0.999]))
    assert not floats.private(np.array([0.0, 0.5]))
    assert not floats.private(np.array([0.5, 1.0]))
    assert not Seen(pg.Space({"x": pg.Float(0, 1), "n": pg.Int(1, 3)})).private(
        np.array([0.3, 0.5])
    )
    conditional = {"x": pg.Float(0, 1), "y": pg.Float(0, 1, when="x > 0.5")}
    assert not Seen(pg.Space(conditional)).private(np.array([0.3, 0.5]))
    assert not Seen(pg.Space({"c": 3})).private(np.zeros(0))


@st.composite
def discrete_spaces(draw) -> pg.Space:
    params: dict = {"a": pg.Int(draw(st.integers(-3, 0)), draw(st.integers(1, 3)))}
    for i in range(draw(st.integers(0, 3))):
        when = None
        if draw(st.booleans()):
            ref = draw(st.sampled_from(sorted(params)))
            when = f"{ref} != 0" if isinstance(params[ref], pg.Int) else f"{ref} == 'u'"
        if draw(st.booleans()):
            params[f"p{i}"] = pg.Int(1, draw(st.integers(2, 4)), when=when)
        else:
            params[f"p{i}"] = pg.Categorical(["u", "v", "w"][: draw(st.integers(2, 3))], when=when)
    return pg.Space(params)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    space=discrete_spaces(), extra=st.integers(-3, 10), strategy=st.sampled_from(["ga", "random"])
)
def test_no_configuration_is_evaluated_twice_and_a_small_space_is_exhausted(space, extra, strategy):
    """One worker: with a budget past the space's size, every configuration exactly once and
    the search ends early; with less, as many distinct ones as the budget."""
    size = len(configurations(space))
    budget = max(1, size + extra)
    result = pg.search(
        lambda p: float(len(str(p))), space, budget=budget, seed=extra + 5, strategy=strategy
    )
    got = [json.dumps(r.params, sort_keys=True) for r in result.records]
    assert len(got) == len(set(got)) == min(budget, size)
    assert result.info.exhausted == (budget > size)


def test_the_seen_set_lists_a_small_space_and_finds_every_unseen_configuration():
    space = pg.Space({"a": pg.Int(0, 2), "b": pg.Categorical(["x", "y"], when="a != 1")})
    seen = Seen(space)
    assert seen.size() == 5 == len(configurations(space))
    rng = np.random.default_rng(0)
    for _ in range(5):
        genes = seen.unseen(rng)
        seen.add(seen.key(genes))
    assert seen.unseen(rng) is None and len(seen) == 5
    assert Seen(pg.Space({"x": pg.Float(0, 1)})).size() is None


@pytest.mark.mpi
@pytest.mark.parametrize(("n", "islands", "k"), [(4, 1, 1), (4, 2, 1), (4, 1, 2), (6, 3, 1)])
def test_workers_of_an_island_never_evaluate_the_same_configuration(tmp_path, n, islands, k):
    """Several workers propose from the same pool at the same moment: the island's claim
    table lets exactly one of them evaluate each configuration; every island exhausts."""
    ranks = run_mpi(n, "dedup", tmp_path, "0,1,2,3", str(islands), "x3", str(k))
    for seed, got in ranks[0].items():
        per_island: dict[int, list[str]] = {}
        for island, params in got["records"]:
            per_island.setdefault(island, []).append(json.dumps(params, sort_keys=True))
        for island, configs in per_island.items():
            assert len(configs) == len(set(configs)), (seed, island)
        assert got["exhausted"], seed
        # an island counts immigrants as evaluated, so with several it may evaluate fewer
        evaluated = [len(c) for c in per_island.values()]
        assert max(evaluated) <= got["size"] <= sum(evaluated)
        if islands == 1:
            assert evaluated == [got["size"]]


@pytest.mark.mpi
def test_a_resumed_run_does_not_evaluate_its_stored_configurations_again(tmp_path):
    run_dir = tmp_path / "run"
    first = run_mpi(2, "dedup", tmp_path / "a", "3", "1", "6", "1", str(run_dir))[0]["3"]
    assert len(first["records"]) == 6
    second = run_mpi(2, "dedup", tmp_path / "b", "3", "1", "x3", "1", str(run_dir))[0]["3"]
    configs = [json.dumps(p, sort_keys=True) for _, p in second["records"]]
    assert len(configs) == len(set(configs)) == second["size"]
    assert second["exhausted"]


def test_repeats_are_allowed_when_asked_for():
    space = pg.Space({"a": pg.Int(0, 1), "b": pg.Categorical(["x", "y"])})
    result = pg.search(lambda p: 1.0, space, budget=30, seed=0, deduplicate=False)
    got = [json.dumps(r.params, sort_keys=True) for r in result.records]
    assert len(got) == 30 and len(set(got)) <= 4 and not result.info.exhausted
    assert result.info.duplicates_avoided == 0


def test_gene_levels_are_the_bins_the_decoder_uses():
    space = pg.Space(
        {"i": pg.Int(1, 40, log=True), "c": pg.Categorical(["a", "b", "c"]), "f": pg.Float(0, 1)}
    )
    levels = gene_levels(space)
    assert levels[2] is None
    ints = [space.decode(np.array([u, 0.5, 0.5]))["i"] for u in levels[0]]
    assert ints == list(range(1, 41))
    cats = [space.decode(np.array([0.5, u, 0.5]))["c"] for u in levels[1]]
    assert cats == ["a", "b", "c"]
    assert list(itertools.pairwise(levels[0])) and np.all(np.diff(levels[0]) > 0)
