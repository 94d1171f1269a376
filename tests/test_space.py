"""Tests of the search space (:mod:`propagator.space`) and its conditions.

Sections:

1. Random spaces: hypothesis strategies that build spaces of every parameter kind, with
   (nested) conditions, plus an independent oracle for which parameters are active.
2. Round trips: ``decode(encode(x)) == x``.
3. Decoding any vector gives a valid point.
4. Distribution of the encoding.
5. Structure and sampling.
6. Bad definitions, bad search-file entries and bad points.
7. Serialisation and equality.
8. Conditions.

The strategies' candidates (GA included) are tested in ``test_strategies.py``.
"""

from __future__ import annotations

import json
import math
import operator
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from propagator.errors import SpaceError
from propagator.space import Categorical, Constant, Float, Int, Space
from propagator.space.conditions import Condition

EPS = sys.float_info.epsilon
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
THOROUGH = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# =============================================================================================
# 1. Random spaces and the activity oracle
# =============================================================================================

Pred = Callable[[dict[str, Any]], bool]


@dataclass(frozen=True)
class Spec:
    """One generated parameter.

    ``base`` is the parameter without its condition (its kind and range), ``param`` what the
    space was given (maybe a plain value), ``pred`` the condition as Python code (``None``:
    unconditional). ``pred`` sees only active parameters and is false when one it reads is
    missing, as the documented semantics say.
    """

    name: str
    base: Any
    param: Any
    pred: Pred | None = None


@dataclass(frozen=True)
class Generated:
    """A generated space, its specs in dependency order, and its definition order."""

    space: Space
    specs: tuple[Spec, ...]
    order: tuple[str, ...]

    def spec(self, name: str) -> Spec:
        return next(s for s in self.specs if s.name == name)


def _choice_key(c: object) -> tuple[str, object]:
    return (type(c).__name__, c)


def same(a: object, b: object) -> bool:
    """Equal and of the same type (so ``1``, ``1.0`` and ``True`` differ)."""
    return type(a) is type(b) and a == b


def oracle(refs: list[str], fn: Callable[[dict[str, Any]], bool]) -> Pred:
    """The oracle for a condition: false when a parameter it reads is inactive."""
    return lambda v: all(r in v for r in refs) and bool(fn(v))


# A fixed network-like family with nested conditions, mixed in with random parameters.
NET_ACT = ("relu", "gelu", "tanh", None, 1, 1.0, True)
NET: tuple[Spec, ...] = (
    Spec("depth", Int(1, 5), Int(1, 5)),
    Spec(
        "width3",
        Int(8, 64, log=True),
        Int(8, 64, log=True, when="depth >= 3"),
        oracle(["depth"], lambda v: v["depth"] >= 3),
    ),
    Spec(
        "width4",
        Int(8, 128, log=True),
        Int(8, 128, log=True, when="depth >= 4 and width3 > 16"),
        oracle(["depth", "width3"], lambda v: v["depth"] >= 4 and v["width3"] > 16),
    ),
    Spec("act", Categorical(NET_ACT), Categorical(NET_ACT)),
    Spec("use_bn", Categorical((True, False)), Categorical([True, False])),
    Spec(
        "bn_momentum",
        Float(0.5, 0.999),
        Float(0.5, 0.999, when="use_bn == true"),
        oracle(["use_bn"], lambda v: v["use_bn"] is True),
    ),
    Spec(
        "dropout",
        Float(0.0, 0.5),
        Float(0.0, 0.5, when="act in ['relu', 'gelu']"),
        oracle(["act"], lambda v: v["act"] in ["relu", "gelu"]),
    ),
    Spec(
        # `or` with an inactive parameter: the whole condition is false (names rule)
        "slope",
        Float(1e-3, 0.3, log=True),
        Float(1e-3, 0.3, log=True, when="act == null or width4 >= 100"),
        oracle(["act", "width4"], lambda v: v["act"] is None or v["width4"] >= 100),
    ),
    Spec("optimizer", Constant("adam"), "adam"),
    Spec(
        "head",
        Constant([64, 32]),
        Constant([64, 32], when="not (depth < 2)"),
        oracle(["depth"], lambda v: not v["depth"] < 2),
    ),
)

scalars = st.one_of(
    st.sampled_from([1, 1.0, True, 0, 0.0, False, None, "1", "", "relu"]),
    st.text(alphabet="ab_' \"", max_size=4),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
)
choice_lists = st.lists(scalars, min_size=1, max_size=7, unique_by=_choice_key)


@st.composite
def float_bounds(draw: st.DrawFn, log: bool) -> tuple[float, float]:
    lo, hi = (1e-300, 1e300) if log else (-1e9, 1e9)
    a = draw(st.floats(lo, hi))
    b = draw(st.floats(lo, hi).filter(lambda x: x != a))
    low, high = min(a, b), max(a, b)
    if log and not math.log(low) < math.log(high):  # too close for a log scale: refused
        high = low * 2
    return low, high


@st.composite
def int_bounds(draw: st.DrawFn, log: bool) -> tuple[int, int]:
    low = draw(st.integers(1, 10**6) if log else st.integers(-(10**9), 10**9 - 1))
    high = draw(st.sampled_from([low + 1, low + 3]) | st.integers(low + 1, 10**9))
    return low, high


@st.composite
def base_params(draw: st.DrawFn) -> Any:
    """A parameter of any kind, without condition."""
    kind = draw(st.sampled_from(["float", "float_log", "int", "int_log", "cat", "const"]))
    if kind.startswith("float"):
        return Float(*draw(float_bounds(log=kind == "float_log")), log=kind == "float_log")
    if kind.startswith("int"):
        return Int(*draw(int_bounds(log=kind == "int_log")), log=kind == "int_log")
    if kind == "cat":
        return Categorical(tuple(draw(choice_lists)))
    return Constant(draw(scalars | st.lists(scalars, max_size=3)))


