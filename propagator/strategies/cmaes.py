"""Asynchronous CMA-ES with IPOP restarts, on :class:`cmaes.CatCMAwM` (CMA-ES with margin for
integers and a categorical distribution for categories, Hamano et al. 2025).

Variables. Float genes, and Int genes of more than 100 levels (finer than any step CMA-ES
takes on a budget), are continuous variables in ``[0, 1]``. Int genes of 3 to 100 levels are
integer variables whose values are the genes at the centres of their levels (log-spaced for
log ints): the margin keeps a minimum probability of leaving the current level, where plain
snapping would freeze a discrete gene once every sample rounds to one level. Categorical
genes (and 2-level ints) are categorical variables: choices have no order, so they get a
categorical distribution rather than an ordinal axis. A categorical of one choice is fixed.

Asynchrony. ``tell`` queues results in arrival order (the worker's own, its island peers',
immigrants, stored records on resume); every ``λ`` of them update the distribution as one
generation. Peers run the same updates on the same results, so their distributions stay
close to this one, but immigrants and old records may lie anywhere: each result's Gaussian
part is clipped to Mahalanobis distance ``√n + 2n/(n+2)`` from the mean before the update
(Hansen 2011, "Injecting external solutions into CMA-ES"), so that a far point pulls no more
than a typical sample. Results are snapped to their levels (the level's centre, one-hot for
categories). A record told twice counts once (:mod:`.told`). On resume only the last 100
generations' worth of a large tell is replayed: older generations are superseded, and replay
time stays bounded.

Arrival order, not one order for the island, was measured (2 ranks, 2-D sphere, 500
evaluations, median of 5 seeds). Telling results in finish order once no earlier one can
arrive keeps every worker's distribution identical, but with a fast objective each result
then waits for a peer's next one: results were 2 to 5 generations old when told, and the
search reached 2.8e-9 against 8.5e-14 in arrival order. With 5 ms evaluations the two were
alike (2.2e-16 and 4.2e-16). What did help is fresh peer results: a model-based strategy's
records go to the peers at once rather than in 1 ms batches (sphere 2.3e-17).

Failures rank below every success of their generation (a surrogate loss worse than the
generation's worst), so active CMA moves away from them; a generation of failures only is
dropped and counts as one without improvement.

Inactive conditional genes are kept as told. They do not affect the loss, so selection is
neutral on them: the mean random-walks and the covariance stays unbiased there, as on any
flat axis. (Setting them to the mean would instead shrink their variance at every update
and freeze them before they become active.) Far-off inactive genes of immigrants or encoded
points (0.5) are contained by the clipping like any other coordinate.

Restarts (IPOP, Auger & Hansen 2005): when the library's ``should_stop()`` fires or the
median of the generations' best values has not improved over ``patience`` generations (as
pycma's ``tolstagnation``, which is robust to one lucky point), ``λ`` grows by ``growth`` (up
to 4096) and the search restarts at the next point of the R_d low-discrepancy sequence
(Roberts 2018). The sequence is deterministic so that the workers of an island, which see the
same results and restart at about the same time, restart to the same distribution.

NOTE: the clipping reads the optimizer's mean, step size, margin scaling and eigenbasis, and
told points are built as ``Solution(x, z, c, v)``: private parts of ``cmaes`` 0.12 - 0.13
(pyproject.toml caps the version), checked by ``tests/test_strategies.py`` and, on every new
optimizer, by :func:`_check_private_parts`, which names the installed version when one is
missing.
"""

from __future__ import annotations

import dataclasses
import importlib.abc
import math
import sys
import threading
import warnings
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..space import Categorical, Int, Space
from .base import Breeder, StrategySpec
from .checks import is_int, is_real, require
from .pool import Pool
from .told import SeenFilter

_MAX_LEVELS = 100
_MAX_POPULATION = 4096
_REPLAY_GENERATIONS = 100
_MAX_GAUSSIAN = 2000  # a full covariance: 32 MB and seconds per eigendecomposition here
_PRIVATE = ("_mean", "_sigma", "_A", "_eigen_decomposition")  # what _contain reads
_SOLUTION_FIELDS = ("x", "z", "c", "_v_raw")  # how _solutions builds a told point


@dataclass(frozen=True)
class _Discrete:
    """A discrete gene: its index, its parameter and the gene values of its levels."""

    gene: int
    param: Int | Categorical
    centres: np.ndarray

    @property
    def size(self) -> int:
        return len(self.centres)

    def levels(self, column: np.ndarray) -> np.ndarray:
        """The level index of each gene value, exactly as the parameter decodes it."""
        u = np.clip(np.nan_to_num(column), 0.0, 1.0)
        p = self.param
        if isinstance(p, Int) and p.log:
            return np.array([p.decode(x) - p.low for x in u.tolist()], dtype=np.int64)
        return np.minimum(np.floor(u * self.size), self.size - 1).astype(np.int64)


