"""``pg.search`` in one process (a singleton MPI world): API, determinism, failures."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

import propagator as pg
from propagator.engine.records import Status
from propagator.strategies import Breeder
from propagator.strategies.pool import Pool

SPACE = pg.Space(
    {
        "x": pg.Float(-5, 5),
        "lr": pg.Float(1e-5, 1e-1, log=True),
        "n": pg.Int(1, 10),
        "act": pg.Categorical(["relu", "tanh", True, 3]),
        "depth": pg.Int(1, 4),
        "width3": pg.Int(8, 64, when="depth >= 3"),
        "fixed": 7,
    }
)


def quadratic(params, trial):
    return params["x"] ** 2 + (params["n"] - 3) ** 2 + math.log10(params["lr"]) ** 2 / 10


def test_result_has_every_record_with_its_fields():
    result = pg.search(quadratic, SPACE, budget=120, seed=0)
    assert len(result) == 120 and [r.id for r in result.records] == list(range(120))
    for r in result.records:
        assert r.status == "ok" and r.error is None
        assert r.value == pytest.approx(quadratic(r.params, None))
        assert r.metrics == {"value": r.value}
        assert r.island == 0 and r.worker == 0
        assert 0 <= r.start <= r.end
        assert r.params["fixed"] == 7
        assert ("width3" in r.params) == (r.params["depth"] >= 3)
    assert [r.generation for r in result.records] == list(range(120))
    values = [r.value for r in result.records]
    assert result.best.value == min(values)
    assert [r.value for r in result.top(3)] == sorted(values)[:3]
    assert result.best_params == result.best.params
    assert result.info.seed == 0 and result.info.n_workers == 1


def test_same_seed_same_candidates_and_different_seed_different():
    def params_of(seed):
        return [r.params for r in pg.search(quadratic, SPACE, budget=80, seed=seed).records]

    assert params_of(4) == params_of(4)
    assert params_of(4) != params_of(5)


def test_seed_is_reproducible_even_if_the_objective_uses_random():
    def noisy(params, trial):
        random.random()
        np.random.random()
        return quadratic(params, trial)

    a = pg.search(noisy, SPACE, budget=60, seed=9).records
    b = pg.search(quadratic, SPACE, budget=60, seed=9).records
    assert [r.params for r in a] == [r.params for r in b]


def test_unseeded_run_reports_the_seed_that_repeats_it():
    first = pg.search(quadratic, SPACE, budget=40)
    again = pg.search(quadratic, SPACE, budget=40, seed=first.info.seed)
    assert [r.params for r in first.records] == [r.params for r in again.records]


def test_ga_improves_on_random_for_a_simple_bowl():
    space = pg.Space({f"x{i}": pg.Float(-5, 5) for i in range(4)})

    def bowl(params, trial):
        return sum(v * v for v in params.values())

    ga = [pg.search(bowl, space, budget=400, seed=s).best.value for s in range(3)]
    rnd = [
        pg.search(bowl, space, budget=400, seed=s, strategy="random").best.value for s in range(3)
    ]
    assert np.median(ga) < 0.1 * np.median(rnd)


def test_maximize_and_dict_metrics():
    def objective(params, trial):
        return {"acc": -quadratic(params, trial), "loss": quadratic(params, trial)}

    result = pg.search(objective, SPACE, budget=60, metric="acc", direction="maximize", seed=1)
    assert result.best.value == max(r.value for r in result.records)
    assert set(result.best.metrics) == {"acc", "loss"}
    assert result.best.metrics["loss"] == pytest.approx(-result.best.value)


def test_objective_taking_only_params():
    result = pg.search(lambda p: p["x"] ** 2, SPACE, budget=20, seed=0)
    assert all(r.ok for r in result.records)


def test_trial_reports_and_seed():
    seeds = []

    def objective(params, trial):
        seeds.append(trial.seed)
        for step in range(3):
            trial.report(step, step * 0.5)
        assert trial.comm.size == 1 and trial.rank == 0
        return 1.0

    result = pg.search(objective, SPACE, budget=10, seed=2)
    assert all(r.intermediate == ((0, 0.0), (1, 0.5), (2, 1.0)) for r in result.records)
    assert len(set(seeds)) == 10


class _FailedNeverParent(Breeder):
    """A breeder that checks at every ask that the pool holds successful records only."""

    pool_size = 8

    def __init__(self, n_genes):
        self._n = n_genes
        self.pool_statuses: set[int] = set()

    def ask(self, pool: Pool, rng):
        self.pool_statuses.update(int(s) for s in pool.rows["status"])
        return rng.random(self._n)


def test_failures_are_recorded_and_never_parents():
    breeder = _FailedNeverParent(SPACE.dim)

    class Spec(pg.Random):
        def create(self, n_genes, island_workers):
            return breeder

    def flaky(params, trial):
        if params["x"] > 2:
            raise ValueError("too big")
        if params["x"] < -2:
            return float("inf")
        if params["n"] > 8:
            return "not a number"
        return quadratic(params, trial)

    result = pg.search(flaky, SPACE, budget=200, seed=3, strategy=Spec())
    failed = [r for r in result.records if not r.ok]
    assert len(failed) > 20 and result.n_failed == len(failed)
    assert all(math.isnan(r.value) and r.error for r in failed)
    assert {"too big" in r.error for r in failed if r.params["x"] > 2} == {True}
    assert all("returned inf" in r.error for r in failed if r.params["x"] < -2)
    assert any("not a number" in r.error for r in failed)
    assert breeder.pool_statuses == {int(Status.OK)}
    assert result.best.ok


def test_broken_objective_raises_with_first_error():
    calls = []

    def broken(params, trial):
        calls.append(1)
        raise KeyError("missing column")

    with pytest.raises(pg.ObjectiveError, match="missing column"):
        pg.search(broken, SPACE, budget=1000, max_initial_failures=7)
    assert len(calls) == 7


def test_failures_after_a_success_do_not_abort():
    def late_failures(params, trial):
        if trial.id == 0:
            return 1.0
        raise RuntimeError("flaky")

    result = pg.search(late_failures, SPACE, budget=30, seed=0)
    assert len(result) == 30 and result.n_failed == 29 and result.best.id == 0


def test_time_budget():
    import time

    def slow(params, trial):
        time.sleep(0.01)
        return 1.0

    t = time.perf_counter()
    result = pg.search(slow, SPACE, budget=pg.Budget(time="0.3s"))
    assert time.perf_counter() - t < 1.5
    assert 5 < len(result) < 40
    assert max(r.start for r in result.records) <= 0.3 + 0.05


def test_space_as_search_file_mapping():
    space = {"lr": {"type": "float", "low": "1e-4", "high": 1e-1, "log": True}, "k": 3}
    result = pg.search(lambda p: p["lr"] * p["k"], space, budget=10, seed=0)
    assert {tuple(r.params) for r in result.records} == {("lr", "k")}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"budget": 0}, "budget.evaluations must be a positive integer"),
        ({"budget": {"evaluation": 3}}, "unknown budget setting"),
        ({"budget": {"time": "2 weeks"}}, "budget.time must look like"),
        ({"budget": 5, "direction": "down"}, "direction must be 'minimize' or 'maximize'"),
        ({"budget": 5, "islands": 2}, "islands=2 needs at least 2 workers"),
        ({"budget": 5, "ranks_per_worker": 0}, "ranks_per_worker must be a positive integer"),
        ({"budget": 5, "strategy": "gaa"}, "strategy.name must be one of .*did you mean 'ga'"),
        (
            {"budget": 5, "strategy": {"name": "ga", "mutaton": 0.1}},
            "unknown key 'mutaton' in strategy 'ga'; did you mean 'mutation'",
        ),
        (
            {"budget": 5, "strategy": {"name": "ga", "crossover": 1.5}},
            "crossover must be a probability",
        ),
        ({"budget": 5, "migration": {"probability": 2}}, "migration.probability must be in"),
        ({"budget": 5, "migration": {"topology": "star"}}, "migration.topology must be one of"),
        ({"budget": 5, "migration": {"topology": [[0, 1], [1, 0]]}}, "it must be 1x1"),
        ({"budget": 5, "seed": -1}, "seed must be a non-negative integer"),
        ({"budget": 5, "metric": 3}, "metric must be the name"),
    ],
)
def test_bad_arguments_raise_config_error(kwargs, message):
    with pytest.raises(pg.ConfigError, match=message):
        pg.search(quadratic, SPACE, **kwargs)


def test_not_callable_objective():
    with pytest.raises(pg.ConfigError, match="objective must be callable"):
        pg.search("not a function", SPACE, budget=3)


def test_dict_without_metric_stops_at_the_first_evaluation():
    calls = []

    def objective(p):
        calls.append(p)
        return {"a": 1.0, "b": 2.0}

    with pytest.raises(pg.ConfigError, match=r"returns a dict \(keys \['a', 'b'\]\) but no metric"):
        pg.search(objective, SPACE, budget=50)
    assert len(calls) == 1


def test_a_mistyped_metric_suggests_the_returned_name():
    with pytest.raises(pg.ObjectiveError, match="did you mean 'val_loss'"):
        pg.search(lambda p: {"val_loss": 1.0}, SPACE, budget=3, metric="val_los")
