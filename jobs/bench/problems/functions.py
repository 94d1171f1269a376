"""The 14 test functions of :mod:`propagator.benchmarks` (Propulate's set) as problems.

Every tool evaluates ``BENCHMARKS[name].f`` on the coordinates ``x0 .. x{dim-1}`` in order,
on the same box. quartic is noisy (an unseeded normal draw per call, as in Propulate's
definition): its best value is partly a lucky draw, and reruns differ.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

import numpy as np

from propagator.benchmarks import BENCHMARKS, Benchmark

from .base import Problem


def _evaluate(bench: Benchmark, params: Mapping[str, Any]) -> float:
    x = np.array([params[f"x{i}"] for i in range(bench.dim)], dtype=float)
    return float(bench.f(x))


def function_problems() -> tuple[Problem, ...]:
    """One problem per benchmark function, in :data:`BENCHMARKS` order."""
    return tuple(
        Problem(b.name, b.space, b.minimum, partial(_evaluate, b)) for b in BENCHMARKS.values()
    )
