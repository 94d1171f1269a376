"""Learning-curve extrapolation for curve-aware early stopping (after Domhan et al., 2015).

A curve is a short series of ``(step, loss)`` reports, steps ``>= 1`` increasing, losses to
be minimised. :func:`forecast` predicts the loss at a later ``horizon`` step as a mixture of
normals, one component per parametric family that decreases and flattens, in ``x = step /
first step``:

* power law ``c + a · x^(-b)``,
* exponential ``c + a · exp(-b (x - 1))``,
* log-power ``c + a / (1 + (x / e^m)^d)``, with ``d = 1`` (a hyperbola) below 6 points: a
  4-parameter family needs two residual degrees of freedom to be weighed against the others.

``a, b, d >= 0``, so no fit rises. The losses are normalised to ``[0, 1]`` over the observed
range (the loss scale does not matter) and the floor ``c`` is kept in ``[min - C_BELOW ·
range, max]``. A family is started at the best point of a grid over its nonlinear parameters,
``c`` and ``a`` solved there by linear least squares, and refined by
``scipy.optimize.least_squares`` with bounds.

The components are weighted by AICc, ``n log(RSS / n) + 2k + 2k(k + 1) / (n - k - 1)``, the
small-sample Akaike criterion (BIC's ``k log n`` lets a 4-parameter family that fits 9
points as well as the true 3-parameter one keep a quarter of the weight, and extrapolate
differently). Each component's predictive variance is ``sigma² + g^T Cov g``: the noise plus
the parameter uncertainty, ``Cov = sigma² (J^T J)^+`` from the fit's Jacobian ``J`` and
``g`` the gradient of the prediction at the horizon, which grows with the extrapolation
distance and with fewer points. ``sigma²`` pools the residuals with a prior of
``PRIOR_POINTS`` pseudo-point of sd ``PRIOR_SD`` (a fraction of the range), since 3 points
fit 3 parameters exactly and leave no residual to estimate the noise from. The spread
between the families widens the mixture further.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# scipy is imported where a curve is fitted, not here: scipy.optimize takes about 0.3 s of CPU
# to import, which every rank of every search paid at start-up (this module loads with the
# pruners), 35 % of a rank's start-up measured by jobs/bench/startup.py.

MIN_POINTS: int = 3  # fewer reports than this: no prediction
C_BELOW = 2.0  # the floor c may lie this many observed ranges below the smallest loss
PRIOR_SD = 0.02  # prior noise sd, as a fraction of the observed range
PRIOR_POINTS = 1.0  # the weight of that prior, in points
SD_FLOOR = 1e-3  # the smallest noise sd, as a fraction of the observed range
_TINY = 1e-300  # absolute floor on the loss scale: a flat curve has range 0
# the grid start is close: polishing a fit far below the noise only costs time
_TOLERANCES = {"ftol": 1e-5, "xtol": 1e-5, "gtol": 1e-5}


@dataclass(frozen=True, eq=False)  # arrays make field-wise equality ambiguous
class Forecast:
    """Predictive distribution of a curve's loss at a horizon step: a mixture of normals.

    Attributes:
        means: the loss at the horizon per fitted family (loss units).
        sds: the predictive sd per family (loss units, > 0): noise and parameter uncertainty.
        weights: the families' Akaike weights (AICc), summing to 1.
    """

    means: np.ndarray
    sds: np.ndarray
    weights: np.ndarray

    def probability_below(self, target: float) -> float:
        """``P(loss at horizon < target)``: in ``[0, 1]``, non-decreasing in ``target`` (NaN
        for a NaN target)."""
        from scipy.special import ndtr

        with np.errstate(all="ignore"):  # an infinite target or mean is a limit, not an error
            p = float(np.dot(self.weights, ndtr((target - self.means) / self.sds)))
        return p if math.isnan(p) else min(max(p, 0.0), 1.0)

    def quantile(self, q: float) -> float:
        """The loss that the horizon's loss stays below with probability ``q`` in ``(0, 1)``
        (to about 1e-9 of the sds' scale)."""
        from scipy.special import ndtr

        lo = float(np.min(self.means - 10.0 * self.sds))
        hi = float(np.max(self.means + 10.0 * self.sds))
        with np.errstate(all="ignore"):
            for _ in range(5):  # each round narrows the bracket 128-fold
                grid = np.linspace(lo, hi, 129)
                cdf = ndtr((grid[:, None] - self.means) / self.sds) @ self.weights
                i = int(np.searchsorted(cdf, q))  # the first grid point with cdf >= q
                lo, hi = grid[max(i - 1, 0)], grid[min(i, 128)]
        return float(0.5 * (lo + hi))

    @property
    def mean(self) -> float:
        """The mixture's mean (loss units)."""
        return float(np.dot(self.weights, self.means))


@dataclass(frozen=True)
class _Family:
    """``c + a · shape(x, *q)``, linear in ``c`` and ``a``; ``q`` are the nonlinear
    parameters and ``grad(x, f, *q)`` the derivatives of the shape ``f`` by each of them."""

    shape: Callable[..., np.ndarray]
    grad: Callable[..., list[np.ndarray]]
    grid: tuple[np.ndarray, ...]  # candidates for q, a column per parameter, for the start
    lower: tuple[float, ...]  # bounds on q
    upper: tuple[float, ...]

    def __call__(self, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
        return theta[0] + theta[1] * self.shape(x, *theta[2:])

    def jac(self, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
        """The derivatives by ``theta`` at ``x``, shape ``(len(x), len(theta))``."""
        f = self.shape(x, *theta[2:])
        dq = [theta[1] * g for g in self.grad(x, f, *theta[2:])]
        return np.column_stack([np.ones_like(x), f, *dq])


def _logpow(x: np.ndarray, m: np.ndarray, d: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + (x / np.exp(m)) ** d)


def _logpow_grad(x: np.ndarray, f: np.ndarray, m: float, d: float) -> list[np.ndarray]:
    g = f * (1.0 - f)  # f² (x / e^m)^d without its overflow
    return [d * g, -g * (np.log(x) - m)]


_POWER = _Family(
    lambda x, b: x ** (-b),
    lambda x, f, b: [-np.log(x) * f],
    (np.linspace(0.0, 6.0, 241)[:, None],),
    (0.0,),
    (8.0,),
)
_EXPONENTIAL = _Family(
    lambda x, b: np.exp(-b * (x - 1.0)),
    lambda x, f, b: [-(x - 1.0) * f],
    (np.geomspace(1e-3, 30.0, 241)[:, None],),  # from a straight line to a step
    (0.0,),
    (50.0,),
)
_HYPERBOLA = _Family(
    lambda x, m: _logpow(x, m, 1.0),
    lambda x, f, m: _logpow_grad(x, f, m, 1.0)[:1],
    (np.linspace(-6.0, 9.0, 241)[:, None],),
    (-8.0,),
    (12.0,),
)
_LOG_POWER = _Family(
    _logpow,
    _logpow_grad,
    tuple(
        g.ravel()[:, None]
        for g in np.meshgrid(np.linspace(-6.0, 9.0, 31), np.geomspace(0.2, 6.0, 16))
    ),
    (-8.0, 0.05),
    (12.0, 8.0),
)


def _start(family: _Family, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The grid's best ``(c, a, *q)``, ``c`` and ``a`` by linear least squares per grid point,
    within their bounds."""
    f = family.shape(x[None, :], *family.grid)  # (grid points, n)
    fm, ym = f.mean(axis=1), y.mean()
    fc = f - fm[:, None]
    a = np.maximum(fc @ (y - ym) / np.maximum((fc * fc).sum(axis=1), _TINY), 0.0)
    c = np.clip(ym - a * fm, -C_BELOW, 1.0)
    # the best a for the (possibly clipped) c; the same a where nothing was clipped
    a = np.maximum(f @ y - c * f.sum(axis=1), 0.0) / np.maximum((f * f).sum(axis=1), _TINY)
    rss = ((c[:, None] + a[:, None] * f - y) ** 2).sum(axis=1)
    i = int(np.argmin(np.where(np.isfinite(rss), rss, np.inf)))
    return np.array([c[i], a[i], *(q[i, 0] for q in family.grid)])


def _fit(family: _Family, x: np.ndarray, y: np.ndarray, x_h: float) -> tuple[float, ...]:
    """``(mean, sd, aicc)`` of the prediction at ``x_h``, in normalised units."""
    n, k = len(x), 2 + len(family.grid)
    lb, ub = np.array([-C_BELOW, 0.0, *family.lower]), np.array([1.0, np.inf, *family.upper])
    theta0 = np.clip(_start(family, x, y), lb, ub)
    from scipy.optimize import least_squares

    fit = least_squares(
        lambda th: family(th, x) - y,
        theta0,
        jac=lambda th: family.jac(th, x),
        bounds=(lb, ub),
        max_nfev=20 * k,
        **_TOLERANCES,
    )
    rss = float(fit.fun @ fit.fun)
    prior = PRIOR_POINTS * PRIOR_SD**2
    sigma2 = max((rss + prior) / (n - k + PRIOR_POINTS), SD_FLOOR**2)
    g = family.jac(fit.x, np.array([x_h]))[0]
    var = sigma2 + max(float(g @ (sigma2 * np.linalg.pinv(fit.jac.T @ fit.jac)) @ g), 0.0)
    # AICc: below two residual degrees of freedom every family has the same k, so the
    # correction, infinite there, is left out
    penalty = 2 * k + (2 * k * (k + 1) / (n - k - 1) if n > k + 1 else 0.0)
    aicc = n * math.log(max(rss / n, SD_FLOOR**2)) + penalty
    return float(family(fit.x, np.array([x_h]))[0]), math.sqrt(var), aicc


def forecast(steps: np.ndarray, losses: np.ndarray, horizon: int) -> Forecast | None:
    """The predictive distribution of the loss at step ``horizon``.

    Args:
        steps: the reports' steps (>= 1, increasing; non-finite or non-positive ones are
            dropped with their loss, the rest sorted).
        losses: the losses reported at ``steps`` (non-finite ones are dropped).
        horizon: the step to predict; at or before the last step the forecast is a smoothed
            value.

    Returns:
        a :class:`Forecast` in loss units, or None when fewer than :data:`MIN_POINTS` finite
        points remain, ``steps`` and ``losses`` differ in length, or no family could be
        fitted. Never raises or warns.
    """
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # scipy's and numpy's, here only
        try:
            return _forecast(steps, losses, horizon)
        except (ValueError, TypeError, ArithmeticError, np.linalg.LinAlgError):
            return None


def _forecast(steps: np.ndarray, losses: np.ndarray, horizon: int) -> Forecast | None:
    t, loss = np.asarray(steps, dtype=float).ravel(), np.asarray(losses, dtype=float).ravel()
    if t.shape != loss.shape or not (math.isfinite(horizon) and horizon > 0):
        return None
    keep = np.isfinite(t) & np.isfinite(loss) & (t > 0)
    if keep.sum() < MIN_POINTS:
        return None
    order = np.argsort(t[keep], kind="stable")
    t, loss = t[keep][order], loss[keep][order]
    lo, hi = float(loss.min()), float(loss.max())
    scale = max(hi - lo, 1e-9 * max(abs(lo), abs(hi)), _TINY)
    if not math.isfinite(scale):
        return None
    x, y, x_h = t / t[0], (loss - lo) / scale, horizon / t[0]
    fits = []
    for family in (_POWER, _EXPONENTIAL, _LOG_POWER if len(x) >= 6 else _HYPERBOLA):
        try:
            fits.append(_fit(family, x, y, x_h))
        except (ValueError, ArithmeticError, np.linalg.LinAlgError):
            continue  # a family that cannot be fitted is left out of the mixture
    fits = [f for f in fits if all(map(math.isfinite, f))]
    if not fits:
        return None
    mean, sd, aicc = np.array(fits).T
    means, sds, weights = lo + scale * mean, scale * sd, np.exp(-0.5 * (aicc - aicc.min()))
    if not (np.isfinite(means).all() and np.isfinite(sds).all() and (sds > 0).all()):
        return None
    return Forecast(means, sds, weights / weights.sum())


def probability_below(
    steps: np.ndarray, losses: np.ndarray, horizon: int, target: float
) -> float | None:
    """``P(loss at horizon < target)`` from :func:`forecast`; None where it gives none."""
    fc = forecast(steps, losses, horizon)
    return None if fc is None else fc.probability_below(target)