def _discrete(gene: int, p: Any) -> _Discrete | None:
    if isinstance(p, Categorical):
        m = len(p.choices)
        return _Discrete(gene, p, (np.arange(m) + 0.5) / m)
    if isinstance(p, Int) and p.high - p.low < _MAX_LEVELS:
        return _Discrete(gene, p, np.array([p.encode(v) for v in range(p.low, p.high + 1)]))
    return None


class _Variables:
    """How the genes of a space map to CatCMAwM's continuous, integer and categorical parts."""

    def __init__(self, space: Space) -> None:
        params = space.params
        self.dim = space.dim
        cont, ints, cats = [], [], []
        for i, name in enumerate(space.genes):
            d = _discrete(i, params[name])
            if d is None:
                cont.append(i)
            elif d.size >= 3 and isinstance(d.param, Int):
                ints.append(d)
            elif d.size >= 2:
                cats.append(d)
        self.cont = np.array(cont, dtype=np.int64)
        self.ints, self.cats = ints, cats
        self.n_gaussian = len(cont) + len(ints)
        self.n_model = self.n_gaussian + len(cats)

    def optimizer_args(self) -> dict[str, Any]:
        """The space arguments of ``CatCMAwM``."""
        return {
            "x_space": [[0.0, 1.0]] * len(self.cont) or None,
            "z_space": [d.centres.tolist() for d in self.ints] or None,
            "c_space": [d.size for d in self.cats] or None,
        }

    def genes(self, solution: Any) -> np.ndarray:
        """The gene vector of a sampled solution (inactive or fixed genes at 0.5)."""
        out = np.full(self.dim, 0.5)
        if len(self.cont):
            out[self.cont] = solution.x
        for d, z in zip(self.ints, solution.z if self.ints else (), strict=True):
            out[d.gene] = z
        for d, onehot in zip(self.cats, solution.c if self.cats else (), strict=True):
            out[d.gene] = d.centres[int(np.argmax(onehot[: d.size]))]
        return out

    def gaussian(self, genes: np.ndarray) -> np.ndarray:
        """Rows of the Gaussian part (continuous genes, then integer levels' centres)."""
        parts = [genes[:, self.cont]]
        parts += [d.centres[d.levels(genes[:, d.gene])][:, None] for d in self.ints]
        return np.concatenate(parts, axis=1)

    def onehot(self, genes: np.ndarray) -> np.ndarray:
        """The categorical part: shape ``(n, n_categorical, most choices)``, zero-padded."""
        width = max(d.size for d in self.cats)
        out = np.zeros((len(genes), len(self.cats), width), dtype=bool)
        for j, d in enumerate(self.cats):
            out[np.arange(len(genes)), j, d.levels(genes[:, d.gene])] = True
        return out


def _rd_point(k: int, n: int) -> np.ndarray:
    """The ``k``-th point of the R_d sequence in ``[0, 1)^n`` started at the centre."""
    phi = 2.0
    for _ in range(64):  # the positive root of x^(n+1) = x + 1, by fixed-point iteration
        phi = (1.0 + phi) ** (1.0 / (n + 1))
    return (0.5 + k * phi ** -np.arange(1.0, n + 1.0)) % 1.0


def _check_private_parts(opt: Any, gaussian: bool) -> None:
    """Raise ``RuntimeError`` naming the installed ``cmaes`` when ``opt`` lacks a private part
    this module reads (those of the Gaussian part only where it has one); a release that
    renamed one would otherwise fail deep inside a tell, or build a told point from the wrong
    fields."""
    missing = [name for name in _PRIVATE if gaussian and not hasattr(opt, name)]
    solution = getattr(opt, "Solution", None)
    fields = ()
    if solution is not None and dataclasses.is_dataclass(solution):
        fields = tuple(f.name for f in dataclasses.fields(solution))
    if fields != _SOLUTION_FIELDS:
        missing.append(f"Solution{_SOLUTION_FIELDS}")
    if missing:
        import cmaes

        version = getattr(cmaes, "__version__", "(version unknown)")
        raise RuntimeError(
            f"strategy cmaes reads private parts of the cmaes package that the installed "
            f"cmaes {version} lacks ({type(opt).__name__}: {', '.join(missing)}); "
            f"install a supported release: pip install 'cmaes>=0.13,<0.14'"
        )


class _NoScipyStats(importlib.abc.MetaPathFinder):
    """Refuses ``scipy.stats`` to one thread while it imports cmaes."""

    def __init__(self) -> None:
        self._thread = threading.get_ident()

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "scipy.stats" and threading.get_ident() == self._thread:
            raise ImportError("propagate imports cmaes without scipy.stats")


