"""Tests for the multi-objective benchmark (``jobs/bench/multi_objective.py``).

The test problems agree with their published Pareto fronts and known values, the reference
points hold every point of the space, the scores have the right signs (more and better points
never lower the hypervolume), the verdicts count a higher hypervolume as a win, and the whole
benchmark runs end to end on a tiny budget.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import BENCH, bench_modules
from hypothesis import given, settings
from hypothesis import strategies as st

_MODULES = ("_mo_problems", "multi_objective", "_launch", "_peer_protocol")
NAMES = ("zdt1", "zdt2", "zdt3", "zdt6", "dtlz2")
unit = st.floats(0.0, 1.0)


@pytest.fixture(scope="module")
def bench():
    """The benchmark's modules (:func:`conftest.bench_modules`)."""
    with bench_modules(*_MODULES) as mods:
        yield SimpleNamespace(problems=mods["_mo_problems"], driver=mods["multi_objective"])


def point(bench, name: str, x0: float, rest: float) -> tuple[float, float]:
    problem = bench.problems.get_problem(name)
    x = np.full(problem.dim, rest)
    x[0] = x0
    return problem.objectives(x)


# --- the problems ----------------------------------------------------------------------------
@settings(max_examples=50, deadline=None)
@given(t=unit)
def test_zdt_pareto_points_lie_on_the_published_curves(bench, t):
    """On the Pareto set (x[1:] = 0, so g = 1): f1 = x0 and f2 = h(f1)."""
    curves = {
        "zdt1": lambda f: 1.0 - math.sqrt(f),
        "zdt2": lambda f: 1.0 - f**2,
        "zdt3": lambda f: 1.0 - math.sqrt(f) - f * math.sin(10.0 * math.pi * f),
    }
    for name, curve in curves.items():
        f1, f2 = point(bench, name, t, 0.0)
        assert f1 == t
        assert f2 == pytest.approx(curve(t), abs=1e-12)
    f1, f2 = point(bench, "zdt6", t, 0.0)
    assert f1 == pytest.approx(1.0 - math.exp(-4.0 * t) * math.sin(6.0 * math.pi * t) ** 6)
    assert f2 == pytest.approx(1.0 - f1**2, abs=1e-12)


@settings(max_examples=50, deadline=None)
@given(t=unit)
def test_dtlz2_pareto_points_lie_on_the_unit_quarter_circle(bench, t):
    f1, f2 = point(bench, "dtlz2", t, 0.5)
    assert f1**2 + f2**2 == pytest.approx(1.0)
    assert f1 == pytest.approx(math.cos(0.5 * math.pi * t), abs=1e-12)


def test_known_values_off_and_on_the_front(bench):
    assert point(bench, "zdt1", 0.25, 0.0) == pytest.approx((0.25, 0.5))
    assert point(bench, "zdt2", 0.5, 0.0) == pytest.approx((0.5, 0.75))
    # All distance variables at 1: g = 10.
    assert point(bench, "zdt1", 0.25, 1.0) == pytest.approx((0.25, 10.0 - math.sqrt(2.5)))
    assert point(bench, "zdt6", 0.0, 1.0) == pytest.approx((1.0, 10.0 - 0.1))
    # DTLZ2 with its 5 distance variables at 1: radius 1 + 5/4.
    assert point(bench, "dtlz2", 0.0, 1.0) == pytest.approx((2.25, 0.0), abs=1e-12)
    assert point(bench, "dtlz2", 0.5, 0.5) == pytest.approx((math.sqrt(0.5),) * 2)


def test_zdt3_front_is_the_five_published_pieces(bench):
    """ZDT3's front is disconnected; its pieces start at these f1 (Zitzler et al.)."""
    f1 = bench.problems.get_problem("zdt3").front[:, 0]
    starts = f1[np.r_[0, np.flatnonzero(np.diff(f1) > 0.05) + 1]]
    assert starts == pytest.approx([0.0, 0.1822, 0.4093, 0.6184, 0.8233], abs=1e-3)
    assert f1.max() == pytest.approx(0.8518, abs=1e-3)


