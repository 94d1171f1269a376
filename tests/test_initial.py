"""Configurations given to evaluate first (``initial``, as Optuna's ``enqueue_trial``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import run_mpi

import propagator as pg

sys.path.insert(0, str(Path(__file__).parent / "mpi"))
from scenarios import INITIAL

SPACE = pg.Space({"x": pg.Float(0, 1), "n": pg.Int(1, 4), "w": pg.Int(1, 9, when="n > 2")})


def test_initial_configurations_come_first_in_order():
    seen: list[dict] = []

    def objective(params):
        seen.append(params)
        return params["x"]

    given = [{"x": 0.25, "n": 1}, {"x": 0.75, "n": 3, "w": 2}]
    result = pg.search(objective, SPACE, budget=8, seed=0, initial=given)
    assert seen[:2] == given and [r.params for r in result.records[:2]] == given
    assert given[0] not in seen[2:] and given[1] not in seen[2:]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ([{"x": 0.2, "n": 1, "w": 3}], r"initial\[0\]: parameter 'w' is given but inactive"),
        ([{"x": 2.0, "n": 1}], r"initial\[0\]: parameter 'x': expected a number in \[0.0, 1.0\]"),
        ([{"x": 0.2}], r"initial\[0\]: parameter 'n' is missing"),
        ([{"x": 0.2, "n": 1}, {"x": 0.2, "n": 1}], r"initial\[1\] repeats initial\[0\]"),
        ({"x": 0.2}, "initial must be a list"),
    ],
)
def test_bad_initial_configurations_are_refused_before_any_work(given, message):
    with pytest.raises(pg.ConfigError, match=message):
        pg.search(lambda p: 0.0, SPACE, budget=5, initial=given)


@pytest.mark.mpi
def test_initial_configurations_are_evaluated_once_by_several_workers_and_on_resume(tmp_path):
    run_dir = tmp_path / "run"
    first = run_mpi(4, "initial", tmp_path / "a", str(run_dir), "4")[0]["records"]
    assert [p for _, p in first] == INITIAL[:4]  # ids 0..3: the first four, in order
    second = run_mpi(4, "initial", tmp_path / "b", str(run_dir), "20")[0]["records"]
    params = [p for _, p in second]
    assert all(params.count(c) == 1 for c in INITIAL)  # each exactly once over both sessions
    assert [p for i, p in second if 4 <= i < 6] == INITIAL[4:]  # the rest first on resume