def with_when(base: Any, when: str | None, plain: bool) -> Any:
    """``base`` with condition ``when``; unconditional constants may become plain values."""
    if isinstance(base, Float):
        return Float(base.low, base.high, log=base.log, when=when)
    if isinstance(base, Int):
        return Int(base.low, base.high, log=base.log, when=when)
    if isinstance(base, Categorical):
        return Categorical(list(base.choices), when=when)
    if when is None and plain and not isinstance(base.value, dict):
        return base.value
    return Constant(base.value, when=when)


@st.composite
def literal(draw: st.DrawFn, c: Any) -> str:
    """A condition literal for ``c``, in Python or YAML spelling."""
    if c is None:
        return draw(st.sampled_from(["null", "None"]))
    if c is True:
        return draw(st.sampled_from(["true", "True"]))
    if c is False:
        return draw(st.sampled_from(["false", "False"]))
    return repr(c)


CMP = {">=": operator.ge, "<": operator.lt, "==": operator.eq, "!=": operator.ne}


@st.composite
def atoms(draw: st.DrawFn, s: Spec) -> tuple[str, Callable[[dict[str, Any]], bool]]:
    """A comparison on parameter ``s`` (text and Python meaning)."""
    b, n = s.base, s.name
    if isinstance(b, Int):
        op = draw(st.sampled_from(sorted(CMP)))
        t = draw(st.integers(b.low, b.high))
        return f"{n} {op} {t}", lambda v: CMP[op](v[n], t)
    if isinstance(b, Float):
        op = draw(st.sampled_from([">=", "<"]))
        t = draw(st.floats(b.low, b.high))
        return f"{n} {op} {t!r}", lambda v: CMP[op](v[n], t)
    choices = list(b.choices) if isinstance(b, Categorical) else [b.value]
    if len(choices) > 1 and draw(st.booleans()):
        sub = draw(st.lists(st.sampled_from(choices), min_size=1, max_size=3))
        neg = draw(st.booleans())
        text = f"{n} {'not in' if neg else 'in'} [{', '.join(draw(literal(c)) for c in sub)}]"
        return text, lambda v: (v[n] in sub) != neg
    c = draw(st.sampled_from(choices))
    op = draw(st.sampled_from(["==", "!="]))
    return f"{n} {op} {draw(literal(c))}", lambda v: CMP[op](v[n], c)


def _conditionable(s: Spec, float_conditions: bool) -> bool:
    b = s.base
    if isinstance(b, Constant):
        v = b.value
        return v is None or isinstance(v, (str, int, float))
    return float_conditions or not isinstance(b, Float)


@st.composite
def conditions(draw: st.DrawFn, earlier: list[Spec], float_conditions: bool) -> tuple[str, Pred]:
    """A condition over one or two earlier parameters, maybe combined and negated."""
    pool = [s for s in earlier if _conditionable(s, float_conditions)]
    k = draw(st.integers(1, min(2, len(pool))))
    refs = draw(st.lists(st.sampled_from(pool), min_size=k, max_size=k, unique_by=lambda s: s.name))
    parts = [draw(atoms(s)) for s in refs]
    text, fn = parts[0]
    if len(parts) == 2:
        (t0, f0), (t1, f1) = parts
        if draw(st.booleans()):
            text, fn = f"({t0}) and ({t1})", lambda v: f0(v) and f1(v)
        else:
            text, fn = f"({t0}) or ({t1})", lambda v: f0(v) or f1(v)
    if draw(st.booleans()):
        text, fn = f"not ({text})", (lambda g: lambda v: not g(v))(fn)
    return text, oracle([s.name for s in refs], fn)


@st.composite
def spaces(draw: st.DrawFn, float_conditions: bool = False, max_params: int = 6) -> Generated:
    """A random space: random parameters with random (nested) conditions, maybe the NET
    family, defined in a random order (so conditions may name parameters defined later).

    Conditions on floats are left out unless ``float_conditions``: a float round-trips only
    to within a few ulp, so a value right on a float threshold may flip its dependents.
    """
    specs: list[Spec] = list(NET) if draw(st.booleans()) else []
    for i in range(draw(st.integers(1, max_params))):
        base = draw(base_params())
        text, pred = None, None
        if any(_conditionable(s, float_conditions) for s in specs) and draw(st.booleans()):
            text, pred = draw(conditions(specs, float_conditions))
        specs.append(Spec(f"p{i}", base, with_when(base, text, draw(st.booleans())), pred))
    order = tuple(draw(st.permutations([s.name for s in specs])))
    by_name = {s.name: s for s in specs}
    while True:
        try:
            space = Space({n: by_name[n].param for n in order})
            break
        except SpaceError as exc:  # a condition that never holds is refused: drop it
            never = re.match(r"parameter '(\w+)': condition .* never holds", str(exc))
            if never is None:
                raise
            s = by_name[never[1]]
            by_name[s.name] = Spec(s.name, s.base, with_when(s.base, None, False), None)
    return Generated(space, tuple(by_name[s.name] for s in specs), order)


def expected_active(gen: Generated, point: dict[str, Any]) -> list[str]:
    """The parameters that must be active in ``point``, by the oracle, in definition order."""
    active: dict[str, Any] = {}
    for s in gen.specs:  # dependency order
        if s.pred is None or s.pred(active):
            assert s.name in point, f"{s.name} should be active in {point}"
            active[s.name] = point[s.name]
    return [n for n in gen.order if n in active]


def assert_valid(gen: Generated, point: dict[str, Any]) -> None:
    """``point`` has exactly the active parameters, in definition order, each a valid value."""
    assert list(point) == expected_active(gen, point)
    for name, v in point.items():
        b = gen.spec(name).base
        if isinstance(b, Float):
            assert type(v) is float and b.low <= v <= b.high, (name, v)
        elif isinstance(b, Int):
            assert type(v) is int and b.low <= v <= b.high, (name, v)
        elif isinstance(b, Categorical):
            assert any(v is c for c in b.choices), (name, v, b.choices)
        else:
            assert same(v, b.value), (name, v)