def test_zdt6_front_starts_at_its_published_smallest_f1(bench):
    front = bench.problems.get_problem("zdt6").front
    assert front[0, 0] == pytest.approx(0.2807753191, abs=1e-4)
    assert front[:, 1] == pytest.approx(1.0 - front[:, 0] ** 2)


@pytest.mark.parametrize(
    ("name", "volume"),
    [
        ("zdt1", 1.1 * 11 - 1 / 3),  # the box minus the area under 1 - sqrt(f1)
        ("zdt2", 1.1 * 11 - 2 / 3),
        ("dtlz2", 2.475**2 - math.pi / 4),  # the box minus the quarter disc
    ],
)
def test_front_hypervolume_is_the_area_it_dominates(bench, name, volume):
    assert bench.problems.get_problem(name).front_hypervolume == pytest.approx(volume, abs=2e-3)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), name=st.sampled_from(NAMES))
def test_the_pareto_set_value_is_best_and_every_point_lies_inside_the_reference(bench, data, name):
    """Moving x[1:] to the Pareto set's value (same x0) never worsens either objective, so no
    point of the space beats the front; the reference point is worse than every point."""
    problem = bench.problems.get_problem(name)
    x = np.array(data.draw(st.lists(unit, min_size=problem.dim, max_size=problem.dim)))
    f = np.array(problem.objectives(x))
    best = np.array(problem.objectives(problem.pareto_x(x[0])))
    assert (best <= f + 1e-12).all()
    assert (f < np.array(problem.reference)).all()
    assert (f >= problem.front.min(axis=0) - 1e-9).all()


def test_unknown_problem_names_the_closest(bench):
    with pytest.raises(KeyError, match="did you mean 'zdt1'"):
        bench.problems.get_problem("zdt11")


# --- the scores ------------------------------------------------------------------------------
def test_hypervolume_counts_the_box_a_point_dominates(bench):
    zdt1 = bench.problems.get_problem("zdt1")
    assert zdt1.score(np.array([[0.0, 0.0]]))["hypervolume"] == pytest.approx(1.1 * 11)
    assert zdt1.score(np.array([[0.1, 1.0]]))["hypervolume"] == pytest.approx(1.0 * 10)
    outside = zdt1.score(np.array([[1.2, 0.0], [np.nan, 1.0]]))
    assert outside["hypervolume"] == 0.0
    assert zdt1.score(np.empty((0, 2))) == {"hypervolume": 0.0, "igd": np.inf, "igd_plus": np.inf}


@settings(max_examples=40, deadline=None)
@given(
    points=st.lists(st.tuples(unit, st.floats(0.0, 10.0)), min_size=1, max_size=20),
    extra=st.tuples(unit, st.floats(0.0, 10.0)),
)
def test_more_points_never_lower_the_hypervolume(bench, points, extra):
    """Losses are minimised: a lower point dominates more, and adding one never hurts."""
    zdt1 = bench.problems.get_problem("zdt1")
    before = zdt1.score(np.array(points))
    after = zdt1.score(np.array([*points, extra]))
    assert after["hypervolume"] >= before["hypervolume"] - 1e-12
    assert after["igd_plus"] <= before["igd_plus"] + 1e-12
    lowered = np.array(points) * 0.5
    assert zdt1.score(lowered)["hypervolume"] >= before["hypervolume"] - 1e-12


def test_the_true_front_scores_its_own_hypervolume_and_zero_distance(bench):
    for name in NAMES:
        problem = bench.problems.get_problem(name)
        scores = problem.score(problem.front)
        assert scores["hypervolume"] == pytest.approx(problem.front_hypervolume)
        assert scores["igd"] == pytest.approx(0.0, abs=1e-12)


