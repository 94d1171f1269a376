"""Features used together, one regression test per way they broke: a kill before the run's
workers folder existed, repeats with a step budget and with early stopping, multi-rank workers
whose ranks return or stop differently, a mistyped metric hidden by pruning, a step budget
that can never be spent, the claim table's size, and the last lines of a run with failures."""

from __future__ import annotations

import math
import shutil

import pytest
from combos import Scenario, check, play

import propagator as pg
from propagator.cli.main import main
from propagator.engine.comm.claims import table_slots

SPACE = {"x": pg.Float(0.0, 1.0)}


def curve(params: dict, trial: pg.Trial, epochs: int = 4) -> dict:
    """A learning curve that asks should_stop between epochs (not after the last)."""
    value = math.inf
    for t in range(1, epochs + 1):
        value = (params["x"] - 0.3) ** 2 + math.exp(-t) + 0.1 * trial.repeat
        trial.report(t, value)
        if t < epochs and trial.should_stop():
            break
    return {"loss": value}


def test_a_run_killed_before_its_workers_folder_existed_resumes(tmp_path):
    run = tmp_path / "run"
    pg.search(curve, SPACE, metric="loss", budget=3, seed=0, run_dir=run)
    shutil.rmtree(run / "workers")  # as a kill -9 between run.h5 and the first journal
    result = pg.search(curve, SPACE, metric="loss", budget=3, seed=0, run_dir=run)
    assert len(result) == 3


def test_repeats_spend_each_step_of_a_step_budget_once_over_resumes(tmp_path):
    """Every repeat's reports are stored, so a resume counts every step spent: the run holds
    exactly the budget, however often it is run."""
    run, kw = tmp_path / "run", {"metric": "loss", "repeats": 3, "seed": 0, "strategy": "ga"}
    first = pg.search(curve, SPACE, budget={"steps": 30}, run_dir=run, **kw)
    assert sum(len(r.intermediate) for r in first.records) == 30
    ok = [r for r in first.records if r.ok]
    assert len(ok) == 2 and all(len(r.intermediate) == 12 for r in ok)  # 3 repeats × 4 steps
    last = first.records[-1]
    assert last.pruned and last.error == (
        "stopped early: the search's step budget is spent (in repeat 2 of 3)"
    )
    assert [s for s, _ in last.intermediate] == [1, 2, 3, 4, 1, 2]
    again = pg.search(curve, SPACE, budget={"steps": 30}, run_dir=run, **kw)
    assert len(again) == len(first)
    grown = pg.search(curve, SPACE, budget={"steps": 40}, run_dir=run, **kw)
    assert sum(len(r.intermediate) for r in grown.records) == 40


def test_the_pruner_judges_only_the_first_repeat():
    """A later repeat is of a candidate that passed every rung: the pruner does not stop it,
    and a pruned record's step is the one its message names."""
    result = pg.search(
        curve, SPACE, metric="loss", budget=40, seed=2, repeats=2, early_stopping="asha"
    )
    pruned = [r for r in result.records if r.pruned]
    assert pruned and any(r.ok for r in result.records)
    for r in pruned:
        assert r.error.startswith("stopped early: pruned by asha at step")
        assert r.error.endswith("(in repeat 1 of 2)")
        assert f"at step {r.step}:" in r.error and r.step == r.intermediate[-1][0]
        assert r.value == r.intermediate[-1][1]
    for r in result.records:
        if r.ok:
            assert len(r.intermediate) == 8 and r.metrics["repeats"] == 2


def test_a_mistyped_metric_fails_though_the_pruner_stops_evaluations():
    with pytest.raises(pg.ObjectiveError, match="did you mean 'loss'"):
        pg.search(curve, SPACE, metric="los", budget=60, seed=0, early_stopping="asha")


def test_a_steps_only_budget_whose_objective_never_reports_is_refused():
    with pytest.raises(pg.ConfigError, match=r"budget\.steps counts trial\.report calls"):
        pg.search(lambda p: p["x"], SPACE, budget={"steps": 100}, seed=0)


def test_claim_tables_hold_the_stored_configurations_of_a_time_only_budget():
    assert table_slots(None, 600_000) >= 2 * (600_000 + 2**19)
    assert table_slots(100, 5_000) >= 2 * 5_100
    assert table_slots(100) == 1024  # the smallest table


def test_the_last_lines_name_the_first_failure(tmp_path, capsys):
    (tmp_path / "f.py").write_text(
        "import sys\n\ndef f(params):\n    if params['x'] > 0.5:\n        sys.exit(3)\n"
        "    return params['x']\n"
    )
    path = tmp_path / "s.yaml"
    path.write_text(
        "objective: f.py:f\nspace: {x: {type: float, low: 0, high: 1}}\n"
        "budget: {evaluations: 20}\nseed: 1\nstrategy: random\n"
    )
    assert main(["run", str(path), "--progress", "none"]) == 0
    err = capsys.readouterr().err
    assert "propagate: first failure: SystemExit: 3 (propagate report" in err


@pytest.mark.mpi
@pytest.mark.parametrize(
    "scenario",
    [
        Scenario(ranks_per_worker=2, none_on_followers=True, repeats=2),
        Scenario(ranks_per_worker=2, fail_on="leader", repeats=2, early_stopping="asha"),
        Scenario(ranks_per_worker=2, fail_on="follower", repeats=2, budget="steps"),
        Scenario(ranks_per_worker=2, collective=True, repeats=2, budget="steps", seed=1),
    ],
    ids=["followers-return-none", "leader-fails", "follower-fails", "collectives-steps"],
)
def test_the_ranks_of_a_worker_take_the_same_path(scenario, tmp_path):
    """A follower's return value never counts; a rank that fails before its peers ask
    should_stop stops them instead of leaving them in a mismatched collective; each run ends
    with status 0 and the invariants of the combination test hold."""
    runs = play(scenario, tmp_path, {})
    assert all(r.code == 0 for r in runs)
    check(scenario, tmp_path, runs)
    records = pg.load(tmp_path / "run").records
    if scenario.fail_on == "none":
        assert all(r.status != "failed" for r in records)
    else:
        assert any(r.status == "failed" for r in records)