def assert_float_close(p: Float, got: float, want: float) -> None:
    """A float round trip: inside the bounds and within a few ulp.

    The gene is one float in [0, 1], so two resolution limits apply: a linear range that
    does not start at 0 or above resolves values only to a few ulp of the range's magnitude,
    and a gene below the smallest normal float (a value tiny against the range) loses
    relative precision; there the tolerance is absolute.
    """
    assert type(got) is float and p.low <= got <= p.high
    if p.log:
        tol = 0.0
    elif p.low >= 0:
        tol = 4 * math.ulp(0.0) * (p.high - p.low)  # a few subnormal gene steps
    else:
        tol = 8 * EPS * (abs(p.low) + abs(p.high))
    assert math.isclose(got, want, rel_tol=1e-12, abs_tol=tol), (p, got, want)


def assert_same_point(gen: Generated, got: dict[str, Any], want: dict[str, Any]) -> None:
    """Same keys in the same order; exact values except floats (few ulp)."""
    assert list(got) == list(want)
    for name, v in want.items():
        b = gen.spec(name).base
        if isinstance(b, Float):
            assert_float_close(b, got[name], v)
        else:
            assert same(got[name], v), (name, got[name], v)


def assert_valid_genes(gen: Generated, genes: np.ndarray, point: dict[str, Any]) -> None:
    """Encoded genes: the right length, in [0, 1], and 0.5 for inactive parameters."""
    assert isinstance(genes, np.ndarray) and genes.shape == (gen.space.dim,)
    assert np.all((genes >= 0) & (genes <= 1))
    for i, name in enumerate(gen.space.genes):
        if name not in point:
            assert genes[i] == 0.5


@st.composite
def direct_points(draw: st.DrawFn, gen: Generated) -> tuple[dict[str, Any], dict[str, Any]]:
    """A valid point drawn from the ranges themselves (not via decode), and the point its
    decoding must give (the same, plus omitted constants, in definition order)."""
    given_: dict[str, Any] = {}
    full: dict[str, Any] = {}
    for s in gen.specs:
        if s.pred is not None and not s.pred(full):
            continue
        b = s.base
        if isinstance(b, Float):
            v = draw(st.sampled_from([b.low, b.high]) | st.floats(b.low, b.high))
        elif isinstance(b, Int):
            v = draw(st.sampled_from([b.low, b.high]) | st.integers(b.low, b.high))
        elif isinstance(b, Categorical):
            v = draw(st.sampled_from(b.choices))
        else:
            full[s.name] = b.value
            if draw(st.booleans()):
                given_[s.name] = b.value
            continue
        given_[s.name] = full[s.name] = v
    return given_, {n: full[n] for n in gen.order if n in full}


def unit_genes(dim: int) -> st.SearchStrategy[np.ndarray]:
    return st.lists(st.floats(0.0, 1.0), min_size=dim, max_size=dim).map(np.array)


# =============================================================================================
# 2. Round trips
# =============================================================================================


@THOROUGH
@given(st.data())
def test_round_trip_of_decoded_points(data: st.DataObject) -> None:
    """decode(encode(p)) == p for points p obtained by decoding random genes."""
    gen = data.draw(spaces())
    point = gen.space.decode(data.draw(unit_genes(gen.space.dim)))
    assert_valid(gen, point)
    genes = gen.space.encode(point)
    assert_valid_genes(gen, genes, point)
    assert_same_point(gen, gen.space.decode(genes), point)


@THOROUGH
@given(st.data())
def test_round_trip_of_points_drawn_from_the_ranges(data: st.DataObject) -> None:
    """decode(encode(p)) == p for points drawn directly from the ranges, bounds included
    (constants may be left out of p; decoding adds them)."""
    gen = data.draw(spaces())
    point, expected = data.draw(direct_points(gen))
    genes = gen.space.encode(point)
    assert_valid_genes(gen, genes, point)
    decoded = gen.space.decode(genes)
    assert_valid(gen, decoded)
    assert_same_point(gen, decoded, expected)


@pytest.mark.parametrize(
    "param, values",
    [
        (Int(-(10**9), 10**9), [-(10**9), -1, 0, 1, 10**9 - 1, 10**9]),
        (Int(1, 10**9, log=True), [1, 2, 3, 31, 32, 999_999_999, 10**9]),
        (Int(0, 1), [0, 1]),
        (Float(1e-300, 1e300, log=True), [1e-300, 1e-5, 1.0, 3.3e299, 1e300]),
        (Float(5e-324, 1.0, log=True), [5e-324, 1e-310, 0.5, 1.0]),
        (Float(-1.0, 1.0), [-1.0, -0.5, 0.0, 0.25, 1.0]),
        (Float(1.0, math.nextafter(1.0, 2.0)), [1.0, math.nextafter(1.0, 2.0)]),
        (Float(0.0, 1e300), [0.0, 1e-7, 1.0, 1e300]),
    ],
)
def test_round_trip_at_extremes(param: Any, values: list[Any]) -> None:
    """Bounds, tiny and huge magnitudes, and the narrowest possible float range round-trip."""
    space = Space({"x": param})
    for v in values:
        back = space.decode(space.encode({"x": v}))["x"]
        if isinstance(param, Float):
            assert_float_close(param, back, v)
        else:
            assert same(back, v)


def test_categorical_round_trip_keeps_1_1point0_and_true_apart() -> None:
    """``1``, ``1.0``, ``True`` (and ``0``, ``0.0``, ``False``, ``None``, ``'1'``) are
    distinct choices; each decodes to itself."""
    choices = [1, 1.0, True, 0, 0.0, False, None, "1"]
    space = Space({"c": Categorical(choices)})
    for c in choices:
        back = space.decode(space.encode({"c": c}))["c"]
        assert same(back, c)