# --- the verdicts ----------------------------------------------------------------------------
def run(tool: str, problem: str, hv: float) -> dict:
    return {"tool": tool, "problem": problem, "hypervolume": hv, "igd": -hv, "igd_plus": -hv}


def test_wins_count_a_higher_median_hypervolume(bench):
    d = bench.driver
    runs = [run("a", "zdt1", v) for v in (1.0, 9.0, 8.0)] + [run("b", "zdt1", 5.0)]
    runs += [run("a", "zdt2", 1.0), run("b", "zdt2", 2.0), run("a", "dtlz2", 3.0)]
    runs += [run("b", "dtlz2", 3.0), run("a", "zdt3", 1.0)]
    summary = d.summarize(runs, ["a", "b"], ["zdt1", "zdt2", "dtlz2", "zdt3"])
    assert summary["zdt1"]["a"] == {"hypervolume": 8.0, "igd": -8.0, "igd_plus": -8.0, "runs": 3}
    assert "b" not in summary["zdt3"]
    assert d.wins(summary, "a", "b") == (1, 1, 1)
    assert d.wins(summary, "b", "a") == (1, 1, 1)
    table = d.markdown(summary, ["a", "b"], "hypervolume", 2)
    assert "| zdt1 | 11.77 | 8.00 | 5.00 |" in table
    assert "| zdt3 | 12.22 | 1.00 | - |" in table


def test_report_states_the_target_against_both_nsga2_settings(bench):
    d = bench.driver
    runs = [run(d.DEFAULT, "zdt1", 9.0), run("nsga2-pop50", "zdt1", 8.0)]
    runs += [run("nsga2-pop20", "zdt1", 9.5)]
    labels = [d.DEFAULT, "nsga2-pop50", "nsga2-pop20"]
    text = d.report(
        d.summarize(runs, labels, ["zdt1"]),
        labels,
        {"ranks": 4, "evaluations": 100, "seeds": 1},
    )
    assert "target: pg-default above nsga2-pop50 (1 wins, 0 losses): met" in text
    assert "target: pg-default above nsga2-pop20 (0 wins, 1 losses): NOT met" in text


# --- the runs --------------------------------------------------------------------------------
@pytest.mark.parametrize("label", ["nsga2-pop50", "nsga2-pop20", "optuna-motpe", "optuna-random"])
def test_optuna_peers_evaluate_the_problem_on_the_budget(bench, label):
    zdt1 = bench.problems.get_problem("zdt1")
    out = bench.driver.run_optuna(label, zdt1, 12, seed=3)
    values = np.array(out["values"])
    assert out["evaluations"] == 12 and values.shape == (12, 2)
    assert ((values[:, 0] >= 0) & (values[:, 0] <= 1) & (values[:, 1] >= 0)).all()
    assert out == bench.driver.run_optuna(label, zdt1, 12, seed=3)  # seeded


@pytest.mark.mpi
def test_benchmark_runs_end_to_end_on_a_tiny_budget(bench, tmp_path):
    results = tmp_path / "mo.json"
    cmd = [sys.executable, str(BENCH / "multi_objective.py"), "--evaluations", "8"]
    cmd += ["--seeds", "1", "--ranks", "2", "--problems", "zdt1", "--results", str(results)]
    cmd += ["--only", "pg-default", "pg-default-2isl", "nsga2-pop20"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = json.loads(results.read_text())
    tools = ["nsga2-pop20", "pg-default", "pg-default-2isl"]
    assert sorted(r["tool"] for r in out["runs"]) == tools
    zdt1 = bench.problems.get_problem("zdt1")
    for r in out["runs"]:
        assert r["evaluations"] == 8 and len(r["values"]) == 8
        assert r["hypervolume"] == pytest.approx(zdt1.score(np.array(r["values"]))["hypervolume"])
        assert 0.0 < r["hypervolume"] < zdt1.front_hypervolume
    assert sorted(out["summary"]["zdt1"]) == tools
    assert "target: pg-default above nsga2-pop20" in proc.stdout
