"""Several objectives: Pareto ranking against brute force and deap, the island pool, the
result's front, the read-side commands, and searches over MPI with migration and resume."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import optuna
import pytest
from conftest import PROPAGATE, run_mpi
from deap import base, creator, tools
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import propagator as pg
from propagator.engine.island import Island
from propagator.engine.records import Status, wire_dtype
from propagator.store.warm import load_warm
from propagator.strategies import make_strategy
from propagator.strategies.pareto import crowding, fronts, hypervolume, nondominated, nsga2_order
from propagator.strategies.pool import ParetoPool


def _brute_front(losses: np.ndarray) -> np.ndarray:
    """Which points no other point dominates, by the definition."""
    n = len(losses)
    out = np.ones(n, dtype=bool)
    for i in range(n):
        for j in range(n):
            if (losses[j] <= losses[i]).all() and (losses[j] < losses[i]).any():
                out[i] = False
    return out


# small integer grids make ties and duplicate points common
_LOSSES = st.integers(1, 40).flatmap(
    lambda n: arrays(np.float64, (n, 2), elements=st.integers(0, 6).map(float))
)


@settings(max_examples=200, deadline=None)
@given(_LOSSES)
def test_the_front_is_the_brute_force_nondominated_set(losses):
    assert (nondominated(losses) == _brute_front(losses)).all()


@settings(max_examples=100, deadline=None)
@given(
    st.integers(1, 30).flatmap(
        lambda n: arrays(np.float64, (n, 3), elements=st.integers(0, 4).map(float))
    )
)
def test_fronts_peel_off_in_order(losses):
    rank = fronts(losses)
    rest = np.arange(len(losses))
    for k in range(rank.max() + 1):
        first = rest[_brute_front(losses[rest])]
        assert set(np.flatnonzero(rank == k)) == set(first)
        rest = np.setdiff1d(rest, first)
    assert len(rest) == 0


def test_failed_points_rank_after_every_front():
    losses = np.array([[1.0, 2.0], [np.nan, np.nan], [2.0, 1.0], [3.0, 3.0]])
    assert fronts(losses).tolist() == [0, 4, 0, 1]
    assert nsga2_order(losses)[-1] == 1


def _deap_population(losses: np.ndarray) -> list:
    if not hasattr(creator, "_ParetoMin2"):
        creator.create("_ParetoMin2", base.Fitness, weights=(-1.0, -1.0))
        creator.create("_ParetoInd2", list, fitness=creator._ParetoMin2)
    population = []
    for i, point in enumerate(losses):
        ind = creator._ParetoInd2([i])
        ind.fitness.values = tuple(point)
        population.append(ind)
    return population


_KNOWN = np.array(
    [
        [1.0, 9.0],
        [2.0, 7.0],
        [3.0, 4.0],
        [5.0, 3.0],
        [8.0, 1.0],
        [2.0, 8.0],
        [4.0, 6.0],
        [6.0, 4.0],
        [9.0, 2.0],
        [7.0, 7.0],
        [3.0, 4.0],
        [10.0, 10.0],
    ]
)


@pytest.mark.parametrize("seed", range(5))
def test_ranking_and_crowding_agree_with_deap(seed):
    rng = np.random.default_rng(seed)
    losses = _KNOWN if seed == 0 else np.round(rng.random((25, 2)) * 10, 1)
    population = _deap_population(losses)
    deap_fronts = tools.sortNondominated(population, len(population))
    rank = fronts(losses)
    for k, front in enumerate(deap_fronts):
        members = sorted(ind[0] for ind in front)
        assert members == sorted(np.flatnonzero(rank == k).tolist())
        tools.emo.assignCrowdingDist(front)
        theirs = np.array([ind.fitness.crowding_dist for ind in front])
        mine = crowding(losses[[ind[0] for ind in front]])
        # deap divides the sum by the number of objectives (2): the same order
        assert np.allclose(mine / 2, theirs), (k, mine, theirs)


def test_nsga2_order_puts_the_extremes_of_the_front_first():
    order = nsga2_order(_KNOWN)
    front = set(np.flatnonzero(nondominated(_KNOWN)))
    assert set(order[: len(front)]) == front
    assert set(order[:2]) == {0, 4}  # (1, 9) and (8, 1): infinite crowding distance


def test_hypervolume_of_a_known_staircase():
    points = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0], [3.5, 3.5]])
    # three unit steps under the reference (4, 4): 3 + 2 + 1 = 6
    assert hypervolume(points, np.array([4.0, 4.0])) == pytest.approx(6.0)
    assert hypervolume(points, np.array([0.5, 0.5])) == 0.0


def _rows(losses: np.ndarray) -> np.ndarray:
    rows = np.zeros(len(losses), wire_dtype(2, 0, losses.shape[1]))
    rows["id"] = np.arange(len(losses))
    rows["values"] = losses
    rows["genes"] = np.random.default_rng(0).random((len(losses), 2))
    return rows


def test_the_pareto_pool_keeps_the_front_and_immigrants_evict_the_worst():
    rows = _rows(_KNOWN)
    pool = ParetoPool(7, rows.dtype)
    for row in rows:
        pool.offer(row, row["values"])
    front = set(np.flatnonzero(nondominated(_KNOWN)).tolist())
    assert len(front) == 6  # and one place for the best of the rest
    assert front <= set(pool.rows["id"].tolist()) and len(pool) == 7
    # an immigrant dominated by everything still enters, and a dominated member leaves
    immigrant = _rows(np.array([[20.0, 20.0]]))[0]
    immigrant["id"] = 99
    assert pool.replace_worst(immigrant, immigrant["values"])
    assert 99 in pool.rows["id"] and front <= set(pool.rows["id"].tolist())
    # a newcomer that no member dominates passes; one that a member dominates does not
    bar = pool.bar()
    assert pool.passes(bar, np.array([0.5, 20.0])) and not pool.passes(bar, np.array([9.0, 9.0]))


@pytest.mark.parametrize("directions", [(1.0, 1.0), (1.0, -1.0)], ids=["min-min", "min-max"])
def test_an_island_seeded_from_stored_records_holds_their_front(directions):
    signs = np.array(directions)
    values = _KNOWN * signs  # stored in the metrics' own directions
    rows = _rows(values)
    rows["status"][3] = Status.FAILED
    space = pg.Space({"a": pg.Float(0, 1), "b": pg.Float(0, 1)})
    breeder = make_strategy("ga").create(space, 4, 2)  # a pool of 8
    island = Island(space, breeder, rows.dtype, signs, seen=None)
    island.seed(rows)
    ok = np.ones(len(rows), bool)
    ok[3] = False
    expected = set(np.flatnonzero(ok)[nondominated(_KNOWN[ok])].tolist())
    assert expected <= set(island.pool.rows["id"].tolist())


def _zdt1(params: dict) -> list[float]:
    x = np.array([params[f"x{i}"] for i in range(4)])
    g = 1.0 + 9.0 * x[1:].mean()
    return [float(x[0]), float(g * (1.0 - np.sqrt(x[0] / g)))]


_SPACE = {f"x{i}": pg.Float(0.0, 1.0) for i in range(4)}


@pytest.mark.parametrize("strategy", ["portfolio", "ga", "tpe", "random"])
def test_a_search_of_two_objectives_returns_the_front_of_its_records(strategy, one_thread):
    result = pg.search(_zdt1, _SPACE, budget=60, metric=["f1", "f2"], strategy=strategy, seed=3)
    assert result.objectives == ("f1", "f2") and result.multi
    v = result.objective_values
    assert v.shape == (60, 2)
    front = {r.id for r in result.pareto_front}
    assert front == set(result.rows["id"][_brute_front(v)].tolist())
    first = [r.values[0] for r in result.pareto_front]
    assert first == sorted(first)
    assert all(r.metrics == {"f1": r.values[0], "f2": r.values[1]} for r in result.records)
    with pytest.raises(pg.PropagateError, match="pareto_front"):
        _ = result.best
    assert "Pareto front of" in repr(result)


def test_mixed_directions_turn_the_maximized_metric_around(one_thread):
    def accuracy_and_bytes(p: dict) -> dict:
        return {"acc": 1.0 - (p["x0"] - 0.3) ** 2, "bytes": 1e6 * p["x1"], "other": 1.0}

    result = pg.search(
        accuracy_and_bytes,
        _SPACE,
        budget=50,
        metric=["acc", "bytes"],
        direction=["maximize", "minimize"],
        seed=1,
    )
    v = result.objective_values
    front = {r.id for r in result.pareto_front}
    assert front == set(result.rows["id"][_brute_front(v * [-1.0, 1.0])].tolist())
    assert not front & set(result.rows["id"][_brute_front(v)].tolist()) - front
    reference = [0.0, 2e6]
    direct = hypervolume(v[result.ok] * [-1.0, 1.0], np.array([-0.0, 2e6]))
    assert result.hypervolume(reference) == pytest.approx(direct) and direct > 0


def test_a_maximized_metric_that_is_better_dominates():
    def f(p: dict) -> list[float]:
        return [p["x0"], p["x0"]]  # maximize both: the largest x0 alone is on the front

    result = pg.search(f, _SPACE, budget=30, metric=["a", "b"], direction="maximize", seed=0)
    top = result.objective_values[:, 0].max()
    front = result.pareto_front  # every record with the top x0 (other genes may differ)
    assert front and all(r.values == (top, top) for r in front)
    assert len(front) == np.count_nonzero(result.objective_values[:, 0] == top)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metric": ["a", "a"]}, "names a value twice"),
        ({"metric": ["a", "b"], "direction": ["minimize"] * 3}, "3 directions for 2"),
        ({"metric": ["a", "b"], "strategy": "cmaes"}, "strategy cmaes optimizes one value"),
        ({"metric": ["a", "b"], "early_stopping": "asha"}, "several metrics cannot use it"),
        ({"metric": ["a", "b"], "confirm": {"top": 1, "seeds": 2}}, "Pareto front instead"),
        ({"metric": ["a", "b"], "direction": ["minimize", "up"]}, "'minimize' or 'maximize'"),
    ],
)
def test_bad_multi_objective_settings_are_refused_before_any_work(kwargs, message):
    with pytest.raises(pg.ConfigError, match=message):
        pg.search(lambda p: [1.0, 2.0], _SPACE, budget=5, **kwargs)


def test_a_wrong_number_of_returned_values_stops_the_search_at_once(tmp_path, one_thread):
    calls = []

    def three(p: dict) -> list[float]:
        calls.append(p)
        return [1.0, 2.0, 3.0]

    with pytest.raises(pg.ConfigError, match="3 values for the 2 metrics"):
        pg.search(three, _SPACE, budget=20, metric=["a", "b"], run_dir=tmp_path / "run")
    assert len(calls) == 1


def _write_front_run(tmp_path):
    run_dir = tmp_path / "run"
    pg.search(
        _zdt1,
        _SPACE,
        budget=40,
        metric=["f1", "f2"],
        direction=["minimize", "minimize"],
        run_dir=run_dir,
        seed=5,
    )
    return run_dir


def test_load_report_export_and_plot_show_the_front(tmp_path, one_thread):
    run_dir = _write_front_run(tmp_path)
    loaded = pg.load(run_dir)
    assert loaded.objectives == ("f1", "f2") and loaded.directions == ("minimize", "minimize")
    front = [r.id for r in loaded.pareto_front]
    assert front == sorted(front, key=lambda i: loaded.objective_values[i, 0])
    out = subprocess.run(
        [sys.executable, *PROPAGATE, "report", str(run_dir), "--top", "3"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert "metrics      f1 (minimize), f2 (minimize)" in out
    assert f"Pareto front: {len(front)} of 40 successful" in out
    assert "hypervolume of the front" in out and "on the front" in out
    volumes = [
        float(line.split()[1])
        for line in out.splitlines()
        if line.strip()[:2] in ("4 ", "10", "20", "30", "40")
    ]
    assert volumes == sorted(volumes) and volumes[-1] > 0  # the front only improves
    subprocess.run(
        [sys.executable, *PROPAGATE, "plot", str(run_dir), "--out", str(tmp_path / "plots")],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert (tmp_path / "plots" / "pareto_front.png").stat().st_size > 1000
    assert (tmp_path / "plots" / "hypervolume_over_evaluations.png").exists()


def test_the_optuna_export_is_a_multi_objective_study_with_the_same_front(tmp_path, one_thread):
    run_dir = _write_front_run(tmp_path)
    db = tmp_path / "study.db"
    subprocess.run(
        [sys.executable, *PROPAGATE, "optuna", str(run_dir), "-o", str(db), "--study", "s"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{db}")
    assert [d.name for d in study.directions] == ["MINIMIZE", "MINIMIZE"]
    assert study.metric_names == ["f1", "f2"]
    theirs = {t.user_attrs["id"] for t in study.best_trials}
    assert theirs == {r.id for r in pg.load(run_dir).pareto_front}


def test_a_warm_start_carries_every_objective(tmp_path, one_thread):
    run_dir = _write_front_run(tmp_path)
    earlier = pg.load(run_dir)
    warm = load_warm(str(run_dir), pg.Space(_SPACE), ("f1", "f2"), wire_dtype(4, n_values=2))
    np.testing.assert_array_equal(warm.rows["values"], earlier.objective_values)
    result = pg.search(
        _zdt1,
        _SPACE,
        budget=10,
        metric=["f1", "f2"],
        warm_start=str(run_dir),
        seed=1,
        strategy="ga",
    )
    assert len(result) == 10 and result.ok.all()
    # The GA's pool of four starts as the warm run's four best by NSGA-II's ranking of both
    # objectives: its children carry their genes bit for bit (a child keeps the genes it does
    # not mutate), and no other warm record's.
    best = earlier.rows["genes"][nsga2_order(earlier.losses)[:4]]
    carried = _genes_of(result.rows["genes"]) & _genes_of(earlier.rows["genes"])
    assert len(carried) >= 3 and carried <= _genes_of(best)


def _genes_of(genes: np.ndarray) -> set[tuple[int, float]]:
    """Every gene value of the rows of ``genes``, with its position."""
    return {(j, g) for row in genes.tolist() for j, g in enumerate(row)}


@pytest.mark.mpi
def test_islands_with_migration_and_a_resume_seed_the_pools_and_keep_the_front(tmp_path):
    run_dir = tmp_path / "run"
    first = run_mpi(4, "pareto", tmp_path / "a", str(run_dir), "60")
    assert all(r == first[0] for r in first)  # every rank returns the same front
    second = run_mpi(4, "pareto", tmp_path / "b", str(run_dir), "120")[0]
    assert second["n"] == 120 and second["immigrants"] > 0
    losses = np.array(second["losses"])
    assert set(second["front"]) == set(np.array(second["ids"])[_brute_front(losses)].tolist())
    # The pools were seeded from the first session: children of the second carry genes of
    # its records bit for bit (a child keeps the genes it does not mutate; no sample has
    # them), and only of those its pools held: each island's four best as NSGA-II ranks them
    # (pools of 2 x 2 workers).
    old = {k: np.array(first[0][k]) for k in ("ids", "islands", "genes", "losses")}
    best = [
        old["genes"][old["islands"] == j][nsga2_order(old["losses"][old["islands"] == j])[:4]]
        for j in (0, 1)
    ]
    carried = _genes_of(np.array(second["genes"])[np.array(second["ids"]) >= 60])
    carried &= _genes_of(old["genes"])
    assert len(carried) >= 3 and carried <= _genes_of(np.concatenate(best))
    assert json.loads(json.dumps(second["objectives"])) == ["acc", "bytes"]


def test_repeats_average_every_objective(one_thread):
    def noisy(p: dict, trial: pg.Trial) -> list[float]:
        noise = np.random.default_rng(trial.seed).normal(0.0, 0.1)
        return [p["x0"] + noise, p["x1"] - noise]

    result = pg.search(noisy, _SPACE, budget=4, metric=["f1", "f2"], repeats=3, seed=2)
    for r in result.records:
        assert r.metrics["repeats"] == 3 and r.metrics["f1_std"] > 0
        assert r.metrics["f1_std"] == pytest.approx(r.metrics["f2_std"])
        assert r.values == (r.metrics["f1"], r.metrics["f2"])
        assert r.values[0] + r.values[1] == pytest.approx(r.params["x0"] + r.params["x1"])
