"""A real tabular HPO problem: an MLP on scikit-learn's ``digits``, looked up in a table.

Every point of :data:`GRID` was trained once by ``make_digits_table.py`` (scikit-learn's
``MLPClassifier``, Adam, 20 epochs, seed 0, inputs scaled to [0, 1], a stratified 70/30
split with seed 0); ``digits_mlp.csv`` holds each point's validation cross-entropy
(``val_loss``, the objective) and error. The objective is a lookup, so a run costs nothing
and every tool sees the same numbers.

Axes with more than two ordered levels are integer parameters (so that every tool knows
their order): ``log10_lr`` (lr = 10^k), ``log2_width`` (units per layer = 2^k) and
``depth``; ``activation`` is categorical, and the two-level ``l2`` and ``batch_size`` are
categorical too (two levels have no order to exploit).
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from propagator.space import Categorical, Int, Space

from .base import Problem

TABLE = Path(__file__).with_name("digits_mlp.csv")
GRID: dict[str, tuple[Any, ...]] = {
    "log10_lr": (-4, -3, -2, -1),
    "log2_width": (5, 6, 7),
    "depth": (1, 2, 3),
    "activation": ("relu", "tanh", "logistic"),
    "l2": (1e-4, 1e-2),
    "batch_size": (32, 128),
}
SPACE = Space(
    {
        "log10_lr": Int(-4, -1),
        "log2_width": Int(5, 7),
        "depth": Int(1, 3),
        "activation": Categorical(list(GRID["activation"])),
        "l2": Categorical(list(GRID["l2"])),
        "batch_size": Categorical(list(GRID["batch_size"])),
    }
)
COLUMNS = (*GRID, "val_loss", "val_error")


def grid_points() -> Iterator[dict[str, Any]]:
    """Every point of :data:`GRID`, in the table's row order."""
    for values in itertools.product(*GRID.values()):
        yield dict(zip(GRID, values, strict=True))


def _row_key(point: Mapping[str, Any]) -> tuple[str, ...]:
    # Text keys: the CSV gives strings, the tools give numbers of several types.
    return tuple(repr(_typed(name, point[name])) for name in GRID)


def _typed(name: str, value: Any) -> Any:
    level = GRID[name][0]
    return type(level)(value) if not isinstance(level, str) else str(value)


@cache
def table() -> dict[tuple[str, ...], dict[str, float]]:
    """The committed table: grid point key -> ``{"val_loss": ..., "val_error": ...}``."""
    with TABLE.open(newline="") as f:
        return {
            _row_key(row): {
                "val_loss": float(row["val_loss"]),
                "val_error": float(row["val_error"]),
            }
            for row in csv.DictReader(f)
        }


def lookup(params: Mapping[str, Any]) -> float:
    """Validation cross-entropy of the MLP at grid point ``params``."""
    return table()[_row_key(params)]["val_loss"]


def tabular_problem() -> Problem:
    """The digits MLP table as a problem; its optimum is the table's smallest loss."""
    best = min(row["val_loss"] for row in table().values())
    return Problem("digits_mlp", SPACE, best, lookup)