def _catcmawm() -> type:
    """cmaes's ``CatCMAwM`` class, the package imported without ``scipy.stats`` unless that
    is loaded already. The package imports all its optimizers, two of which take the
    normal CDF and the chi-squared quantile from ``scipy.stats`` when it imports and from
    the package's own exact functions (``cmaes._stats``) when it does not; ``scipy.stats``
    cost every rank 0.85 s of CPU and 70 MB of resident memory at start-up, 0.02 s and 2 MB
    without it. Only the importing thread is refused, so another thread's import of
    ``scipy.stats`` at that moment still succeeds."""
    if "cmaes" not in sys.modules:
        refuse = _NoScipyStats()
        sys.meta_path.insert(0, refuse)
        try:
            import cmaes  # noqa: F401 - loaded here so that the class below comes without scipy
        finally:
            sys.meta_path.remove(refuse)
    from cmaes import CatCMAwM

    return CatCMAwM


def _contain(opt: Any, v: np.ndarray) -> np.ndarray:
    """Scale rows of ``v`` towards the mean to Mahalanobis distance at most ``√n + 2n/(n+2)``
    under the optimizer's sampling distribution ``N(m, σ² A C A)``."""
    n = v.shape[1]
    mean, step = opt._mean, opt._sigma * opt._A
    basis, scales = opt._eigen_decomposition()
    with np.errstate(divide="ignore", invalid="ignore"):
        dist = np.linalg.norm(((v - mean) / step) @ basis / scales, axis=1)
    limit = math.sqrt(n) + 2.0 * n / (n + 2.0)
    # A distribution collapsed along an axis measures no distance: such a point is told as
    # the mean, and the generation's update restarts the optimizer (see _degenerate).
    shrink = np.where(np.isfinite(dist), np.minimum(1.0, limit / np.maximum(dist, 1e-300)), 0.0)
    return mean + (v - mean) * shrink[:, None]


def _degenerate(opt: Any) -> bool:
    """Whether the optimizer's Gaussian part has collapsed or overflowed: a zero or
    non-finite step along some axis, or a non-finite mean."""
    step = opt._sigma * opt._A
    _, scales = opt._eigen_decomposition()
    spread = np.concatenate([step, scales])
    return not (np.isfinite(opt._mean).all() and np.isfinite(spread).all() and (spread > 0).all())


