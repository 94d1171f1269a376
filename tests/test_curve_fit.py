"""Tests for the learning-curve extrapolator (``propagator/pruners/curve_fit.py``): recovery
of noiseless curves, calibration and accuracy on the early-stopping benchmark's noisy curves,
ordering of crossing curves, and robustness to any input."""

from __future__ import annotations

import math
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import bench_modules
from hypothesis import given, settings
from hypothesis import strategies as st

from propagator.pruners.curve_fit import MIN_POINTS, Forecast, forecast, probability_below

HORIZON = 27
NOISE = 0.01


@pytest.fixture(scope="module")
def curves():
    """``jobs/bench/_curves.py`` (:func:`conftest.bench_modules`)."""
    with bench_modules("_curves") as mods:
        yield mods["_curves"]


def exp_curves(n: int, seed: int = 0) -> list[tuple[np.ndarray, float]]:
    """``n`` noisy curves ``floor + 2 exp(-t / tau) + offset + jitter`` for epochs 1 .. 27,
    floor in [0.05, 0.6], tau log-uniform in [1, 12], offset and jitter N(0, 0.01), each with
    its noiseless loss after epoch 27."""
    rng = np.random.default_rng(seed)
    t = np.arange(1, HORIZON + 1)
    out = []
    for _ in range(n):
        floor, tau = rng.uniform(0.05, 0.6), math.exp(rng.uniform(0.0, math.log(12.0)))
        noise = NOISE * (rng.standard_normal() + rng.standard_normal(HORIZON))
        out.append((floor + 2.0 * np.exp(-t / tau) + noise, floor + 2.0 * math.exp(-HORIZON / tau)))
    return out


def bench_curves(family, space, n: int, seed: int = 0) -> list[tuple[np.ndarray, float]]:
    """``n`` runs of random configurations of a ``_curves`` family, with their noiseless
    final losses."""
    rng = np.random.default_rng(seed)
    params = [space.decode(space.sample(rng)) for _ in range(n)]
    return [(family.curve(p, seed=i), family.final_loss(p)) for i, p in enumerate(params)]


def width(fc: Forecast) -> float:
    """The width of the central 90 % interval."""
    return fc.quantile(0.95) - fc.quantile(0.05)


def scores(runs: list[tuple[np.ndarray, float]], seen: int) -> SimpleNamespace:
    """Coverage of the 90 % interval and the mean absolute errors of the forecast's mean and
    of the last observed loss, forecasting epoch 27 from the first ``seen``."""
    covered, errors, naive = [], [], []
    for curve, final in runs:
        fc = forecast(np.arange(1, seen + 1), curve[:seen], HORIZON)
        assert fc is not None
        covered.append(fc.quantile(0.05) <= final <= fc.quantile(0.95))
        errors.append(abs(fc.mean - final))
        naive.append(abs(curve[seen - 1] - final))
    return SimpleNamespace(coverage=np.mean(covered), mae=np.mean(errors), naive=np.mean(naive))


@pytest.mark.parametrize(
    "curve",
    [
        lambda t: 0.2 + 1.5 * t**-0.8,
        lambda t: 1.0 + 3.0 * t**-0.5,
        lambda t: 0.3 + 2.0 * np.exp(-t / 4.0),
        lambda t: 0.1 + np.exp(-t / 2.5),
        lambda t: 0.5 + 2.0 * np.exp(-t / 8.0),
        lambda t: 0.2 + 1.0 / (1.0 + (t / 3.0) ** 1.5),
    ],
    ids=["power", "power-slow", "exp", "exp-fast", "exp-slow", "log-power"],
)
def test_noiseless_curves_are_recovered(curve):
    t = np.arange(1.0, 10.0)
    fc = forecast(t, curve(t), HORIZON)
    final, drop = curve(float(HORIZON)), curve(1.0) - curve(float(HORIZON))
    assert abs(fc.mean - final) < 0.01 * final
    assert fc.probability_below(final + 0.1 * drop) > 0.95
    assert fc.probability_below(final - 0.1 * drop) < 0.05
    assert probability_below(t, curve(t), HORIZON, final + 0.1 * drop) == pytest.approx(
        fc.probability_below(final + 0.1 * drop)
    )


