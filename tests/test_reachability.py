"""Conditions that can never hold are refused (:mod:`propagator.space.reachability`)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import propagator as pg
from propagator.errors import SpaceError
from propagator.space.conditions import Condition


@pytest.mark.parametrize(
    ("params", "name", "condition"),
    [
        ({"depth": pg.Int(1, 4), "w": pg.Int(16, 512, when="depth >= 10")}, "w", "depth >= 10"),
        ({"n": pg.Int(1, 1000), "w": pg.Int(1, 3, when="n > 1000")}, "w", "n > 1000"),
        ({"n": pg.Int(1, 1000), "w": pg.Int(1, 3, when="n < 1")}, "w", "n < 1"),
        ({"n": pg.Int(1, 1000), "w": pg.Int(1, 3, when="500.2 < n < 500.9")}, "w", None),
        ({"lr": pg.Float(1e-5, 0.1), "m": pg.Float(0, 1, when="lr > 0.1")}, "m", "lr > 0.1"),
        ({"lr": pg.Float(0, 1), "m": pg.Float(0, 1, when="lr in [2, 3]")}, "m", None),
        ({"a": pg.Categorical(["x", "y"]), "b": pg.Int(1, 2, when="a == 'z'")}, "b", None),
        ({"a": pg.Categorical(["x", "y"]), "b": pg.Int(1, 2, when="a != a")}, "b", None),
        ({"c": 3, "b": pg.Int(1, 2, when="c != 3")}, "b", "c != 3"),
        (  # b is active only when a == 'x', which rules c out
            {
                "a": pg.Categorical(["x", "y"]),
                "b": pg.Int(1, 5, when="a == 'x'"),
                "c": pg.Int(1, 5, when="a == 'y' and b > 2"),
            },
            "c",
            None,
        ),
        (  # nested: d is never active because c never is; c is named, the cause
            {
                "a": pg.Int(1, 3),
                "c": pg.Int(1, 5, when="a > 3"),
                "d": pg.Int(1, 5, when="c >= 1"),
            },
            "c",
            "a > 3",
        ),
    ],
)
def test_a_condition_that_never_holds_is_refused(params, name, condition):
    with pytest.raises(SpaceError, match="never holds") as error:
        pg.Space(params)
    message = str(error.value)
    assert message.startswith(f"parameter {name!r}: condition ")
    if condition is not None:
        assert f"condition {condition!r} never holds" in message


def test_the_message_names_the_ranges_and_a_close_choice():
    with pytest.raises(SpaceError) as error:
        pg.Space(
            {
                "opt": pg.Categorical(["sgd", "adam"]),
                "warmup": pg.Int(1, 10, when="opt == 'sgd'"),
                "beta": pg.Float(0.9, 0.999, when="opt == 'adamw' or warmup > 10"),
            }
        )
    assert str(error.value) == (
        "parameter 'beta': condition \"opt == 'adamw' or warmup > 10\" never holds (opt is one "
        "of ['sgd', 'adam']; warmup is an int in 1..10, active only when \"opt == 'sgd'\"), so "
        "'beta' would never be searched; fix the condition or the ranges it names; did you "
        "mean 'adam' instead of 'adamw'?"
    )


@pytest.mark.parametrize(
    "params",
    [
        {"depth": pg.Int(1, 4), "w": pg.Int(16, 512, when="depth == 4")},  # 1 in 4
        {"n": pg.Int(1, 10**6), "w": pg.Int(1, 3, when="n == 1000000")},  # 1 in a million
        {"n": pg.Int(1, 10**6), "w": pg.Int(1, 3, when="500.2 < n < 501.1")},  # only 501
        {"lr": pg.Float(0, 0.1), "m": pg.Float(0, 1, when="lr >= 0.1")},  # the upper bound
        {"lr": pg.Float(0, 0.1), "m": pg.Float(0, 1, when="lr == 0.05")},  # one point
        {"lr": pg.Float(0, 0.1), "m": pg.Float(0, 1, when="0.05 < lr < 0.0500001")},
        {"a": pg.Categorical([None, True]), "b": pg.Int(1, 2, when="a == null")},
        {
            "a": pg.Categorical(["x", "y"]),
            "b": pg.Int(1, 5, when="a == 'x'"),
            "c": pg.Int(1, 5, when="a == 'x' and b == 5"),
        },
        {"a": pg.Int(1, 8), "b": pg.Int(1, 8), "c": pg.Int(1, 2, when="a * b == 63 - 7")},
    ],
)
def test_a_condition_that_rarely_holds_is_accepted(params):
    pg.Space(params)


def test_where_it_cannot_tell_it_accepts():
    """Arithmetic on a float or a comparison between parameters may hold between the values
    tried; such a condition is never refused (here it does in fact never hold)."""
    pg.Space({"lr": pg.Float(0, 0.1), "m": pg.Float(0, 1, when="lr * 10 > 2")})
    pg.Space({"a": pg.Float(0, 1), "b": pg.Float(2, 3), "m": pg.Float(0, 1, when="a > b")})


# --- property: the check agrees with brute force on discrete spaces -------------------------
@dataclass(frozen=True)
class Drawn:
    """A discrete parameter: its values, and the parameter itself (without condition)."""

    name: str
    values: tuple[Any, ...]
    kind: str  # "int", "wide" (too many values to try each: compared with literals only), "choice"

    @property
    def wide(self) -> bool:
        return self.kind == "wide"

    def param(self, when: str | None) -> Any:
        if self.kind != "choice":
            return pg.Int(min(self.values), max(self.values), when=when)
        if len(self.values) == 1:
            return pg.Constant(self.values[0], when=when)
        return pg.Categorical(list(self.values), when=when)


CHOICES = st.lists(
    st.sampled_from(["a", "b", "c", 0, 2, True, None]),
    min_size=1,
    max_size=4,
    unique_by=lambda c: (type(c), c),
)


@st.composite
def drawn_params(draw: st.DrawFn, name: str, wide_allowed: bool) -> Drawn:
    kind = draw(st.sampled_from(["int", "wide", "choice"] if wide_allowed else ["int", "choice"]))
    if kind == "choice":
        return Drawn(name, tuple(draw(CHOICES)), kind)
    low = draw(st.integers(-3, 3))
    size = draw(st.integers(70, 200) if kind == "wide" else st.integers(2, 5))
    return Drawn(name, tuple(range(low, low + size)), kind)


@st.composite
def atoms(draw: st.DrawFn, p: Drawn, others: list[Drawn]) -> str:
    if p.kind != "choice":
        low, high = min(p.values), max(p.values)
        op = draw(st.sampled_from(["<", "<=", ">", ">=", "==", "!="]))
        t = draw(st.integers(low - 2, high + 2) | st.floats(low - 2, high + 2).map(round_half))
        small = [o for o in others if o.kind == "int"]
        if not p.wide and small and draw(st.booleans()):  # arithmetic: exact when enumerated
            return f"{p.name} + {draw(st.sampled_from(small)).name} {op} {t}"
        if draw(st.booleans()):
            return f"{t} {op} {p.name}"
        return f"{p.name} {op} {t}"
    literal = draw(st.sampled_from([*p.values, "zz"]))
    if draw(st.booleans()):
        other = draw(st.sampled_from([*p.values, 7]))
        return f"{p.name} {draw(st.sampled_from(['in', 'not in']))} [{literal!r}, {other!r}]"
    return f"{p.name} {draw(st.sampled_from(['==', '!=']))} {literal!r}"


def round_half(x: float) -> float:
    return round(x * 2) / 2  # halves: thresholds between two integers, and on them


@st.composite
def discrete_spaces(draw: st.DrawFn) -> tuple[list[Drawn], list[str | None]]:
    """Parameters ``p0..pN`` (at most one wide integer), each maybe with a condition over
    earlier ones (so the definition order is the evaluation order)."""
    drawn: list[Drawn] = []
    whens: list[str | None] = []
    for i in range(draw(st.integers(2, 4))):
        wide_allowed = not any(d.wide for d in drawn)
        p = draw(drawn_params(f"p{i}", wide_allowed))
        when = None
        if drawn and draw(st.integers(0, 3)):
            refs = draw(st.lists(st.sampled_from(drawn), min_size=1, max_size=2, unique=True))
            parts = [draw(atoms(r, drawn)) for r in refs]
            when = f" {draw(st.sampled_from(['and', 'or']))} ".join(f"({t})" for t in parts)
            if draw(st.booleans()):
                when = f"not ({when})"
        drawn.append(p)
        whens.append(when)
    return drawn, whens


def never_active(drawn: list[Drawn], whens: list[str | None]) -> list[str]:
    """By brute force over every point: the conditional parameters never active."""
    conditions = [None if w is None else Condition(w) for w in whens]
    seen: set[str] = set()
    for point in itertools.product(*(d.values for d in drawn)):
        active: dict[str, Any] = {}
        for d, value, c in zip(drawn, point, conditions, strict=True):
            if c is None or (c.names <= active.keys() and c.holds(active)):
                active[d.name] = value
        seen.update(active)
    return [
        d.name for d, w in zip(drawn, whens, strict=True) if w is not None and d.name not in seen
    ]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(discrete_spaces())
def test_the_check_agrees_with_brute_force(space):
    drawn, whens = space
    params = {d.name: d.param(w) for d, w in zip(drawn, whens, strict=True)}
    never = never_active(drawn, whens)
    if not never:
        pg.Space(params)
        return
    with pytest.raises(SpaceError, match="never holds") as error:
        pg.Space(params)
    assert str(error.value).startswith(f"parameter {never[0]!r}: condition ")