# =============================================================================================
# 3. Any vector decodes to a valid point
# =============================================================================================

any_floats = st.floats(allow_nan=False) | st.sampled_from([-1e308, -1.0, -0.0, 1.0, 2.0, 1e308])


@THOROUGH
@given(st.data())
def test_any_vector_decodes_to_a_valid_point(data: st.DataObject) -> None:
    """Any non-NaN vector (outside [0, 1], huge, negative, infinite) decodes to a valid point
    with exactly the parameters whose conditions hold; it decodes as its clipped self."""
    gen = data.draw(spaces(float_conditions=True))
    dim = gen.space.dim
    genes = np.array(data.draw(st.lists(any_floats, min_size=dim, max_size=dim)), dtype=float)
    point = gen.space.decode(genes)
    assert_valid(gen, point)
    clipped = gen.space.decode(np.clip(genes, 0.0, 1.0))
    assert list(point) == list(clipped)
    assert all(same(point[k], clipped[k]) for k in point)


@FAST
@given(st.data())
def test_decode_accepts_lists_and_other_float_dtypes(data: st.DataObject) -> None:
    """A list decodes like the array of the same genes; float32 genes decode validly."""
    gen = data.draw(spaces())
    genes = data.draw(unit_genes(gen.space.dim))
    as_list, as_array = gen.space.decode(genes.tolist()), gen.space.decode(genes)
    assert list(as_list) == list(as_array)
    assert all(same(as_list[k], as_array[k]) for k in as_list)
    assert_valid(gen, gen.space.decode(genes.astype(np.float32)))


def test_decode_extremes_give_the_bounds() -> None:
    """Genes at or beyond the ends decode to the bounds and to the first/last choice."""
    space = Space(
        {
            "f": Float(-2.0, 3.0),
            "g": Float(1e-5, 1e-1, log=True),
            "i": Int(1, 4),
            "j": Int(1, 1000, log=True),
            "c": Categorical(["a", "b", "c"]),
        }
    )
    lo = {"f": -2.0, "g": 1e-5, "i": 1, "j": 1, "c": "a"}
    hi = {"f": 3.0, "g": 1e-1, "i": 4, "j": 1000, "c": "c"}
    for genes, want in ((np.zeros(5), lo), (np.full(5, -7.0), lo), (np.ones(5), hi)):
        got = space.decode(genes)
        assert got["i"] == want["i"] and got["j"] == want["j"] and got["c"] == want["c"]
        assert math.isclose(got["f"], want["f"]) and math.isclose(got["g"], want["g"])
    assert space.decode(np.full(5, 1e300)) == space.decode(np.ones(5))


# =============================================================================================
# 4. Distribution of the encoding
# =============================================================================================

N = 100_000


def decoded_sample(param: Any, seed: int = 0) -> list[Any]:
    space = Space({"x": param})
    rng = np.random.default_rng(seed)
    return [space.decode(g)["x"] for g in rng.random((N, 1))]


def test_int_bins_are_equally_likely() -> None:
    """Int(1, 4): each value has probability 1/4 under uniform genes."""
    counts = Counter(decoded_sample(Int(1, 4)))
    assert set(counts) == {1, 2, 3, 4}
    for v in range(1, 5):
        assert abs(counts[v] / N - 0.25) < 0.006  # ~4.4 sigma


def test_int_bin_edges_are_exact() -> None:
    """Int(1, 4) bins are [0, 1/4), [1/4, 1/2), ...; encode gives the bin centres."""
    p = Space({"x": Int(1, 4)})
    for k in range(4):
        lo = k / 4
        assert p.decode(np.array([lo]))["x"] == k + 1
        assert p.decode(np.array([math.nextafter(lo + 0.25, 0.0)]))["x"] == k + 1
        assert p.encode({"x": k + 1})[0] == (k + 0.5) / 4


def test_log_int_is_log_uniform() -> None:
    """Int(1, 1000, log=True): values below 32 are about half (exactly log(63)/log(2001),
    as the value k owns [k - 1/2, k + 1/2) in log space)."""
    xs = decoded_sample(Int(1, 1000, log=True))
    frac = sum(x < 32 for x in xs) / N
    assert abs(frac - math.log(31.5 / 0.5) / math.log(1000.5 / 0.5)) < 0.01
    assert 0.45 < frac < 0.6
    assert min(xs) == 1 and max(xs) == 1000
    # per decade roughly equal (~1/3 each, minus the half-bins at the ends)
    decades = Counter(min(int(math.log10(x)), 2) for x in xs)
    assert all(0.25 < decades[d] / N < 0.42 for d in range(3)), decades


def test_log_float_is_log_uniform() -> None:
    """Float(1e-5, 1e-1, log=True): median near 1e-3, a quarter below 1e-4."""
    xs = np.array(decoded_sample(Float(1e-5, 1e-1, log=True)))
    assert abs(math.log10(np.median(xs)) + 3) < 0.03
    assert abs(np.mean(xs < 1e-4) - 0.25) < 0.01
    assert xs.min() >= 1e-5 and xs.max() <= 1e-1


def test_linear_float_and_categorical_are_uniform() -> None:
    """Float(-1, 3): mean 1, a quarter below 0; Categorical of 3: a third each."""
    xs = np.array(decoded_sample(Float(-1.0, 3.0)))
    assert abs(xs.mean() - 1.0) < 0.02 and abs(np.mean(xs < 0.0) - 0.25) < 0.01
    counts = Counter(decoded_sample(Categorical(["a", None, 2.5]), seed=1))
    assert set(counts) == {"a", None, 2.5}
    assert all(abs(c / N - 1 / 3) < 0.01 for c in counts.values())


# =============================================================================================
# 5. Structure and sampling
# =============================================================================================


