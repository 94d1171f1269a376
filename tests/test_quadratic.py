"""The local quadratic models: the step to the model's minimum, its trust radius, convergence,
memory, settings, and where the portfolio uses them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import run_mpi
from hypothesis import given, settings
from hypothesis import strategies as st

import propagator as pg
from propagator.engine.records import wire_dtype
from propagator.strategies import Portfolio, Quadratic, make_strategy
from propagator.strategies.pool import Pool
from propagator.strategies.quadratic import _MEMORY, _MIN_RADIUS


def _space(n: int) -> pg.Space:
    return pg.Space({f"x{i}": pg.Float(0, 1) for i in range(n)})


def _pool(n: int) -> Pool:
    return Pool(4, wire_dtype(n))


def _told(breeder, points: np.ndarray, f) -> None:
    loss = np.array([f(p) for p in points])
    breeder.tell(points, loss, np.ones(len(points), dtype=bool))


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 4),
    scale=st.sampled_from([1e-1, 1e-3, 1e-6]),
)
def test_one_step_lands_on_the_minimum_of_a_quadratic(seed: int, n: int, scale: float) -> None:
    """Points around the best of a convex quadratic (any rotation and conditioning, at any
    scale) give a step to its minimum, off by the jitter only, when the minimum lies within
    the radius of the fitted points; else a step of that radius, downhill."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    h = q @ np.diag(10.0 ** rng.uniform(-1, 1, n)) @ q.T
    minimum = rng.uniform(0.3, 0.7, n)

    def f(x: np.ndarray) -> float:
        d = x - minimum
        return float(d @ h @ d)

    breeder = Quadratic(jitter=1e-6).create(_space(n), 1)
    points = minimum + 0.2 * scale * rng.uniform(-1, 1, n) + scale * rng.uniform(-1, 1, (40, n))
    _told(breeder, points, f)
    child = breeder.ask(_pool(n), rng)
    best = points[np.argmin([f(p) for p in points])]
    terms = (n + 1) * (n + 2) // 2
    radius = np.sort(np.linalg.norm(points - best, axis=1))[2 * terms - 1]
    if np.linalg.norm(minimum - best) < radius:
        assert np.linalg.norm(child - minimum) < 1e-4 * scale
    else:
        assert np.linalg.norm(child - best) == pytest.approx(radius, rel=1e-3)
        assert f(child) < f(best)


def test_a_concave_or_far_minimum_is_approached_within_the_radius() -> None:
    """Where the model has no minimum nearby, the step stays within the radius of the
    points it was fitted on, and goes downhill."""
    rng = np.random.default_rng(0)
    breeder = Quadratic().create(_space(2), 1)
    points = 0.5 + 0.01 * rng.uniform(-1, 1, (30, 2))
    _told(breeder, points, lambda x: -float(x @ x))  # a maximum at the centre
    best = points[np.argmin([-(p @ p) for p in points])]
    radius = np.sort(np.linalg.norm(points - best, axis=1))[11]  # the 2t = 12 nearest
    for _ in range(20):
        child = breeder.ask(_pool(2), rng)
        assert np.linalg.norm(child - best) <= 1.2 * radius
        assert -(child @ child) < -(best @ best)


def test_converged_points_give_gaussian_steps_not_repeats() -> None:
    """Once the points around the best are within 1e-11 of it, children are Gaussian steps
    of about 0.1 (distinct parameters), not further model steps."""
    rng = np.random.default_rng(1)
    breeder = Quadratic().create(_space(2), 1)
    points = 0.5 + 0.1 * _MIN_RADIUS * rng.uniform(-1, 1, (30, 2))
    _told(breeder, points, lambda x: float((x - 0.5) @ (x - 0.5)))
    steps = [np.linalg.norm(breeder.ask(_pool(2), rng) - 0.5) for _ in range(50)]
    assert 0.05 < np.median(steps) < 0.3


def test_too_few_points_give_gaussian_steps_from_the_best() -> None:
    rng = np.random.default_rng(2)
    breeder = Quadratic().create(_space(3), 1)
    assert np.all(((c := breeder.ask(_pool(3), rng)) >= 0) & (c <= 1))  # nothing told: uniform
    _told(breeder, np.array([[0.2, 0.5, 0.8], [0.9, 0.9, 0.9]]), lambda x: float(x.sum()))
    steps = np.array([breeder.ask(_pool(3), rng) for _ in range(200)]) - [0.2, 0.5, 0.8]
    assert abs(np.mean(steps[:, 1])) < 0.02 and 0.07 < np.std(steps[:, 1]) < 0.13


def test_memory_keeps_the_best_half_and_the_recent_half() -> None:
    rng = np.random.default_rng(3)
    breeder = Quadratic().create(_space(1), 1)
    points = rng.random((_MEMORY + 500, 1))
    loss = points[:, 0].copy()
    breeder.tell(points, loss, np.ones(len(points), dtype=bool))
    kept = breeder._f
    assert len(kept) <= _MEMORY
    assert loss.min() in kept
    np.testing.assert_array_equal(kept[-(_MEMORY // 2) :], loss[-(_MEMORY // 2) :])


def test_quadratic_refuses_more_than_20_genes() -> None:
    Quadratic().check(_space(20))
    with pytest.raises(pg.ConfigError, match="at most 20 parameters, but the space has 21"):
        Quadratic().check(_space(21))


@pytest.mark.parametrize("jitter", [0, 1.5, "x", True])
def test_bad_jitter_is_refused(jitter) -> None:
    with pytest.raises(pg.ConfigError, match=r"strategy\.jitter must be a number in \(0, 1\]"):
        make_strategy({"name": "quadratic", "jitter": jitter})


def test_the_portfolio_adds_quadratic_models_on_small_float_spaces_only() -> None:
    auto = Portfolio()
    assert [m.name for m in auto.members_for(_space(10))] == ["ga", "cmaes", "quadratic"]
    assert [m.name for m in auto.members_for(_space(11))] == ["ga", "cmaes"]
    ints = pg.Space({"x": pg.Float(0, 1), "n": pg.Int(1, 9)})
    assert "quadratic" not in [m.name for m in auto.members_for(ints)]


@pytest.mark.mpi
def test_a_two_rank_search_converges_on_a_rotated_bowl_without_duplicates(tmp_path) -> None:
    """With the default portfolio, two workers that model the same points still propose
    distinct configurations, and the search gets far below what sampling alone reaches."""
    ranks = run_mpi(2, "batching", tmp_path, json.dumps("portfolio"), "300", "bowl")
    first = ranks[0]
    params = [tuple(p.values()) for p in first["params"]]
    assert len(set(params)) == len(params) == 300
    assert min(first["values"]) < 1e-12


@pytest.mark.parametrize("slope", [0.0, 1e-300, 1.0, 1e300])
def test_a_flat_model_steps_downhill_within_the_radius(slope: float) -> None:
    """Losses on a plane (a plateau with ``slope`` 0): the model has no curvature, and the
    child is a gradient step downhill, no longer than the radius, inside the space."""
    rng = np.random.default_rng(5)
    breeder = Quadratic().create(_space(2), 1)
    points = 0.5 + 1e-6 * rng.uniform(-1, 1, (30, 2))
    breeder.tell(points, slope * points[:, 0], np.ones(30, dtype=bool))
    best = points[np.argmin(slope * points[:, 0])] if slope else None
    for _ in range(10):
        child = breeder.ask(_pool(2), rng)
        assert np.all(np.isfinite(child)) and np.all((child >= 0) & (child <= 1))
        assert np.linalg.norm(child - 0.5) < 1e-5
        if slope >= 1.0:
            assert child[0] < best[0]
