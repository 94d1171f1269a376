"""Configurations given to evaluate first (``initial``, as Optuna's ``enqueue_trial``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import run_mpi
from hypothesis import given, settings
from hypothesis import strategies as st

import propagator as pg
from propagator.settings import Settings

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


# --- exactly the values given (issue 21) ---------------------------------------------------------
EXACT = pg.Space(
    {
        "x": pg.Float(0.1, 0.5),
        "lr": pg.Float(1e-5, 1e-1, log=True),
        "z": pg.Float(-5.0, 5.0),
        "n": pg.Int(1, 4),
    }
)


def test_the_objective_gets_the_given_floats_not_their_genes_decoded():
    """A float's gene cannot hold every value: 0.3 + 0.2 * 0 in [0.1, 0.5] would come back as
    0.30000000000000004 and 3e-4 on a log scale as 0.0003000000000000001."""
    given = [
        {"x": 0.3, "lr": 3e-4, "z": 1e-12, "n": 2},
        {"x": 0.1 + 0.2, "lr": 0.000999, "z": 0.0, "n": 3},
    ]
    assert EXACT.decode(EXACT.encode(given[0])) != given[0]  # what the genes alone give
    seen: list[dict] = []

    def objective(params):
        seen.append(params)
        return params["x"]

    pg.search(objective, EXACT, budget=4, seed=0, initial=given, strategy="ga")
    assert seen[:2] == given
    assert all(type(p[k]) is float for p in seen[:2] for k in ("x", "lr", "z"))


finite = {"allow_nan": False, "allow_infinity": False}


@settings(max_examples=300, deadline=None)
@given(
    x=st.floats(0.1, 0.5, **finite),
    lr=st.floats(1e-5, 1e-1, **finite),
    z=st.floats(-5.0, 5.0, **finite),
    n=st.integers(1, 4),
)
def test_every_float_in_range_reaches_the_objective_exactly(x, lr, z, n):
    config = {"x": x, "lr": lr, "z": z, "n": n}
    search = Settings(budget=pg.Budget(evaluations=5), initial=[config])
    genes = search.initial_genes(EXACT)[0]
    params = search.params_of(EXACT, genes)
    assert params == config and all(params[k] == config[k] for k in config)
    # the genes, which the store keeps, decode to it within a float's gene resolution
    decoded = EXACT.decode(genes)
    assert decoded["n"] == n and decoded["x"] == pytest.approx(x, rel=1e-14, abs=1e-15)
    other = genes.copy()
    other[0] = 0.5
    assert search.params_of(EXACT, other) == EXACT.decode(other)  # not an initial one