def test_structure_genes_dim_and_plain_constants() -> None:
    """Constants (plain values included) own no gene; genes follow definition order."""
    space = Space({"a": Float(0, 1), "k": 3, "b": Int(1, 2), "c": Constant([1]), "d": "x"})
    assert space.genes == ["a", "b"] and space.dim == 2 and len(space) == 5
    assert isinstance(space.params["k"], Constant) and space.params["d"].value == "x"
    assert space.decode(np.array([0.0, 0.0])) == {"a": 0.0, "k": 3, "b": 1, "c": [1], "d": "x"}
    space.params.clear()  # a copy
    assert len(space.params) == 5


def test_sample_is_uniform_in_the_unit_cube_and_seeded() -> None:
    """``sample`` gives ``dim`` genes in [0, 1), the same for the same seed."""
    space = Space({"a": Float(0, 1), "b": Int(1, 9), "c": Categorical(["x", "y"])})
    a = space.sample(np.random.default_rng(5))
    b = space.sample(np.random.default_rng(5))
    assert a.shape == (3,) and np.all((a >= 0) & (a < 1))
    np.testing.assert_array_equal(a, b)
    many = np.array([space.sample(np.random.default_rng(s)) for s in range(2000)])
    assert np.all(np.abs(many.mean(axis=0) - 0.5) < 0.03)


def test_conditions_may_name_parameters_defined_later() -> None:
    """Definition order is free: decode evaluates in dependency order, but returns keys in
    definition order."""
    space = Space(
        {
            "w4": Int(1, 9, when="depth >= 4 and w3 > 2"),
            "w3": Int(1, 9, when="depth >= 3"),
            "depth": Int(1, 4),
        }
    )
    assert list(space.decode(np.array([0.99, 0.99, 0.99]))) == ["w4", "w3", "depth"]
    assert space.decode(np.array([0.99, 0.1, 0.99])) == {"w3": 1, "depth": 4}
    assert space.decode(np.array([0.99, 0.99, 0.6])) == {"w3": 9, "depth": 3}
    assert space.decode(np.array([0.99, 0.99, 0.0])) == {"depth": 1}
    assert space.encode({"depth": 4, "w3": 3, "w4": 5}).tolist() == pytest.approx(
        [4.5 / 9, 2.5 / 9, 3.5 / 4]
    )


# =============================================================================================
# 6. Errors
# =============================================================================================


@contextmanager
def raises_for(name: str, *patterns: str) -> Iterator[None]:
    """``pytest.raises(SpaceError)`` whose message starts with ``parameter 'NAME': `` and
    matches each regex in ``patterns``."""
    with pytest.raises(SpaceError) as info:
        yield
    msg = str(info.value)
    assert msg.startswith(f"parameter {name!r}: "), msg
    for p in patterns:
        assert re.search(p, msg), (p, msg)


BAD_PARAMS = [
    pytest.param(Float(1.0, 1.0), "low < high", id="float-low-eq-high"),
    pytest.param(Float(2.0, 1.0), "low < high", id="float-low-gt-high"),
    pytest.param(Int(3, 3), "low < high", id="int-low-eq-high"),
    pytest.param(Int(5, 1), "low < high", id="int-low-gt-high"),
    pytest.param(Float(0.0, 1.0, log=True), "log=True needs low > 0", id="float-log-zero"),
    pytest.param(Float(-1.0, 1.0, log=True), "log=True needs low > 0", id="float-log-neg"),
    pytest.param(Int(0, 10, log=True), "log=True needs low > 0", id="int-log-zero"),
    pytest.param(
        Float(7.0e16, 7.000000000000001e16, log=True),
        "too close for a log scale",
        id="float-log-same-log",
    ),
    pytest.param(Int(10**17, 10**17 + 1, log=True), "too close for a log scale", id="int-log-same"),
    pytest.param(Float(0, 1, log="yes"), "log must be true or false", id="log-not-bool"),
    pytest.param(Int(1.5, 4), "low must be an integer", id="int-low-fraction"),
    pytest.param(Int(1, 4.5), "high must be an integer", id="int-high-fraction"),
    pytest.param(Int(1, "4"), "high must be an integer", id="int-high-str"),
    pytest.param(Int(True, 4), "low must be an integer", id="int-low-bool"),
    pytest.param(Float(0.0, math.inf), "high must be a finite number", id="float-inf"),
    pytest.param(Float(-math.inf, 0.0), "low must be a finite number", id="float-minus-inf"),
    pytest.param(Float(math.nan, 1.0), "low must be a finite number", id="float-nan"),
    pytest.param(Int(0, math.inf), "high must be an integer", id="int-inf"),
    pytest.param(Float("0", 1.0), "low must be a finite number", id="float-str"),
    pytest.param(Int(0, 10**400), "high must be an integer", id="int-beyond-float"),
    pytest.param(Float(-1e308, 1e308), "high - low must be a finite", id="float-range-overflow"),
    pytest.param(Categorical([]), "must not be empty", id="no-choices"),
    pytest.param(Categorical(["a", "b", "a"]), "distinct.*'a' appears twice", id="dup-str"),
    pytest.param(Categorical([1, True, 1]), "distinct.*1 appears twice", id="dup-int"),
    pytest.param(Categorical([0.0, -0.0]), "distinct", id="dup-signed-zero"),
    pytest.param(Categorical("abc"), "choices must be a list", id="choices-str"),
    pytest.param(Categorical({"a", "b"}), "choices must be a list", id="choices-set"),
    pytest.param(Categorical([[1], 2]), "strings, numbers, booleans or null", id="choice-list"),
    pytest.param(Constant(1, when=""), "non-empty string", id="empty-condition"),
    pytest.param(Constant(1, when=3), "non-empty string", id="condition-not-str"),
]


