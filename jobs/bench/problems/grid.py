"""Problems looked up in a precomputed table: one CSV row per active point of a grid space.

A grid space has only ``Int``, ``Categorical`` and ``Constant`` parameters, so it has finitely
many points; conditional parameters make the points differ in which parameters they have.
A table's CSV has one column per parameter of the space (empty where the parameter is
inactive) and one per measured quantity; its rows are exactly :func:`grid_points` of the
space, in that order, written once by a generator script (``make_sklearn_tables.py``). At run
time the objective is a lookup keyed by :func:`~.base.point_key`, so every tool sees the same
numbers and a run costs nothing.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from propagator.space import Categorical, Constant, Int, Param, Space

from .base import Problem, evaluation_order, point_key


def grid_points(space: Space) -> Iterator[dict[str, Any]]:
    """Every active point of ``space``, each exactly once, in a fixed order.

    Parameters are enumerated in :func:`~.base.evaluation_order`, each over its values
    (``low..high`` for an ``Int``, the choices of a ``Categorical``) where its condition
    holds on the values chosen so far, and skipped where it does not. Keys come in the
    space's order.

    Raises:
        TypeError: the space has a ``Float`` (it has no finite grid).
    """
    params = space.params
    order = evaluation_order(space)

    def extend(i: int, point: dict[str, Any]) -> Iterator[dict[str, Any]]:
        if i == len(order):
            yield {n: point[n] for n in params if n in point}
            return
        name = order[i]
        p = params[name]
        if p.when is not None and not (p.when.names <= point.keys() and p.when.holds(point)):
            yield from extend(i + 1, point)
            return
        for value in _levels(name, p):
            yield from extend(i + 1, {**point, name: value})

    yield from extend(0, {})


def _levels(name: str, p: Param) -> tuple[Any, ...]:
    if isinstance(p, Int):
        return tuple(range(p.low, p.high + 1))
    if isinstance(p, Categorical):
        return p.choices
    if isinstance(p, Constant):
        return (p.value,)
    raise TypeError(f"parameter {name!r} is a {type(p).__name__}: a grid has no floats")


def parse_row(space: Space, row: Mapping[str, str]) -> dict[str, Any]:
    """The point a CSV row holds, typed as the space's parameters (empty cells: inactive)."""
    point: dict[str, Any] = {}
    for name, p in space.params.items():
        text = row[name]
        if text == "":
            continue
        if isinstance(p, Int):
            point[name] = int(text)
        elif isinstance(p, Categorical):
            point[name] = next(c for c in p.choices if str(c) == text)
        else:
            point[name] = text
    return point


def row_cells(space: Space, point: Mapping[str, Any]) -> list[str]:
    """The CSV cells of ``point``'s parameters, as :func:`parse_row` reads them back."""
    return [str(point[name]) if name in point else "" for name in space.params]


@cache
def read_table(path: Path, space: Space, column: str) -> dict[str, float]:
    """``path``'s ``column`` by :func:`~.base.point_key` of each row's point.

    Raises:
        ValueError: the rows are not exactly :func:`grid_points` of ``space`` in order.
    """
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    points = [parse_row(space, row) for row in rows]
    if points != list(grid_points(space)):
        raise ValueError(f"{path}: the rows are not the grid of its space; regenerate it")
    return {point_key(space, p): float(r[column]) for p, r in zip(points, rows, strict=True)}


def table_problem(name: str, space: Space, path: Path, column: str) -> Problem:
    """A problem whose value at a point is ``column`` of that point's row in ``path``.

    Its optimum is the column's smallest value.
    """
    values = read_table(path, space, column)

    def lookup(params: Mapping[str, Any]) -> float:
        return values[point_key(space, params)]

    return Problem(name, space, min(values.values()), lookup)