@pytest.mark.parametrize("seen", [3, 9])
def test_calibrated_and_better_than_last_value(seen):
    s = scores(exp_curves(300), seen)
    assert s.coverage >= 0.85
    assert s.mae < 0.5 * s.naive


@pytest.mark.parametrize("name", ["CURVES", "SLOW_CURVES"])
def test_benchmark_curves_calibrated_from_nine_epochs(curves, name):
    s = scores(bench_curves(getattr(curves, name), curves.SPACE, 150), 9)
    assert s.coverage >= 0.85
    assert s.mae < 0.3 * s.naive


def test_crossing_curves_are_ordered_better_than_by_last_value(curves):
    """Over pairs of the slow family whose order after the first epoch differs from the final
    one, the forecast from 9 epochs orders most correctly, the 9th epoch's loss few."""
    runs = bench_curves(curves.SLOW_CURVES, curves.SPACE, 150, seed=3)
    first = np.array([c[0] for c, _ in runs])
    last = np.array([c[8] for c, _ in runs])
    predicted = np.array([forecast(np.arange(1, 10), c[:9], HORIZON).mean for c, _ in runs])
    final = np.array([f for _, f in runs])
    i, j = np.triu_indices(len(runs), 1)

    def order(v: np.ndarray) -> np.ndarray:
        return np.sign(v[i] - v[j])

    crossing = order(first) != order(final)
    assert crossing.mean() > 0.15  # the family is meant to cross
    by_forecast = np.mean(order(predicted)[crossing] == order(final)[crossing])
    by_last = np.mean(order(last)[crossing] == order(final)[crossing])
    assert by_forecast > 0.8
    assert by_forecast > by_last + 0.3


def test_uncertainty_grows_with_horizon_and_shrinks_with_points():
    runs = exp_curves(15, seed=5)
    for curve, _ in runs:
        t = np.arange(1, 10)
        widths = [width(forecast(t, curve[:9], h)) for h in (9, 12, 27, 81)]
        assert np.all(np.diff(widths) > 0)
        assert width(forecast(t[:3], curve[:3], 27)) > width(forecast(t, curve[:9], 27))
    by_points = [
        [width(forecast(np.arange(1, k + 1), c[:k], 27)) for k in (3, 6, 9)] for c, _ in runs
    ]
    assert np.all(np.diff(np.median(by_points, axis=0)) < 0)


def test_observed_steps_are_smoothed():
    curve, _ = exp_curves(1, seed=7)[0]
    t = np.arange(1, 10)
    for h in (1, 5, 9):
        fc = forecast(t, curve[:9], h)
        assert abs(fc.mean - curve[h - 1]) < 5 * NOISE
        assert width(fc) < 0.15


def test_loss_scale_and_offset_and_step_units_do_not_matter():
    curve, _ = exp_curves(1, seed=11)[0]
    t = np.arange(1, 10)
    base = forecast(t, curve[:9], HORIZON)
    for scale, offset in [(1e-12, 0.0), (1e12, -3e12), (7.0, -100.0)]:
        fc = forecast(t, scale * curve[:9] + offset, HORIZON)
        np.testing.assert_allclose(
            fc.means, scale * base.means + offset, rtol=1e-6, atol=1e-6 * scale
        )
        np.testing.assert_allclose(fc.sds, scale * base.sds, rtol=1e-6)
        np.testing.assert_allclose(fc.weights, base.weights, atol=1e-6)
    fc = forecast(250 * t, curve[:9], 250 * HORIZON)
    np.testing.assert_allclose(fc.means, base.means, rtol=1e-9)