@pytest.mark.parametrize("param, pattern", BAD_PARAMS)
def test_bad_parameter_definitions_name_the_parameter(param: Any, pattern: str) -> None:
    """Each ill-defined parameter raises SpaceError naming it, when the space is built."""
    with raises_for("bad", pattern):
        Space({"ok": Float(0, 1), "bad": param})


BAD_CONDITIONS = [
    pytest.param("dpeth >= 3", r"unknown parameter 'dpeth'; did you mean 'depth'\?", id="typo"),
    pytest.param("zzz >= 3", r"unknown parameter 'zzz'$", id="unknown"),
    pytest.param("len(act) > 1", "uses Call", id="call"),
    pytest.param("act.upper() == 'RELU'", "uses (Call|Attribute)", id="method"),
    pytest.param("depth.real > 1", "uses Attribute", id="attribute"),
    pytest.param("act[0] == 'r'", "uses Subscript", id="subscript"),
    pytest.param("(lambda: 1)() == 1", "uses (Call|Lambda)", id="lambda"),
    pytest.param("[x for x in act] == []", "uses ListComp", id="comprehension"),
    pytest.param("depth ** 2 > 4", "uses Pow", id="power"),
    pytest.param("act is null", "uses Is", id="is"),
    pytest.param("depth >=", "is not an expression", id="syntax"),
    pytest.param("depth = 3", "is not an expression", id="assignment"),
    pytest.param("act > 3", r"fails on \{'act': .*\}: .*not supported", id="str-vs-int"),
    pytest.param("depth / (depth - depth) > 0", "fails on.*division by zero", id="zero-division"),
]


@pytest.mark.parametrize("when, pattern", BAD_CONDITIONS)
def test_bad_conditions_name_the_parameter(when: str, pattern: str) -> None:
    """Unknown names (with a close-match hint), refused syntax, broken syntax and conditions
    that fail when evaluated are all reported for the parameter that has the condition."""
    with raises_for("w", pattern):
        Space({"depth": Int(1, 4), "act": Categorical(["relu", "gelu"]), "w": Int(1, 8, when=when)})


def test_condition_cycles_are_refused() -> None:
    """a -> b -> a and a -> a are cycles, reported with their path."""
    with raises_for("a", "cycle a -> b -> a"):
        Space({"a": Int(1, 4, when="b > 1"), "b": Int(1, 4, when="a > 1")})
    with raises_for("a", "cycle a -> a"):
        Space({"a": Int(1, 4, when="a > 1")})
    with raises_for("b", "cycle b -> c -> b"):
        Space({"a": Int(1, 4), "b": Int(1, 4, when="c > a"), "c": Int(1, 4, when="b > 1")})


@pytest.mark.parametrize("name", ["1a", "a-b", "", "a b", 3, None])
def test_invalid_names(name: Any) -> None:
    """Parameter names must be identifiers; the message shows the name."""
    with pytest.raises(SpaceError, match=re.escape(f"must be identifiers, but got {name!r}")):
        Space({"ok": 1, name: Float(0, 1)})


def test_bad_space_containers() -> None:
    """A space needs a non-empty mapping."""
    with pytest.raises(SpaceError, match="at least one parameter"):
        Space({})
    with pytest.raises(SpaceError, match="mapping of name -> parameter, got list"):
        Space([("a", Float(0, 1))])
    with pytest.raises(SpaceError, match="mapping of name -> parameter, got str"):
        Space.from_dict("a: 1")


BAD_ENTRIES = [
    pytest.param({"type": "uniform", "low": 0, "high": 1}, "type must be one of", id="type"),
    pytest.param({"low": 0, "high": 1}, r"type must be one of .*got None", id="no-type"),
    pytest.param(
        {"type": "float", "low": 0, "high": 1, "step": 2}, r"key\(s\) \['step'\]", id="key"
    ),
    pytest.param(
        {"type": "categorical", "choices": [1], "low": 0}, r"key\(s\) \['low'\]", id="key2"
    ),
    pytest.param({"type": "float", "high": 1}, "type float needs 'low'", id="no-low"),
    pytest.param({"type": "int", "low": 1}, "type int needs 'high'", id="no-high"),
    pytest.param({"type": "categorical"}, "type categorical needs 'choices'", id="no-choices"),
    pytest.param({"type": "constant"}, "type constant needs 'value'", id="no-value"),
    pytest.param({"type": "float", "low": "abc", "high": 1}, "low must be a number", id="nan-str"),
    pytest.param({"type": "float", "low": "inf", "high": "1"}, "low must be a finite", id="inf"),
    pytest.param({"type": "int", "low": "1.5", "high": 4}, "low must be an integer", id="int-str"),
    pytest.param({"type": "float", "low": 0, "high": 1, "log": "yes"}, "log must be", id="log"),
]


@pytest.mark.parametrize("entry, pattern", BAD_ENTRIES)
def test_bad_search_file_entries_name_the_parameter(entry: dict[str, Any], pattern: str) -> None:
    """``from_dict`` errors: unknown type or key, missing fields, unparsable numbers."""
    with raises_for("lr", pattern):
        Space.from_dict({"ok": {"type": "int", "low": 1, "high": 2}, "lr": entry})