class _CMABreeder(Breeder):
    model_based = True

    def __init__(self, spec: CMAES, variables: _Variables, island_workers: int) -> None:
        self._spec, self._vars = spec, variables
        default = 4 + math.floor(3 * math.log(max(variables.n_model, 1)))
        self._lambda0 = spec.population or max(default, island_workers)
        self.pool_size = self._lambda0
        self._seen = SeenFilter()
        self._restarts = 0
        self._lambda = self._lambda0
        self._opt: Any = None
        self._queue = (np.zeros((0, variables.dim)), np.zeros(0), np.zeros(0, dtype=bool))
        if variables.n_model:
            self._start()

    def ask(self, pool: Pool, rng: np.random.Generator) -> np.ndarray:
        if self._opt is None:
            return np.full(self._vars.dim, 0.5)
        self._opt.reseed_rng(int(rng.integers(2**32)))
        genes = self._vars.genes(self._opt.ask())
        self._seen.asked(genes)
        return genes

    def tell(self, genes: np.ndarray, loss: np.ndarray, ok: np.ndarray) -> None:
        if self._opt is None:
            return
        fresh = self._seen.fresh(genes, loss)
        keep = _REPLAY_GENERATIONS * self._opt.population_size
        rows = [a[fresh][-keep:] for a in (genes, loss, ok)]
        queue = [np.concatenate([q, r]) for q, r in zip(self._queue, rows, strict=True)]
        while len(queue[0]) >= self._lambda:
            lam = self._lambda
            self._generation(*(q[:lam] for q in queue))
            queue = [q[lam:] for q in queue]
        self._queue = (queue[0], queue[1], queue[2])

    def _generation(self, genes: np.ndarray, loss: np.ndarray, ok: np.ndarray) -> None:
        """Update on one generation of results; restart when the search has stalled or the
        optimizer's state broke down."""
        best, told = math.inf, True
        if ok.any():
            worst, best = float(loss[ok].max()), float(loss[ok].min())
            values = np.where(ok, loss, worst + max(worst - best, 1.0))
            order = np.argsort(values, kind="stable")
            solutions = self._solutions(genes[order])
            with warnings.catch_warnings(), np.errstate(invalid="ignore"):
                # Until a generation has spread values, the library's box penalty is the
                # median of an empty history: NaN, with warnings. Told points are in the box
                # and sorted, so the NaN re-sort keeps their ranking.
                warnings.simplefilter("ignore", RuntimeWarning)
                told = self._tell(solutions, values[order])
        self._bests.append(best)
        stop = self._vars.n_gaussian and (self._opt.should_stop() or _degenerate(self._opt))
        if stop or not told or self._stalled():
            self._restarts += 1
            cap = max(_MAX_POPULATION, self._lambda0)
            self._lambda = min(round(self._lambda * self._spec.growth), cap)
            self._start()

    def _tell(self, solutions: list[Any], values: np.ndarray) -> bool:
        """Tell the optimizer one generation; ``False`` when the library refused its own
        state (it asserts that the told points and its mean stay below 1e32), which an
        internal error would otherwise turn into the end of the whole run."""
        try:
            self._opt.tell(list(zip(solutions, values.tolist(), strict=True)))
        except (AssertionError, np.linalg.LinAlgError):
            return False
        return True

    def _solutions(self, genes: np.ndarray) -> list[Any]:
        opt, vars_ = self._opt, self._vars
        n = len(genes)
        v = _contain(opt, vars_.gaussian(genes)) if vars_.n_gaussian else [None] * n
        c = vars_.onehot(genes) if vars_.cats else [None] * n
        return [opt.Solution(None, None, c[i], v[i]) for i in range(n)]

    def _start(self) -> None:
        """A new optimizer: population ``self._lambda``, mean the restart's R_d point."""
        CatCMAwM = _catcmawm()
        vars_, k, lam = self._vars, self._restarts, self._lambda
        gaussian: dict[str, Any] = {}
        if vars_.n_gaussian:
            n = vars_.n_gaussian
            gaussian = {"mean": _rd_point(k, n), "sigma": self._spec.sigma, "cov": np.eye(n)}
        self._opt = CatCMAwM(**vars_.optimizer_args(), population_size=lam, seed=0, **gaussian)
        _check_private_parts(self._opt, bool(vars_.n_gaussian))
        patience = self._spec.patience or 10 + math.ceil(30 * vars_.n_model / lam)
        self._bests: deque[float] = deque(maxlen=2 * patience)

    def _stalled(self) -> bool:
        """Whether the generations' best values of the last ``patience`` generations are no
        better, in median, than those of the ``patience`` before (medians: a lucky point is
        no progress of the distribution)."""
        bests = self._bests
        if len(bests) < bests.maxlen:
            return False
        half = len(bests) // 2
        recent, older = list(bests)[half:], list(bests)[:half]
        return bool(np.median(recent) >= np.median(older))


@dataclass(frozen=True)
class CMAES(StrategySpec):
    """Asynchronous CMA-ES with margin and IPOP restarts (module docstring: the details).

    Args:
        population: initial population ``λ``; ``None`` (default) means ``max(4 + ⌊3 ln n⌋,
            workers on the island)`` for ``n`` modelled genes. At least 4.
        sigma: initial standard deviation of the search distribution, in gene units (a
            fraction of each parameter's range, log-scaled for log parameters); in ``(0, 1]``
            (default 0.2). The first generation is centred in the space.
        growth: factor on ``λ`` at each restart, at least 1 (default 2, as IPOP).
        patience: a restart follows when the median best value of the last ``patience``
            generations is no better than that of the ``patience`` before; ``None`` (default)
            means ``10 + ⌈30 n / λ⌉``, the library's own flat-fitness window.
    """

    population: int | None = None
    sigma: float = 0.2
    growth: float = 2.0
    patience: int | None = None

    name = "cmaes"

    def __post_init__(self) -> None:
        p = self.population
        require(p is None or (is_int(p) and p >= 4), "population", "an integer >= 4", p)
        s = self.sigma
        require(is_real(s) and 0.0 < s <= 1.0, "sigma", "a number in (0, 1]", s)
        g = self.growth
        require(is_real(g) and 1.0 <= g <= 100.0, "growth", "a number in [1, 100]", g)
        t = self.patience
        require(t is None or (is_int(t) and t >= 1), "patience", "an integer >= 1", t)

    def check(self, space: Space) -> None:
        """Raises :class:`ConfigError` when the space has more than 2000 continuous and integer
        genes, too many for a full covariance matrix."""
        n = _Variables(space).n_gaussian
        if n > _MAX_GAUSSIAN:
            raise ConfigError(
                f"strategy cmaes adapts a full covariance matrix (memory n², time n³ per "
                f"generation) and takes at most {_MAX_GAUSSIAN} continuous and integer "
                f"parameters, but the space has {n}; use strategy ga or random for this space"
            )

    def create(self, space: Space, island_workers: int, objectives: int = 1) -> Breeder:
        return _CMABreeder(self, _Variables(space), island_workers)
