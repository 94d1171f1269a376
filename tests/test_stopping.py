"""Early stopping (issue 11, the engine): pruners against hand-computed rung tables, the step
budget, pruned records stored and resumed, trial time limits, repeats and confirmations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import run_mpi

import propagator as pg
from propagator.engine.confirm import confirmation_tasks
from propagator.engine.records import Kind, Status, wire_dtype
from propagator.pruners import ASHA, Median, make_pruner, rung_values
from propagator.settings import Confirm

SPACE = pg.Space({"x": pg.Float(0, 1)})


def curve(params: dict, trial: pg.Trial, epochs: int = 27) -> float:
    """A learning curve: the loss falls to a floor set by x, as a training's would."""
    floor = (params["x"] - 0.3) ** 2 + 0.05
    value = math.inf
    for t in range(1, epochs + 1):
        value = floor + math.exp(-t / 3)
        trial.report(t, value)
        if trial.should_stop():
            break
    return value


# --- the rules, by hand -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("others", "loss", "goes_on"),
    [
        ([], 9.0, True),  # alone at the rung: nothing to compare with
        ([1.0], 2.0, False),  # of 2 with reduction 3, only the best goes on
        ([3.0], 2.0, True),
        ([1.0, 3.0], 2.0, False),  # of 3: the best 1
        ([1.0, 3.0, 4.0, 5.0, 6.0], 2.0, True),  # of 6: the best 2
        ([1.0, 1.5, 4.0, 5.0, 6.0], 2.0, False),
        ([1.0, 2.0, 4.0, 5.0, 6.0], 2.0, True),  # a tie with the last kept goes on
        ([0.5, 1.0, 2.5, 2.6, 3.0, 4.0, 5.0, 6.0, 7.0], 2.0, True),  # of 10: the best 3
        ([0.5, 1.0, 1.5, 1.8, 3.0, 4.0, 5.0, 6.0, 7.0], 2.0, False),
    ],
)
def test_asha_keeps_the_best_third_of_a_rung(others, loss, goes_on):
    assert ASHA().keeps(loss, np.array(others)) is goes_on


@pytest.mark.parametrize(
    ("others", "loss", "goes_on"),
    [
        ([1.0, 1.0, 1.0, 1.0], 9.0, True),  # 4 < warmup 5: nothing is stopped yet
        ([1.0, 2.0, 3.0, 4.0, 5.0], 3.0, True),  # the median
        ([1.0, 2.0, 3.0, 4.0, 5.0], 3.1, False),
        ([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3.5, True),
    ],
)
def test_median_stops_what_is_worse_than_the_median(others, loss, goes_on):
    assert Median().keeps(loss, np.array(others)) is goes_on


def test_rungs_are_geometric_and_take_the_first_report_at_or_after_their_step():
    steps = ASHA(min_step=2, reduction=3).steps()
    assert steps[:4].tolist() == [2, 6, 18, 54]
    reports = [(1, 5.0), (3, 4.0), (5, 3.0), (7, 2.0), (20, 1.0)]
    got = rung_values(reports, steps)
    assert got[:4].tolist()[:3] == [4.0, 2.0, 1.0] and np.isnan(got[3:]).all()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("ashaa", "did you mean 'asha'"),
        ({"name": "asha", "reduktion": 3}, "did you mean 'reduction'"),
        ({"name": "asha", "reduction": 1}, "reduction must be an integer >= 2"),
        ({"name": "median", "warmup": 0}, "warmup must be an integer >= 1"),
    ],
)
def test_bad_pruner_settings_name_the_field(spec, message):
    with pytest.raises(pg.ConfigError, match=message):
        make_pruner(spec)