ENC_SPACE = {
    "f": Float(0.0, 1.0),
    "i": Int(1, 4),
    "c": Categorical([1, "a"]),
    "k": Constant(7),
    "w": Int(1, 9, when="i >= 3"),
}
BAD_POINTS = [
    pytest.param({"f": 1.5, "i": 1, "c": 1}, "f", r"expected a number in \[0.0, 1.0\]", id="f>hi"),
    pytest.param({"f": math.nan, "i": 1, "c": 1}, "f", "expected a number", id="f-nan"),
    pytest.param({"f": "0.5", "i": 1, "c": 1}, "f", "expected a number", id="f-str"),
    pytest.param({"f": True, "i": 1, "c": 1}, "f", "expected a number", id="f-bool"),
    pytest.param({"f": 0.5, "i": 5, "c": 1}, "i", r"expected an integer in 1\.\.4", id="i>hi"),
    pytest.param({"f": 0.5, "i": 2.5, "c": 1}, "i", "expected an integer", id="i-fraction"),
    pytest.param({"f": 0.5, "i": True, "c": 1}, "i", "expected an integer", id="i-bool"),
    pytest.param({"f": 0.5, "i": math.inf, "c": 1}, "i", "expected an integer", id="i-inf"),
    pytest.param({"f": 0.5, "i": math.nan, "c": 1}, "i", "expected an integer", id="i-nan"),
    pytest.param({"f": 0.5, "i": 1, "c": True}, "c", r"expected one of \[1, 'a'\]", id="c-true"),
    pytest.param({"f": 0.5, "i": 1, "c": 1.0}, "c", "expected one of", id="c-1.0"),
    pytest.param({"f": 0.5, "i": 1, "c": 1, "k": 7.0}, "k", "is the constant 7", id="const"),
]


@pytest.mark.parametrize("point, name, pattern", BAD_POINTS)
def test_encode_rejects_values_outside_the_space(
    point: dict[str, Any], name: str, pattern: str
) -> None:
    """Out-of-range or wrongly typed values raise SpaceError naming the parameter."""
    space = Space(ENC_SPACE)
    with pytest.raises(SpaceError, match=pattern) as info:
        space.encode(point)
    assert str(info.value).startswith(f"parameter {name!r}")


def test_encode_rejects_unknown_missing_and_inactive_parameters() -> None:
    """Unknown names, missing active parameters and parameters given while inactive."""
    space = Space(ENC_SPACE)
    with pytest.raises(SpaceError, match=r"unknown parameter\(s\) \['zz'\]"):
        space.encode({"f": 0.5, "i": 1, "c": 1, "zz": 0})
    with pytest.raises(SpaceError, match="parameter 'c' is missing"):
        space.encode({"f": 0.5, "i": 1})
    with pytest.raises(SpaceError, match="parameter 'w' is missing"):
        space.encode({"f": 0.5, "i": 3, "c": 1})
    with pytest.raises(SpaceError, match=r"parameter 'w' is given but inactive \('i >= 3'"):
        space.encode({"f": 0.5, "i": 2, "c": 1, "w": 4})
    with pytest.raises(SpaceError, match="parameter 'kw' is given but inactive"):
        Space({"i": Int(1, 4), "kw": Constant(0, when="i > 2")}).encode({"i": 1, "kw": 0})
    # the constant may be given (with its value) or left out
    a = space.encode({"f": 0.5, "i": 3, "c": "a", "w": 2, "k": 7})
    b = space.encode({"f": 0.5, "i": 3, "c": "a", "w": 2})
    np.testing.assert_array_equal(a, b)


def test_decode_rejects_a_wrong_number_of_genes() -> None:
    space = Space(ENC_SPACE)
    with pytest.raises(SpaceError, match="expected 4 genes, but got 3"):
        space.decode(np.zeros(3))


# =============================================================================================
# 7. Serialisation and equality
# =============================================================================================


@THOROUGH
@given(spaces(float_conditions=True))
def test_to_dict_from_dict_round_trip(gen: Generated) -> None:
    """``from_dict(to_dict())`` is an equal space that decodes every vector alike."""
    spec = gen.space.to_dict()
    back = Space.from_dict(spec)
    assert back == gen.space and hash(back) == hash(gen.space)
    assert back.to_dict() == spec and back.genes == gen.space.genes
    genes = np.random.default_rng(0).random((5, gen.space.dim))
    for g in genes:
        a, b = gen.space.decode(g), back.decode(g)
        assert list(a) == list(b) and all(same(a[k], b[k]) for k in a)


@FAST
@given(spaces(float_conditions=True))
def test_to_dict_is_json_safe(gen: Generated) -> None:
    """For spaces of scalars, ``to_dict`` survives JSON and reads back equal."""
    text = json.dumps(gen.space.to_dict())
    assert Space.from_dict(json.loads(text)) == gen.space


def test_from_dict_reads_numbers_written_as_strings() -> None:
    """'1e-5' (as PyYAML reads it), '8' and '1e3' are numbers; ints stay ints."""
    space = Space.from_dict(
        {
            "lr": {"type": "float", "low": "1e-5", "high": "1e-1", "log": True},
            "width": {"type": "int", "low": "8", "high": "1e3"},
            "opt": {"type": "categorical", "choices": ["adam", "sgd"]},
            "mom": {"type": "float", "low": 0, "high": "0.99", "when": "opt == 'sgd'"},
            "seed": {"type": "constant", "value": "1e-5"},
            "epochs": 10,
        }
    )
    assert space == Space(
        {
            "lr": Float(1e-5, 0.1, log=True),
            "width": Int(8, 1000),
            "opt": Categorical(["adam", "sgd"]),
            "mom": Float(0.0, 0.99, when="opt == 'sgd'"),
            "seed": Constant("1e-5"),  # constants are taken as they are
            "epochs": 10,
        }
    )
    assert type(space.params["width"].low) is int and space.params["lr"].low == 1e-5


def test_from_dict_reads_a_yaml_search_file() -> None:
    """The search-file form, as PyYAML loads it (``1e-5`` arrives as a string)."""
    yaml = pytest.importorskip("yaml")
    spec = yaml.safe_load(
        """
        lr: {type: float, low: 1e-5, high: 1e-1, log: true}
        depth: {type: int, low: 1, high: 4}
        width3: {type: int, low: 8, high: 64, log: true, when: "depth >= 3"}
        use_bn: {type: categorical, choices: [true, false]}
        momentum: {type: float, low: 0.5, high: 0.99, when: "use_bn == true"}
        act: {type: categorical, choices: [relu, gelu, null]}
        """
    )
    assert spec["lr"]["low"] == "1e-5"  # why from_dict parses strings
    space = Space.from_dict(spec)
    point = {"lr": 1e-3, "depth": 3, "width3": 16, "use_bn": True, "momentum": 0.9, "act": None}
    back = space.decode(space.encode(point))
    assert back.keys() == point.keys() and back["width3"] == 16 and back["act"] is None


