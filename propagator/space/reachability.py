"""Whether each conditional parameter of a space can ever be active.

``when: "depth >= 10"`` with ``depth`` in ``1..4`` never holds: the parameter would silently
never be searched. For each conditional parameter the check tries every combination of
*representative values* of the parameters its condition depends on (directly or through
their own conditions), in the order conditions are evaluated, and raises :class:`SpaceError`
when none makes the parameter active.

Representative values:

* constants, categoricals and integers with at most ``_FULL_INT`` values: every value;
* other integers and floats: the bounds, each number written in the conditions involved
  (with its neighbours: ``c - 1``, ``c + 1`` for integers, the next floats for floats) and one
  value between each two consecutive ones.

For a parameter compared only with literals (``lr > 0.01``, ``0 < x <= 1``, ``n in [2, 4]``)
the truth of every comparison is constant between two consecutive representatives, so the
check is exact. Where a float or a wide integer enters arithmetic or is compared with another
parameter (``lr * 10 > 1``, ``a < b``) the representatives may miss the values where the
condition holds, so the check only ever accepts there, never refuses. It also accepts when
there are more than ``MAX_ASSIGNMENTS`` combinations to try.
"""

from __future__ import annotations

import ast
import difflib
import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import SpaceError
from .conditions import Condition, is_active
from .params import Categorical, Constant, Float, Int, Param

MAX_ASSIGNMENTS = 10_000  # combinations tried per conditional parameter
_FULL_INT = 64  # integers with at most this many values are tried at every value


def check_reachable(params: Mapping[str, Param], order: Sequence[str]) -> None:
    """Raise :class:`SpaceError` naming the first parameter (in evaluation ``order``) whose
    condition can never hold, with the condition and the ranges of what it depends on."""
    for name in order:
        when = params[name].when
        if when is None:
            continue
        deps = _dependencies(params, order, name)
        conditions = [when, *(params[d].when for d in deps if params[d].when is not None)]
        literals = sorted({v for c in conditions for v in _numbers(c.tree)})
        values, exact = [], True
        for d in deps:
            candidates, covers = _candidates(params[d], literals)
            values.append(candidates)
            exact = exact and (covers or _compared_with_literals_only(d, conditions))
        if math.prod(len(v) for v in values) > MAX_ASSIGNMENTS:
            continue
        if not exact or _reachable(name, params, deps, values):
            continue
        ranges = "; ".join(_describe(d, params[d]) for d in deps)
        raise SpaceError(
            f"parameter {name!r}: condition {when.expression!r} never holds ({ranges}), so "
            f"{name!r} would never be searched; fix the condition or the ranges it names"
            + _did_you_mean(conditions, [params[d] for d in deps])
        )


def _dependencies(params: Mapping[str, Param], order: Sequence[str], name: str) -> list[str]:
    """The parameters ``name``'s activity depends on, in evaluation order."""
    seen: set[str] = set()
    todo = list(params[name].when.names)
    while todo:
        d = todo.pop()
        if d not in seen:
            seen.add(d)
            when = params[d].when
            todo.extend(when.names if when is not None else ())
    return [d for d in order if d in seen]


def _reachable(
    name: str, params: Mapping[str, Param], deps: list[str], values: list[list[Any]]
) -> bool:
    when = params[name].when
    for combination in itertools.product(*values):
        active: dict[str, Any] = {}
        for d, value in zip(deps, combination, strict=True):
            if is_active(d, params[d].when, active):
                active[d] = value
        if is_active(name, when, active):
            return True
    return False


def _candidates(p: Param, literals: list[float]) -> tuple[list[Any], bool]:
    """Representative values of ``p`` and whether they are all its values."""
    if isinstance(p, Constant):
        return [p.value], True
    if isinstance(p, Categorical):
        return list(p.choices), True
    if isinstance(p, Int):
        if p.high - p.low < _FULL_INT:
            return list(range(p.low, p.high + 1)), True
        return _int_points(p.low, p.high, literals), False
    return _float_points(p.low, p.high, literals), False


def _int_points(low: int, high: int, literals: list[float]) -> list[int]:
    points = {low, high}
    for c in literals:
        below = math.floor(c)
        points.update(v for v in range(below - 1, below + 3) if low <= v <= high)
    ordered = sorted(points)
    between = [a + 1 for a, b in itertools.pairwise(ordered) if b - a > 1]
    return sorted(points.union(between))


def _float_points(low: float, high: float, literals: list[float]) -> list[float]:
    points = {low, high}
    for c in literals:
        near = (c, math.nextafter(c, -math.inf), math.nextafter(c, math.inf))
        points.update(float(v) for v in near if low <= v <= high)
    ordered = sorted(points)
    between = [a + (b - a) / 2 for a, b in itertools.pairwise(ordered)]
    return sorted(points.union(v for v in between if low <= v <= high))


def _numbers(tree: ast.AST) -> set[float]:
    """Every finite number written in a condition, and its negation (for ``-c``)."""
    out: set[float] = set()
    for node in ast.walk(tree):
        v = node.value if isinstance(node, ast.Constant) else None
        if isinstance(v, (int, float)) and math.isfinite(v):
            out.update((float(v), -float(v)))
    return out


def _compared_with_literals_only(name: str, conditions: list[Condition]) -> bool:
    """Whether every use of ``name`` in ``conditions`` is a comparison whose other operands
    are all literals (``lr > 0.1``, ``0 < lr <= 1``, ``lr in [0.1, 0.2]``)."""
    for condition in conditions:
        uses = sum(isinstance(n, ast.Name) and n.id == name for n in ast.walk(condition.tree))
        plain = 0
        for node in ast.walk(condition.tree):
            if isinstance(node, ast.Compare):
                operands = [node.left, *node.comparators]
                mine = [isinstance(o, ast.Name) and o.id == name for o in operands]
                if sum(mine) == 1 and all(
                    m or _is_literal(o) for m, o in zip(mine, operands, strict=True)
                ):
                    plain += 1
        if plain != uses:
            return False
    return True


def _is_literal(node: ast.AST) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def _did_you_mean(conditions: list[Condition], deps: list[Param]) -> str:
    """A hint for a string in the conditions that is no choice but close to one."""
    choices = [c for p in deps if isinstance(p, Categorical) for c in p.choices]
    named = [c for c in choices if isinstance(c, str)]
    for condition in conditions:
        for node in ast.walk(condition.tree):
            text = node.value if isinstance(node, ast.Constant) else None
            if isinstance(text, str) and text not in named:
                close = difflib.get_close_matches(text, named, n=1)
                if close:
                    return f"; did you mean {close[0]!r} instead of {text!r}?"
    return ""


def _describe(name: str, p: Param) -> str:
    if isinstance(p, Int):
        what = f"an int in {p.low}..{p.high}"
    elif isinstance(p, Float):
        what = f"a float in [{p.low:g}, {p.high:g}]"
    elif isinstance(p, Categorical):
        what = f"one of {list(p.choices)!r}"
    else:
        what = f"the constant {p.value!r}"
    when = f", active only when {p.when.expression!r}" if p.when is not None else ""
    return f"{name} is {what}{when}"