def test_flat_and_rising_curves():
    t = np.arange(1.0, 8.0)
    flat = forecast(t, np.full(7, 0.7), HORIZON)
    assert flat.mean == pytest.approx(0.7)
    assert flat.probability_below(0.7 + 1e-6) > 0.99 and flat.probability_below(0.7 - 1e-6) < 0.01
    rising = 0.5 + 0.1 * t + np.array([0.02, -0.01, 0.0, 0.03, -0.02, 0.01, 0.0])
    fc = forecast(t, rising, HORIZON)
    assert rising.min() <= fc.mean <= rising.max()  # no family rises


def test_too_few_points_give_none():
    assert MIN_POINTS == 3
    for n in range(MIN_POINTS):
        assert forecast(np.arange(1, n + 1), np.linspace(1.0, 0.5, n), HORIZON) is None
    losses = np.array([1.0, np.nan, 0.6, np.inf, -np.inf])
    assert forecast(np.arange(1, 6), losses, HORIZON) is None
    assert probability_below(np.arange(1, 6), losses, HORIZON, 0.5) is None
    steps = np.array([1.0, np.nan, 0.0, -1.0, 5.0])
    assert forecast(steps, np.linspace(1.0, 0.5, 5), HORIZON) is None
    assert forecast(np.arange(1, 4), np.ones(4), HORIZON) is None  # lengths differ
    three = np.array([1.0, np.nan, 0.6, np.inf, 0.5])
    assert forecast(np.arange(1, 6), three, HORIZON) is not None


def test_mixture_arithmetic():
    fc = Forecast(np.array([0.0, 10.0]), np.array([1.0, 2.0]), np.array([0.25, 0.75]))
    assert fc.mean == pytest.approx(7.5)
    assert fc.probability_below(0.0) == pytest.approx(
        0.25 * 0.5 + 0.75 * 0.5 * math.erfc(5 / math.sqrt(2))
    )
    assert fc.probability_below(10.0) == pytest.approx(0.25 + 0.75 * 0.5, abs=1e-9)
    assert fc.quantile(fc.probability_below(3.0)) == pytest.approx(3.0, abs=1e-9)


finite = st.floats(-10.0, 10.0)
anything = st.floats(allow_nan=True, allow_infinity=True)


@st.composite
def curves_st(draw) -> tuple[np.ndarray, np.ndarray]:
    losses = draw(st.lists(st.one_of(finite, finite, anything), max_size=40))
    n = len(losses)
    if draw(st.booleans()):
        steps = np.arange(1, n + 1, dtype=float)
    else:
        steps = np.array(
            draw(st.lists(st.one_of(st.floats(0.0, 1e4), anything), min_size=n, max_size=n))
        )
    return steps, np.array(losses, dtype=float)


@pytest.mark.timeout(120)
@settings(max_examples=200, deadline=None)
@given(curve=curves_st(), horizon=st.integers(1, 1000))
def test_any_input_gives_none_or_a_sound_forecast(curve, horizon):
    steps, losses = curve
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        filters = list(warnings.filters)
        fc = forecast(steps, losses, horizon)
        assert warnings.filters == filters  # forecast silences warnings only while it runs
        if fc is not None:
            with np.errstate(over="ignore"):  # the test's own targets may overflow to inf
                middle = np.sort(np.concatenate([fc.means, fc.means + fc.sds]))
            targets = np.concatenate([[-np.inf, -1e308], middle, [1e308, np.inf]])
            p = np.array([fc.probability_below(x) for x in targets])
    assert not caught, [str(w.message) for w in caught]
    if fc is None:
        return
    assert np.all(np.isfinite(fc.means)) and np.all(np.isfinite(fc.sds)) and np.all(fc.sds > 0)
    assert fc.weights.sum() == pytest.approx(1.0) and np.all(fc.weights >= 0)
    # monotone up to the rounding of a weighted sum near 1e308
    assert np.all((p >= 0) & (p <= 1)) and np.all(np.diff(p) >= -1e-12)
    assert (np.isfinite(losses) & np.isfinite(steps) & (steps > 0)).sum() >= MIN_POINTS