def test_equality_distinguishes_choice_types_and_gene_order() -> None:
    """Spaces are equal only if they decode alike: ``1`` vs ``True`` choices and the gene
    order matter; equal spaces hash equal."""
    assert Space({"a": Categorical([1, 2])}) != Space({"a": Categorical([True, 2])})
    assert Space({"a": Categorical([1, 2])}) != Space({"a": Categorical([1.0, 2])})
    assert Space({"a": 1}) != Space({"a": 1.0})
    ab = Space({"a": Float(0, 1), "b": Float(0, 2)})
    ba = Space({"b": Float(0, 2), "a": Float(0, 1)})
    assert ab != ba and ab.decode(np.array([0.2, 0.8])) != ba.decode(np.array([0.2, 0.8]))
    same_ab = Space({"a": Float(0.0, 1.0), "b": Float(0, 2.0)})
    assert ab == same_ab and hash(ab) == hash(same_ab) and len({ab, same_ab, ba}) == 2
    assert ab != Space({"a": Float(0, 1), "b": Float(0, 2, log=False, when="a > 0.5")})
    assert ab != {"a": Float(0, 1), "b": Float(0, 2)}


# =============================================================================================
# 8. Conditions
# =============================================================================================


def test_yaml_and_python_literal_spellings() -> None:
    """``true``/``false``/``null`` and ``True``/``False``/``None`` all work in conditions."""
    space = Space(
        {
            "use_bn": Categorical([True, False]),
            "act": Categorical([None, "relu"]),
            "m1": Constant(1, when="use_bn == true"),
            "m2": Constant(2, when="use_bn == True"),
            "m3": Constant(3, when="use_bn == false"),
            "m4": Constant(4, when="act == null"),
            "m5": Constant(5, when="act == None"),
            "m6": Constant(6, when="act != null and not use_bn"),
        }
    )
    on = {"use_bn": True, "act": None, "m1": 1, "m2": 2, "m4": 4, "m5": 5}
    assert space.decode(np.array([0.1, 0.1])) == on
    assert space.decode(np.array([0.9, 0.9])) == {"use_bn": False, "act": "relu", "m3": 3, "m6": 6}


def test_in_lists_tuples_arithmetic_and_boolean_operators() -> None:
    """``in``/``not in`` lists and tuples, arithmetic, and/or/not, chained comparisons."""
    space = Space(
        {
            "act": Categorical(["relu", "gelu", "tanh"]),
            "depth": Int(1, 6),
            "a": Constant("a", when="act in ['relu', 'gelu']"),
            "b": Constant("b", when="act not in ('relu', 'gelu')"),
            "c": Constant("c", when="depth * 2 - 1 > 7 or act == 'tanh'"),
            "d": Constant("d", when="2 <= depth < 4"),
            "e": Constant("e", when="depth % 2 == 0 and depth // 2 != 1 and -depth < -3"),
        }
    )
    for act in ["relu", "gelu", "tanh"]:
        for depth in range(1, 7):
            point = {"act": act, "depth": depth, **_consts(act, depth)}
            assert space.decode(space.encode(point)) == point
            assert space.decode(space.encode({"act": act, "depth": depth})) == point


def _consts(act: str, depth: int) -> dict[str, str]:
    """The constants of the space above that must be active."""
    want = {
        "a": act in ("relu", "gelu"),
        "b": act not in ("relu", "gelu"),
        "c": depth * 2 - 1 > 7 or act == "tanh",
        "d": 2 <= depth < 4,
        "e": depth % 2 == 0 and depth // 2 != 1 and depth > 3,
    }
    return {k: k for k, on in want.items() if on}


def test_a_condition_naming_an_inactive_parameter_is_false() -> None:
    """Even ``not`` and ``or`` do not make it true: conditions nest."""
    space = Space(
        {
            "depth": Int(1, 4),
            "w3": Int(1, 9, when="depth >= 3"),
            "x": Constant("x", when="not (w3 > 100)"),
            "y": Constant("y", when="depth == 1 or w3 > 0"),
        }
    )
    assert space.decode(np.array([0.0, 0.5])) == {"depth": 1}
    assert space.decode(np.array([0.9, 0.5])) == {"depth": 4, "w3": 5, "x": "x", "y": "y"}


def test_parameters_named_like_literals_do_not_shadow_them() -> None:
    """A parameter called ``null`` (or ``true``) does not change what the literal means."""
    space = Space(
        {
            "null": Categorical([1, 2]),
            "true": Int(0, 1),
            "y": Categorical([None, 1]),
            "x": Constant("x", when="y == null"),
            "z": Constant("z", when="y == true"),
        }
    )
    for g in ([0.1, 0.1, 0.1], [0.9, 0.9, 0.1], [0.1, 0.1, 0.9], [0.9, 0.9, 0.9]):
        got = space.decode(np.array(g))
        assert ("x" in got) is (got["y"] is None)
        assert ("z" in got) is (got["y"] == 1)


def test_condition_names_and_expression() -> None:
    """``names`` lists the parameters read (not the literals); ``expression`` is the text."""
    c = Condition("depth >= 3 and act in [null, 'relu'] or not use_bn == true")
    assert c.names == frozenset({"depth", "act", "use_bn"})
    assert c.expression == "depth >= 3 and act in [null, 'relu'] or not use_bn == true"
    assert c.holds({"depth": 3, "act": None, "use_bn": True})
    assert not c.holds({"depth": 2, "act": None, "use_bn": True})
    assert c.holds({"depth": 2, "act": None, "use_bn": False})
