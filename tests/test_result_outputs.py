"""Result outputs that must not mislead (issue 21): the first failure is a failure, plot
legends count pruned, paused and failed evaluations apart, savings are claimed only when a
pruner stopped something, a Pareto point is listed once, a loaded run keeps its counts,
the learning-curve figure, and the strategy of each island."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from matplotlib.figure import Figure

import propagator as pg
from propagator.engine.records import Kind, Status, wire_dtype
from propagator.results import curves, plots, watch
from propagator.results.front import front_table
from propagator.results.islands import island_strategies
from propagator.results.report import open_run, summary
from propagator.results.result import Result, RunInfo

SPACE = pg.Space({"x": pg.Float(0, 1)})
INFO = RunInfo(0, 1, 1, 1, 1.0, False, 0, 0, 0, 0)


def _made(
    statuses: list[Status],
    values: list[float],
    reports: dict[int, list[tuple[int, float]]] | None = None,
    errors: dict[int, str] | None = None,
) -> Result:
    """A result by hand: record ``i`` has id ``i``, gene ``i / n`` and the given status."""
    n = len(statuses)
    rows = np.zeros(n, wire_dtype(1))
    rows["id"] = np.arange(n)
    rows["status"] = statuses
    rows["values"][:, 0] = values
    rows["genes"][:, 0] = np.arange(n) / max(n, 1)
    rows["end"] = np.arange(n) + 1.0
    rows["step"] = -1
    return Result(SPACE, "loss", "minimize", rows, {}, errors or {}, reports or {}, INFO)


def _legend(fig: Figure) -> list[str]:
    return [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


# --- item 1: a pruning note is not an error -------------------------------------------------
def test_the_first_error_skips_the_notes_of_pruned_and_paused_evaluations():
    statuses = [Status.PRUNED, Status.PAUSED, Status.OK, Status.FAILED, Status.FAILED]
    errors = {0: "stopped early: pruned at step 3", 1: "paused by asha at step 1", 3: "boom"}
    errors[4] = "later boom"
    result = _made(statuses, [2.0, 3.0, 1.0, math.nan, math.nan], errors=errors)
    assert result.first_error == "boom"
    assert _made([Status.PRUNED, Status.OK], [2.0, 1.0], errors={0: "pruned"}).first_error is None


def test_watch_shows_the_first_real_failure(tmp_path):
    def objective(params, trial):
        trial.report(1, params["x"])
        if trial.id < 3:
            raise pg.Pruned  # recorded as pruned, with a note
        if trial.id == 4:
            raise RuntimeError("a real failure")
        return params["x"]

    pg.search(objective, SPACE, budget=8, seed=0, run_dir=tmp_path / "run")
    out = io.StringIO()
    assert watch.follow(tmp_path / "run", once=True, stream=out) == 0
    failed = next(line for line in out.getvalue().splitlines() if line.startswith("failed"))
    assert failed == "failed       1 (first: RuntimeError: a real failure)"


# --- item 2: legends count each kind of evaluation that did not complete -------------------
def test_values_png_counts_pruned_paused_and_failed_apart():
    statuses = [Status.OK] * 3 + [Status.PRUNED] * 4 + [Status.PAUSED] * 2 + [Status.FAILED]
    values = [1.0, 2.0, 3.0, 5.0, 6.0, 7.0, 8.0, 4.0, 4.5, math.nan]
    result = _made(statuses, values)
    fig = Figure()
    plots.values(fig, result)
    labels = _legend(fig)
    assert "pruned (4; last report)" in labels and "paused (2; last report)" in labels
    assert "failed (1)" in labels and not any(label.startswith("failed (7") for label in labels)
    fig = Figure()
    plots.best_over_evaluations(fig, result)
    assert "not counted: 4 pruned, 2 paused, 1 failed" in _legend(fig)


def test_a_pruned_value_never_lowers_the_best_so_far_curve():
    """A pruned evaluation's last report (0.5) is no result: the best so far stays 1."""
    result = _made([Status.OK, Status.PRUNED, Status.OK], [2.0, 0.5, 1.0])
    fig = Figure()
    plots.best_over_evaluations(fig, result)
    overall = fig.axes[0].get_lines()[0].get_ydata()
    assert list(overall) == [2.0, 2.0, 1.0]


# --- item 3: savings only when a pruner stopped evaluations ---------------------------------
def _reporting(params, trial):
    value = 1.0
    for step in range(1, 10):
        value = params["x"] + 1.0 / step
        trial.report(step, value)
        if trial.should_stop():
            break
    return value


@pytest.mark.parametrize(("stopping", "claims"), [(None, False), ("asha", True)])
def test_savings_are_claimed_only_when_a_pruner_stopped_evaluations(tmp_path, stopping, claims):
    run_dir = tmp_path / "run"
    result = pg.search(
        _reporting,
        SPACE,
        budget=30,
        seed=0,
        strategy="random",
        early_stopping=stopping,
        run_dir=run_dir,
    )
    steps = next(line for line in summary(open_run(run_dir)) if line.startswith("steps"))
    reported = sum(len(r.intermediate) for r in result.records)
    assert steps.startswith(f"steps        {reported} reported")
    assert ("saved by stopping early" in steps) is claims
    assert claims is any(r.pruned for r in result.records)