# --- searches ---------------------------------------------------------------------------------
def test_asha_saves_steps_and_keeps_the_best():
    """On learning curves of the same shape, ASHA stops most evaluations after a few steps
    and still finds the best configuration the full search finds."""
    kwargs = {"budget": 60, "seed": 0, "strategy": "random"}
    full = pg.search(curve, SPACE, **kwargs)
    asha = pg.search(curve, SPACE, **kwargs, early_stopping="asha")
    steps = [sum(len(r.intermediate) for r in res.records) for res in (full, asha)]
    assert steps[0] == 60 * 27 and steps[1] < steps[0] / 3
    assert asha.best.value == pytest.approx(full.best.value)
    pruned = [r for r in asha.records if r.pruned]
    assert len(pruned) > 30
    for r in pruned:
        assert r.step == r.intermediate[-1][0] and r.value == r.intermediate[-1][1]
        assert r.error.startswith("stopped early: pruned by asha at step")


def test_a_pruned_evaluation_never_outranks_a_completed_one_in_the_pool():
    """The GA breeds from completed evaluations only: pruned ones are told as not ok."""
    result = pg.search(curve, SPACE, budget=60, seed=1, strategy="ga", early_stopping="asha")
    assert {r.status for r in result.records} == {"ok", "pruned"}
    assert result.best.ok and all(r.ok for r in result.top(5))


def test_the_step_budget_is_exact():
    """budget.steps counts reports; each step is reserved before it runs (should_stop after
    the report before it), so the stored steps are exactly the budget."""
    result = pg.search(curve, SPACE, budget={"steps": 100}, seed=0, strategy="random")
    reports = sum(len(r.intermediate) for r in result.records)
    assert reports == 100
    assert result.records[-1].pruned and "step budget is spent" in result.records[-1].error
    assert result.records[-1].step == 19  # 3 × 27 steps, then 19 of the fourth
    assert sum(1 for r in result.records if r.ok) == 3


def test_pg_pruned_from_the_objective_records_the_last_value():
    def objective(params, trial):
        trial.report(1, 5.0)
        trial.report(2, 4.0)
        raise pg.Pruned

    result = pg.search(objective, SPACE, budget=3, seed=0)
    assert all(r.pruned and r.value == 4.0 and r.step == 2 for r in result.records)


def test_a_trial_past_its_time_limit_keeps_the_value_it_returns_when_told_to_stop():
    """Told by should_stop that its time is up, an objective that returns a value keeps it
    (and its metrics), recorded as pruned: it stopped early, so it does not rank with the
    completed ones; one that returns nothing, or ignores the limit, failed."""
    import time

    def slow(params, trial):
        if trial.id % 2:
            return {"loss": 0.5, "extra": 1.0}  # some succeed, or the search ends as failed
        for t in range(1, 1000):
            time.sleep(0.01)
            trial.report(t, 1.0 / t)
            if trial.should_stop():
                return None if trial.id == 2 else {"loss": 0.25, "extra": float(t)}
        return {"loss": 2.0, "extra": 0.0}

    def deaf(params, trial):
        time.sleep(0.3)
        return 1.0

    told = pg.search(slow, SPACE, budget=6, seed=0, trial_timeout=0.1, metric="loss")
    kept = [r for r in told.records if r.id in (0, 4)]
    for r in kept:
        assert r.status == "pruned" and r.value == 0.25 and r.metrics["extra"] == r.step
        assert r.error.startswith("timed out after ") and "trial_timeout = 0.1 s" in r.error
        assert 5 <= r.step < 50  # stopped soon after the limit
    empty = told.records[2]
    assert empty.status == "failed" and "timed out after" in empty.error
    assert "returned no value" in empty.error
    assert told.best.value == 0.5 and told.first_error == empty.error
    with pytest.raises(pg.ObjectiveError, match="timed out: it ran"):
        pg.search(deaf, SPACE, budget=2, seed=0, trial_timeout=0.1)


