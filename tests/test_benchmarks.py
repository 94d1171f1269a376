"""Tests for the benchmark set: the table, known values, bounds on the values, and the space."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import propagator as pg
from propagator import benchmarks
from propagator.benchmarks import BENCHMARKS, Benchmark
from propagator.engine.evaluation import wants_trial
from propagator.errors import ConfigError
from propagator.space import Float

# name -> (dim, low, high) for every coordinate, as in Propulate's benchmark set.
TABLE = {
    "sphere": (2, -5.12, 5.12),
    "rosenbrock": (2, -2.048, 2.048),
    "step": (5, -5.12, 5.12),
    "quartic": (30, -1.28, 1.28),
    "rastrigin": (20, -5.12, 5.12),
    "griewank": (10, -600.0, 600.0),
    "schwefel": (10, -500.0, 500.0),
    "bisphere": (30, -5.12, 5.12),
    "birastrigin": (30, -5.12, 5.12),
    "eggcrate": (2, -5.0, 5.0),
    "himmelblau": (2, -6.0, 6.0),
    "keane": (2, 0.0, 10.0),
    "leon": (2, 0.0, 10.0),
}
DETERMINISTIC = [name for name, b in BENCHMARKS.items() if not b.noisy]


class _NoNoise:
    """Stands in for the quartic generator, so the noiseless sum can be checked exactly."""

    def standard_normal(self, size: int) -> np.ndarray:
        return np.zeros(size)


def at(name: str, *x: float) -> float:
    """The benchmark ``name`` at ``x``; a single value is repeated over every coordinate."""
    b = BENCHMARKS[name]
    point = x * b.dim if len(x) == 1 else x
    return b({f"x{i}": v for i, v in enumerate(point)})


# --- the table -------------------------------------------------------------------------------
def test_table_has_exactly_the_fourteen_benchmarks():
    assert list(BENCHMARKS) == [*list(TABLE)[:9], "bukin", *list(TABLE)[9:]]
    assert all(isinstance(b, Benchmark) and b.name == name for name, b in BENCHMARKS.items())


@pytest.mark.parametrize("name", list(TABLE))
def test_dims_and_uniform_bounds(name):
    dim, lo, hi = TABLE[name]
    b = BENCHMARKS[name]
    assert b.dim == dim
    assert b.low == (lo,) * dim
    assert b.high == (hi,) * dim
    assert len(b.argmin) == dim


def test_bukin_bounds_differ_per_coordinate():
    b = BENCHMARKS["bukin"]
    assert (b.dim, b.low, b.high) == (2, (-15.0, -3.0), (-5.0, 3.0))


def test_only_quartic_is_noisy():
    assert [name for name, b in BENCHMARKS.items() if b.noisy] == ["quartic"]


@pytest.mark.parametrize("name", list(BENCHMARKS))
def test_argmin_is_inside_the_bounds(name):
    b = BENCHMARKS[name]
    assert all(lo <= v <= hi for lo, v, hi in zip(b.low, b.argmin, b.high, strict=True))


# --- minima ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", DETERMINISTIC)
def test_value_at_argmin_is_the_minimum(name):
    b = BENCHMARKS[name]
    assert b.f(np.array(b.argmin)) == pytest.approx(b.minimum, abs=1e-6)
    assert at(name, *b.argmin) == pytest.approx(b.minimum, abs=1e-6)


@pytest.mark.parametrize(
    ("name", "minimum"),
    [
        ("sphere", 0.0),
        ("rosenbrock", 0.0),
        ("step", -25.0),
        ("quartic", 0.0),
        ("rastrigin", 0.0),
        ("griewank", 0.0),
        ("bisphere", 0.0),
        ("birastrigin", 0.0),
        ("bukin", 0.0),
        ("eggcrate", 0.0),
        ("himmelblau", 0.0),
        ("keane", -0.6736675),
        ("leon", 0.0),
    ],
)
def test_stated_minima(name, minimum):
    assert BENCHMARKS[name].minimum == pytest.approx(minimum, abs=1e-12)


def test_schwefel_minimum_is_the_small_negative_residue_of_its_constants():
    b = BENCHMARKS["schwefel"]
    assert b.argmin == (420.968746,) * 10
    assert b.minimum == pytest.approx(-2.7243e-6, abs=1e-9)


def test_step_minimum_holds_on_the_whole_band():
    assert at("step", -5.12) == -25.0
    assert at("step", -5.0) == -25.0
    assert at("step", -4.999) == -20.0


def test_quartic_noiseless_part(monkeypatch):
    monkeypatch.setattr(benchmarks, "_RNG", _NoNoise())
    assert at("quartic", 0.0) == 0.0
    assert at("quartic", 1.0) == 465.0  # sum of i for i = 1..30
    assert at("quartic", -1.0) == 465.0
    x = np.zeros(30)
    x[2] = 1.28
    assert BENCHMARKS["quartic"].f(x) == pytest.approx(3 * 1.28**4)


def test_quartic_at_zero_is_the_absolute_value_of_30_unit_normals(monkeypatch):
    monkeypatch.setattr(benchmarks, "_RNG", np.random.default_rng(1234))
    values = np.array([at("quartic", 0.0) for _ in range(4000)])
    assert values.min() >= 0.0
    # E|N(0, 30)| = sqrt(30) sqrt(2/pi) ≈ 4.370; the standard error of this mean is ≈ 0.05.
    assert values.mean() == pytest.approx(math.sqrt(30 * 2 / math.pi), abs=0.25)
    assert len(set(values.tolist())) == len(values)


class _Trial:
    """What a benchmark reads of the engine's trial: the evaluation's seed."""

    def __init__(self, seed: int) -> None:
        self.seed = seed


def test_quartic_noise_is_drawn_from_the_trial_seed():
    params = {f"x{i}": 0.5 for i in range(30)}
    value = benchmarks.quartic(params, _Trial(7))
    assert benchmarks.quartic(params, _Trial(7)) == value
    others = [benchmarks.quartic(params, _Trial(seed)) for seed in range(8, 20)]
    assert len(set(others)) == len(others) and value not in others
    noise = np.random.default_rng(7).standard_normal(30)
    assert value == pytest.approx(abs(np.sum(np.arange(1, 31) * 0.5**4 + noise)), rel=1e-12)


def test_a_seeded_search_on_quartic_repeats_its_values():
    def values(seed: int) -> list[float]:
        result = pg.search(benchmarks.quartic, benchmarks.quartic.space, budget=12, seed=seed)
        return [r.value for r in result.records]

    assert values(3) == values(3)


def test_quartic_noise_leaves_the_global_numpy_state_alone():
    np.random.seed(7)
    expected = np.random.random()
    np.random.seed(7)
    at("quartic", 0.5)
    assert np.random.random() == expected


# --- values at other points, worked out by hand ----------------------------------------------
def test_hand_computed_values():
    assert at("sphere", 1.0, 2.0) == 5.0
    assert at("rosenbrock", 0.0, 0.0) == 1.0
    assert at("rosenbrock", -1.0, 1.0) == 4.0
    assert at("step", -4.9) == -20.0
    assert at("step", 4.9, -4.9, 0.5, -0.5, 5.12) == 5.0  # truncation toward 0
    assert at("rastrigin", 1.0) == pytest.approx(20.0)  # 10n + n (1 - 10)
    # cos(x_i / sqrt(i)) = 1 when x_i = 2 pi sqrt(i): only the bowl remains, 4 pi² 55 / 4000.
    x = 2 * np.pi * np.sqrt(np.arange(1, 11))
    assert BENCHMARKS["griewank"].f(x) == pytest.approx(np.pi**2 * 55 / 1000)
    assert at("schwefel", 0.0) == pytest.approx(4189.82887)
    assert at("bukin", -10.0, 0.0) == pytest.approx(100.0)
    assert at("bukin", -15.0, 2.25) == pytest.approx(0.05)  # on the ridge x1 = 0.01 x0²
    assert at("eggcrate", np.pi, 0.0) == pytest.approx(np.pi**2)
    assert at("eggcrate", np.pi / 2, np.pi / 2) == pytest.approx(np.pi**2 / 2 + 50)
    assert at("himmelblau", 0.0, 0.0) == 170.0
    assert at("leon", 0.0, 0.0) == 1.0
    assert at("leon", 2.0, 8.0) == 1.0


def test_lunacek_second_funnel():
    # For n = 30: s ≈ 0.5897688, mu2 ≈ -2.9835874. At mu2 only the far funnel's offset d n = 30
    # is left; one unit further right adds s n.
    mu2, s = -2.9835874, 0.5897688
    assert at("bisphere", mu2) == pytest.approx(30.0, abs=1e-5)
    assert at("bisphere", mu2 + 1) == pytest.approx(30 + 30 * s, abs=1e-5)
    # One unit off mu1 the cosine ripple vanishes, so birastrigin equals the near funnel.
    assert at("bisphere", 3.5) == pytest.approx(30.0)
    assert at("birastrigin", 3.5) == pytest.approx(30.0)


@pytest.mark.parametrize(
    "point", [(-2.805118, 3.131312), (-3.779310, -3.283186), (3.584428, -1.848126)]
)
def test_himmelblau_other_minima(point):
    assert at("himmelblau", *point) == pytest.approx(0.0, abs=1e-6)


def test_keane_minimum_symmetry_and_origin():
    assert at("keane", 1.3932491, 0.0) == pytest.approx(-0.6736675, abs=1e-6)
    assert at("keane", 0.0, 1.3932491) == pytest.approx(-0.6736675, abs=1e-6)
    assert math.isnan(at("keane", 0.0, 0.0))
    assert at("keane", 1e-200, 0.0) == 0.0  # no spurious 0/0 from underflow near the origin


# --- properties on random points -------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(data=st.data(), name=st.sampled_from(list(BENCHMARKS)))
def test_no_value_is_nan_or_below_the_minimum(data, name):
    # Every minimum in the table is a true lower bound: step's -25 because truncation never goes
    # below -5 on [-5.12, 5.12], quartic's 0 because of the absolute value, Schwefel's because
    # it is the value at the maximiser of the separable term.
    b = BENCHMARKS[name]
    x = data.draw(
        st.tuples(*[st.floats(lo, hi) for lo, hi in zip(b.low, b.high, strict=True)]),
        label="x",
    )
    value = b.f(np.array(x))
    if name == "keane" and x == (0.0, 0.0):
        assert math.isnan(value)
        return
    assert not math.isnan(value)
    assert value >= b.minimum - 1e-6


# --- space and calling convention ------------------------------------------------------------
@pytest.mark.parametrize("name", list(BENCHMARKS))
def test_space_has_one_float_per_coordinate(name):
    b = BENCHMARKS[name]
    params = b.space.params
    assert list(params) == [f"x{i}" for i in range(b.dim)]
    assert list(params.values()) == [Float(lo, hi) for lo, hi in zip(b.low, b.high, strict=True)]
    assert benchmarks.space(name) == b.space


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_space_round_trip_and_call_by_params(name):
    b = BENCHMARKS[name]
    rng = np.random.default_rng(0)
    for _ in range(5):
        params = b.space.decode(rng.random(b.dim))
        again = b.space.decode(b.space.encode(params))
        assert list(again) == list(params)
        assert np.allclose(list(again.values()), list(params.values()), rtol=0, atol=1e-9)
        assert b(params) == b.f(np.array(list(params.values())))
        assert b(params, None) == b(params)
        assert isinstance(b(params), float)


@pytest.mark.parametrize("name", list(BENCHMARKS))
def test_module_level_objectives(name):
    objective = getattr(benchmarks, name)
    assert objective is BENCHMARKS[name] is benchmarks.get(name)
    # The engine must hand over (params, trial), as for any two-parameter objective.
    assert wants_trial(objective)


def test_unknown_name_suggests_the_close_one_and_lists_all():
    with pytest.raises(ConfigError, match="rastrigin") as info:
        benchmarks.get("rastrign")
    assert "did you mean 'rastrigin'" in str(info.value)
    assert all(name in str(info.value) for name in BENCHMARKS)
    with pytest.raises(ConfigError, match="sphere"):
        benchmarks.space("no-such-function")