# --- item 4: a Pareto point once ------------------------------------------------------------
def test_a_configuration_evaluated_twice_is_one_point_of_the_front():
    space = pg.Space({"n": pg.Int(0, 3)})
    rows = np.zeros(5, wire_dtype(1, n_values=2))
    rows["id"] = np.arange(5)
    rows["genes"][:, 0] = [0.1, 0.9, 0.12, 0.6, 0.35]  # ids 0 and 2: both n = 0
    rows["values"] = [[1.0, 4.0], [4.0, 1.0], [1.0, 4.0], [2.0, 2.0], [2.0, 2.0]]
    rows["kind"] = Kind.EVALUATED
    result = Result(space, ["a", "b"], ["minimize"] * 2, rows, {}, {}, {}, INFO)
    # id 2 repeats id 0 (same params, same values); ids 3 and 4 share values, not params
    assert [r.id for r in result.pareto_front] == [0, 3, 4, 1]
    table = front_table(result, 10)
    assert table[0].startswith("Pareto front: 4 of 5 successful evaluations")
    assert sorted(int(line.split()[2]) for line in table[2:6]) == [0, 1, 3, 4]


def test_a_search_with_repeats_lists_each_pareto_point_once():
    def objective(params):
        return {"a": params["n"] + params["x"], "b": 3 - params["n"]}

    space = pg.Space({"n": pg.Int(0, 3), "x": pg.Categorical([0.0, 1.0])})
    result = pg.search(objective, space, budget=40, seed=0, metric=["a", "b"], deduplicate=False)
    points = [(tuple(sorted(r.params.items())), r.values) for r in result.pareto_front]
    assert len(points) == len(set(points)) == 4  # n = 0..3 with x = 0
    searched = [tuple(sorted(r.params.items())) for r in result.records]
    assert len(searched) > len(set(searched))  # configurations were evaluated again


# --- item 5: the loaded run carries the counts the command line printed ---------------------
def test_a_loaded_run_keeps_the_duplicates_avoided(tmp_path):
    space = pg.Space({"n": pg.Int(1, 4), "a": pg.Categorical(["x", "y"])})

    def objective(params):
        return params["n"] + (params["a"] == "x")

    searched = pg.search(objective, space, budget=8, seed=0, strategy="ga", run_dir=tmp_path)
    loaded = pg.load(tmp_path)
    assert searched.info.duplicates_avoided > 0
    assert loaded.info.duplicates_avoided == searched.info.duplicates_avoided
    again = pg.search(objective, space, budget=8, seed=0, strategy="ga")  # no store
    assert again.info.duplicates_avoided == searched.info.duplicates_avoided


# --- item 8: the learning curves ------------------------------------------------------------
def test_curves_png_draws_every_kind_and_highlights_the_best(tmp_path):
    statuses = [Status.OK, Status.OK, Status.PRUNED, Status.PAUSED, Status.FAILED, Status.OK]
    values = [0.5, 0.3, 0.9, 0.8, math.nan, 0.4]
    reports = {i: [(1, 1.0 + i), (2, 0.5 + i), (3, values[i] + i)] for i in range(4)}
    reports[4] = [(1, 3.0)]  # a failure after one report: a dot
    result = _made(statuses, values, reports)  # id 5 reported nothing
    fig = Figure()
    curves.draw_curves(fig, result)
    labels = _legend(fig)
    assert labels == [
        "failed (1)",
        "pruned (1)",
        "paused (1)",
        "completed (2)",
        "best 0.3 (id 1)",
        "1 evaluations reported nothing",
    ]
    best = fig.axes[0].get_lines()[-2]  # the last is the legend's note
    assert list(best.get_ydata()) == [2.0, 1.5, 1.3]
    names = [p.name for p in plots.write_plots(result, tmp_path / "with")]
    assert "curves.png" in names
    silent = _made([Status.OK, Status.OK], [1.0, 2.0])
    assert "curves.png" not in [p.name for p in plots.write_plots(silent, tmp_path / "none")]
    assert not (tmp_path / "none" / "curves.png").exists()


def test_curves_of_many_evaluations_are_thinned_and_blended():
    n = 2 * curves._MAX_CURVES + 1
    reports = {i: [(1, 2.0 + i / n), (2, 1.0 + i / n)] for i in range(n)}
    result = _made([Status.PRUNED] * (n - 1) + [Status.OK], [1.0] * n, reports)
    fig = Figure()
    curves.draw_curves(fig, result)
    assert f"pruned ({n - 1}, {curves._MAX_CURVES} drawn)" in _legend(fig)
    pruned = fig.axes[0].collections[0]
    assert len(pruned.get_segments()) == curves._MAX_CURVES
    assert pruned.get_alpha() == pytest.approx(1.6 / math.sqrt(curves._MAX_CURVES))


# --- item 9: the strategy of each island ----------------------------------------------------
def test_island_strategies_name_each_islands_strategy_and_portfolio_members():
    result = _made([Status.OK], [1.0])
    config = {
        "strategy": [
            {"name": "ga"},
            {"name": "portfolio", "members": ["tpe", "random"]},
            {"name": "portfolio", "members": "auto"},  # floats only: GA, CMA-ES, quadratic
            {"name": "nonesuch"},
        ]
    }
    assert island_strategies(config, result) == [
        "ga",
        "portfolio (tpe, random)",
        "portfolio (ga, cmaes, quadratic)",
        "nonesuch",
    ]
