"""The benchmark functions of Propulate's test set, as ready-made objectives and spaces.

Each benchmark is a :class:`Benchmark`: callable as an objective on a params dict with keys
``x0 .. x{dim-1}``, and carrying its own search space, bounds and known minimum, so a search
can be checked against the true answer::

    bench = benchmarks.get("rastrigin")
    result = pg.search(bench, bench.space, budget=pg.Budget(evaluations=2000))
    result.best.value - bench.minimum

Search files can name them as ``propagator.benchmarks:rastrigin``; ``space(name)`` gives the
matching space. All functions are minimised. The noise of ``quartic`` is drawn from the
evaluation's ``trial.seed`` in a search, so a seeded search repeats.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from .errors import ConfigError
from .space import Float, Space

# The quartic noise outside a search (no trial, no seed) has its own generator so that
# benchmarks neither read nor disturb the global numpy state a user's code may rely on.
_RNG = np.random.default_rng()


@dataclass(frozen=True)
class Benchmark:
    """A test function on a box, with its known minimum.

    Args:
        name: the key in :data:`BENCHMARKS`.
        dim: number of coordinates.
        low: lower bound of each coordinate.
        high: upper bound of each coordinate.
        minimum: the true minimum value on the box (for noisy functions, of the noiseless part).
        argmin: one point where ``minimum`` is attained.
        noisy: whether repeated calls at the same point give different values (calls with
            trials of different seeds; with the same seed they give the same value).
        f: the function on a 1-D array of the coordinates, in order; a noisy one also takes
            the ``numpy.random.Generator`` to draw its noise from (default: an unseeded one).
    """

    name: str
    dim: int
    low: tuple[float, ...]
    high: tuple[float, ...]
    minimum: float
    argmin: tuple[float, ...]
    noisy: bool
    f: Callable[[np.ndarray], float]

    @cached_property
    def space(self) -> Space:
        """The search space: ``x0 .. x{dim-1}`` as ``Float(low[i], high[i])``, in order."""
        return Space({f"x{i}": Float(self.low[i], self.high[i]) for i in range(self.dim)})

    def __call__(self, params: Mapping[str, float], trial: Any = None) -> float:
        """Evaluate on a params dict with keys ``x0 .. x{dim-1}``; a noisy benchmark draws
        its noise from ``trial.seed`` (the engine's seed of this evaluation and repeat), or
        unseeded without a trial.

        The ``trial`` parameter is there so the engine sees two positional parameters and
        the same object works as ``objective(params, trial)``.
        """
        x = np.array([params[f"x{i}"] for i in range(self.dim)], dtype=float)
        if self.noisy and trial is not None:
            return float(self.f(x, np.random.default_rng(trial.seed)))
        return float(self.f(x))


# --- the functions ---------------------------------------------------------------------------
def _sphere(x: np.ndarray) -> float:
    return np.sum(x**2)


def _rosenbrock(x: np.ndarray) -> float:
    return 100.0 * (x[0] ** 2 - x[1]) ** 2 + (1.0 - x[0]) ** 2


def _step(x: np.ndarray) -> float:
    # astype(int) truncates toward zero, as in De Jong's original definition.
    return np.sum(x.astype(int))


def _quartic(x: np.ndarray, rng: np.random.Generator | None = None) -> float:
    i = np.arange(1, x.size + 1)
    # _RNG is looked up at call time so tests can substitute a seeded or noiseless generator.
    noise = (_RNG if rng is None else rng).standard_normal(x.size)
    return abs(np.sum(i * x**4 + noise))


def _rastrigin(x: np.ndarray) -> float:
    return 10.0 * x.size + np.sum(x**2 - 10.0 * np.cos(2.0 * np.pi * x))


def _griewank(x: np.ndarray) -> float:
    i = np.arange(1, x.size + 1)
    return 1.0 + np.sum(x**2) / 4000.0 - np.prod(np.cos(x / np.sqrt(i)))


_SCHWEFEL_ARGMIN = 420.968746


def _schwefel(x: np.ndarray) -> float:
    return 418.982887 * x.size - np.sum(x * np.sin(np.sqrt(np.abs(x))))


# Lunacek's double-funnel functions: a global funnel at mu1 and a broader, shallower-sloped one
# at mu2 that is d higher; s is chosen from the dimension so the second funnel stays deceptive.
_LUNACEK_MU1 = 2.5
_LUNACEK_D = 1.0


def _lunacek_constants(n: int) -> tuple[float, float]:
    s = 1.0 - math.sqrt(1.0 / (2.0 * math.sqrt(n + 20.0) - 8.2))
    mu2 = -math.sqrt((_LUNACEK_MU1**2 - _LUNACEK_D) / s)
    return s, mu2


def _bisphere(x: np.ndarray) -> float:
    s, mu2 = _lunacek_constants(x.size)
    near = np.sum((x - _LUNACEK_MU1) ** 2)
    far = _LUNACEK_D * x.size + s * np.sum((x - mu2) ** 2)
    return min(near, far)


def _birastrigin(x: np.ndarray) -> float:
    ripple = 10.0 * np.sum(1.0 - np.cos(2.0 * np.pi * (x - _LUNACEK_MU1)))
    return _bisphere(x) + ripple


def _bukin(x: np.ndarray) -> float:
    return 100.0 * np.sqrt(np.abs(x[1] - 0.01 * x[0] ** 2)) + 0.01 * np.abs(x[0] + 10.0)


def _eggcrate(x: np.ndarray) -> float:
    return x[0] ** 2 + x[1] ** 2 + 25.0 * (np.sin(x[0]) ** 2 + np.sin(x[1]) ** 2)


def _himmelblau(x: np.ndarray) -> float:
    return (x[0] ** 2 + x[1] - 11.0) ** 2 + (x[0] + x[1] ** 2 - 7.0) ** 2


def _keane(x: np.ndarray) -> float:
    num = np.sin(x[0] - x[1]) ** 2 * np.sin(x[0] + x[1]) ** 2
    # hypot, not sqrt(x0² + x1²): squaring coordinates below ~1e-154 underflows to 0 and would
    # give 0/0 = NaN away from the origin; only the origin itself is undefined.
    with np.errstate(invalid="ignore"):
        return -num / np.hypot(x[0], x[1])


def _leon(x: np.ndarray) -> float:
    return 100.0 * (x[1] - x[0] ** 3) ** 2 + (1.0 - x[0]) ** 2


# --- the table -------------------------------------------------------------------------------
def _bench(
    name: str,
    f: Callable[[np.ndarray], float],
    dim: int,
    limits: tuple[float, float] | list[tuple[float, float]],
    argmin: float | tuple[float, ...],
    minimum: float | None = None,
    noisy: bool = False,
) -> Benchmark:
    """Build a table entry; a single limit pair or argmin value applies to every coordinate.

    ``minimum`` defaults to ``f(argmin)``, which is exact for the functions whose minimiser is
    known in closed form and is the honest value for Schwefel, whose textbook constants leave
    a small negative residue at the minimiser.
    """
    bounds = limits if isinstance(limits, list) else [limits] * dim
    point = argmin if isinstance(argmin, tuple) else (argmin,) * dim
    if minimum is None:
        minimum = float(f(np.array(point, dtype=float)))
    return Benchmark(
        name=name,
        dim=dim,
        low=tuple(float(lo) for lo, _ in bounds),
        high=tuple(float(hi) for _, hi in bounds),
        minimum=minimum,
        argmin=tuple(float(v) for v in point),
        noisy=noisy,
        f=f,
    )


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        _bench("sphere", _sphere, 2, (-5.12, 5.12), 0.0),
        _bench("rosenbrock", _rosenbrock, 2, (-2.048, 2.048), 1.0),
        # Any coordinate in [-5.12, -5] truncates to -5; the middle of that interval is used.
        _bench("step", _step, 5, (-5.12, 5.12), -5.06),
        # The value is noisy even at the minimiser (E|N(0, 30)| ≈ 4.37 at 0); 0 is the minimum
        # of the noiseless sum, given explicitly so that building the table draws no noise.
        _bench("quartic", _quartic, 30, (-1.28, 1.28), 0.0, minimum=0.0, noisy=True),
        _bench("rastrigin", _rastrigin, 20, (-5.12, 5.12), 0.0),
        _bench("griewank", _griewank, 10, (-600.0, 600.0), 0.0),
        _bench("schwefel", _schwefel, 10, (-500.0, 500.0), _SCHWEFEL_ARGMIN),
        _bench("bisphere", _bisphere, 30, (-5.12, 5.12), _LUNACEK_MU1),
        _bench("birastrigin", _birastrigin, 30, (-5.12, 5.12), _LUNACEK_MU1),
        _bench("bukin", _bukin, 2, [(-15.0, -5.0), (-3.0, 3.0)], (-10.0, 1.0)),
        _bench("eggcrate", _eggcrate, 2, (-5.0, 5.0), 0.0),
        _bench("himmelblau", _himmelblau, 2, (-6.0, 6.0), (3.0, 2.0)),
        _bench("keane", _keane, 2, (0.0, 10.0), (1.3932491, 0.0), minimum=-0.6736675),
        _bench("leon", _leon, 2, (0.0, 10.0), 1.0),
    )
}


def get(name: str) -> Benchmark:
    """The benchmark called ``name``.

    Raises:
        ConfigError: no benchmark has that name; the message lists the known names and
            suggests the closest one.
    """
    try:
        return BENCHMARKS[name]
    except (KeyError, TypeError):
        pass
    close = difflib.get_close_matches(str(name), list(BENCHMARKS), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(
        f"unknown benchmark {name!r}{hint}; the known ones are {', '.join(BENCHMARKS)}"
    )


def space(name: str) -> Space:
    """The search space of the benchmark called ``name`` (see :func:`get` for errors)."""
    return get(name).space


# Module-level objectives, so search files can name e.g. ``propagator.benchmarks:rastrigin``.
sphere = BENCHMARKS["sphere"]
rosenbrock = BENCHMARKS["rosenbrock"]
step = BENCHMARKS["step"]
quartic = BENCHMARKS["quartic"]
rastrigin = BENCHMARKS["rastrigin"]
griewank = BENCHMARKS["griewank"]
schwefel = BENCHMARKS["schwefel"]
bisphere = BENCHMARKS["bisphere"]
birastrigin = BENCHMARKS["birastrigin"]
bukin = BENCHMARKS["bukin"]
eggcrate = BENCHMARKS["eggcrate"]
himmelblau = BENCHMARKS["himmelblau"]
keane = BENCHMARKS["keane"]
leon = BENCHMARKS["leon"]