def test_repeats_average_over_seeds():
    seen: dict[int, list[int]] = {}

    def noisy(params, trial):
        seen.setdefault(trial.id, []).append(trial.seed)
        return {"loss": params["x"] + trial.repeat, "other": 2.0 * trial.repeat}

    result = pg.search(noisy, SPACE, budget=4, seed=0, repeats=3, metric="loss")
    for r in result.records:
        assert r.value == pytest.approx(r.params["x"] + 1.0)  # mean of x, x + 1, x + 2
        assert r.metrics["other"] == pytest.approx(2.0)
        assert r.metrics["loss_std"] == pytest.approx(np.std([0.0, 1.0, 2.0]))
        assert r.metrics["repeats"] == 3
    assert all(len(set(seeds)) == 3 for seeds in seen.values())


def test_confirmation_tasks_take_the_best_distinct_configurations_and_what_is_done():
    dtype = wire_dtype(1)
    rows = np.zeros(6, dtype)
    rows["id"] = np.arange(6)
    rows["genes"][:, 0] = [0.1, 0.2, 0.2, 0.3, 0.4, 0.1]
    rows["values"][:, 0] = [5.0, 1.0, 1.0, 2.0, 9.0, 7.0]
    rows["status"] = [Status.OK] * 5 + [Status.OK]
    rows["kind"] = [Kind.EVALUATED] * 5 + [Kind.CONFIRMATION]  # one confirmation of 0.1
    tasks = confirmation_tasks(rows, Confirm(top=3, seeds=2), sign=1.0)
    assert tasks[:, 0].tolist() == [0.2, 0.2, 0.3, 0.3, 0.1]  # 0.1 needs one more


def test_confirm_reevaluates_the_winners_from_the_budget():
    def noisy(params, trial):
        return (params["x"] - 0.3) ** 2 + np.random.default_rng(trial.seed).normal(0, 0.01)

    result = pg.search(noisy, SPACE, budget=30, seed=2, confirm={"top": 3, "seeds": 4})
    assert len(result) == 30 and sum(r.confirmation for r in result.records) == 12
    assert len(result.confirmed) == 3
    means = [c.mean for c in result.confirmed]
    assert means == sorted(means)
    for c in result.confirmed:
        assert len(c.values) == 4 and c.mean == pytest.approx(np.mean(c.values))
        assert c.search is not None and c.search.params == c.params
    assert not result.best.confirmation
    with pytest.raises(pg.ConfigError, match=r"must exceed confirm\.top"):
        pg.search(noisy, SPACE, budget=12, confirm={"top": 3, "seeds": 4})


# --- under MPI --------------------------------------------------------------------------------
@pytest.mark.mpi
@pytest.mark.parametrize("k", [2, 4])
def test_every_rank_of_a_worker_gets_the_same_decision(tmp_path, k):
    """The first rank decides (here the step budget and ASHA), every rank stops at the same
    step: each rank notes what should_stop said at each step."""
    ranks = run_mpi(4, "stopping", tmp_path, str(k))
    answers = [r["answers"] for r in ranks]
    for worker in range(4 // k):
        group = answers[worker * k : (worker + 1) * k]
        assert all(a == group[0] for a in group), group
    records = ranks[0]["records"]
    assert any(r["status"] == "pruned" for r in records)


@pytest.mark.mpi
def test_pruned_records_are_stored_and_resumed(tmp_path):
    run_dir = tmp_path / "run"
    first = run_mpi(2, "stopping_store", tmp_path / "a", str(run_dir), "30")[0]
    stored = pg.load(run_dir)
    assert len(stored) == 30 and first["pruned"] == sum(r.pruned for r in stored.records) > 0
    assert stored.rows.dtype["rungs"].shape == (12,)
    for r, row in zip(stored.records, stored.rows, strict=True):
        if r.pruned:
            assert r.step == r.intermediate[-1][0] and np.isfinite(row["rungs"][0])
    second = run_mpi(2, "stopping_store", tmp_path / "b", str(run_dir), "60")[0]
    again = pg.load(run_dir)
    assert len(again) == 60 and second["pruned"] == sum(r.pruned for r in again.records)
    assert len(set(again.rows["id"].tolist())) == 60
