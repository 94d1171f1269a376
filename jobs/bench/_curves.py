"""Synthetic learning curves for the early-stopping benchmark (``early_stopping.py``).

A configuration's validation loss after epoch ``t`` is

    loss(t) = floor(x) + AMPLITUDE · exp(-t / tau(x)) + offset + jitter(t)

with ``x`` = (learning rate, width, optimizer, weight decay), each mapped to ``[0, 1]`` on its
log scale (``u``, ``w``, ``d``). The floor is lowest at ``u = 0.45``, for the widest model, at
``d = 0.6`` and for plain SGD (momentum +0.01, Adam +0.04):

    floor = 0.05 + floor_scale · (1.5 (u - 0.45)² + 0.15 (1 - w)² + 0.2 (d - 0.6)²) + rise

and a configuration learns with the time constant ``tau = tau_fastest · 10^(1.5 |u -
lr_fastest|) · speed · (1 + width_effect · (w - 0.5))`` (speed: SGD 1.6, momentum 1, Adam
0.6). Two families (numbers over 4000 random configurations, 27 epochs):

* :data:`CURVES`: the fastest learning rate lies a little above the best one (``u = 0.6``),
  and wider models learn faster. Curves cross where a larger learning rate or Adam buys speed
  with a higher floor (15 % of the pairs are ordered differently after the first and the last
  epoch; rank correlation 0.89), so a bad start usually, not always, means a bad end: the
  optimum is behind 18 % of all configurations after one epoch, and behind 59 % of the 10 %
  that end best.
* :data:`SLOW_CURVES`: every change that lowers the floor slows learning (a smaller learning
  rate, a wider model, SGD), and the settings matter less at the end (``floor_scale`` 1): the
  configurations that end best start behind (24 % of the pairs cross, rank correlation 0.69,
  the optimum still converging at epoch 9, ``tau`` 5.5). This is the short-horizon bias at
  its strongest, where successive halving is expected to stop the eventual winners early.

The noise is seeded: ``offset`` is one draw per run (the spread of a final loss over seeds)
and ``jitter`` one per epoch, both Gaussian with ``NOISE`` standard deviation, both from
``numpy.random.default_rng(seed)``. :meth:`Curves.final_loss` is the noiseless loss after the
last epoch, and :func:`optimum` its minimum over the space, against which the benchmark
measures the regret of a search's winner.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

import propagator as pg

EPOCHS = 27  # the rungs of ASHA with min_step 1, reduction 3 are 1, 3, 9, 27
AMPLITUDE = 2.0  # the loss falls from about floor + 2 (an untrained 10-class net: ln 10)
NOISE = 0.01  # standard deviation of the per-run offset and of the per-epoch jitter
LR_RANGE = (1e-4, 1.0)
WIDTH_RANGE = (8, 512)
WD_RANGE = (1e-6, 1e-1)
BEST_D = 0.6  # the weight decay's best position (it enters the floor only)
# per optimizer: the factor on tau (speed) and the rise of the floor
OPTIMIZERS = {"sgd": (1.6, 0.0), "momentum": (1.0, 0.01), "adam": (0.6, 0.04)}

SPACE = pg.Space(
    {
        "lr": pg.Float(*LR_RANGE, log=True),
        "width": pg.Int(*WIDTH_RANGE, log=True),
        "optimizer": pg.Categorical(list(OPTIMIZERS)),
        "weight_decay": pg.Float(*WD_RANGE, log=True),
    }
)


@dataclass(frozen=True)
class Shape:
    """The noiseless curve of one configuration: ``floor + AMPLITUDE · exp(-t / tau)``.

    Attributes:
        floor: the loss it tends to (after infinitely many epochs).
        tau: its time constant, in epochs.
    """

    floor: float
    tau: float

    def at(self, t: np.ndarray | float) -> np.ndarray | float:
        """The noiseless loss after ``t`` epochs."""
        return self.floor + AMPLITUDE * np.exp(-np.asarray(t, dtype=float) / self.tau)


def _unit(value: float, low: float, high: float) -> float:
    """``value``'s position on ``[low, high]`` in log scale, 0 to 1."""
    return math.log(value / low) / math.log(high / low)


def _from_unit(u: float, low: float, high: float) -> float:
    """The value at position ``u`` of ``[low, high]`` in log scale."""
    return low * (high / low) ** u


@dataclass(frozen=True)
class Curves:
    """A family of learning curves over :data:`SPACE` (see the module docstring).

    Attributes:
        name: the benchmark's name for it.
        tau_fastest: epochs; the time constant at the fastest learning rate, with momentum
            SGD and a middle width.
        lr_fastest: where the learning rate learns fastest, 0 to 1 on its log scale.
        width_effect: tau's relative change per unit of the width's log-scale position
            (negative: wider models learn faster).
        floor_scale: the factor on the floor's quadratic terms (how much the settings
            matter at the end).
    """

    name: str
    tau_fastest: float
    lr_fastest: float
    width_effect: float
    floor_scale: float

    def floor(self, u: np.ndarray | float, w: float, d: float, optimizer: str) -> Any:
        """The loss after infinitely many epochs, at log-scale positions ``u``, ``w``, ``d``."""
        quadratic = 1.5 * (np.asarray(u) - 0.45) ** 2 + 0.15 * (1.0 - w) ** 2
        quadratic = quadratic + 0.2 * (d - BEST_D) ** 2
        return 0.05 + self.floor_scale * quadratic + OPTIMIZERS[optimizer][1]

    def tau(self, u: np.ndarray | float, w: float, optimizer: str) -> np.ndarray | float:
        """The time constant (epochs) at log-scale positions ``u`` (lr) and ``w`` (width)."""
        speed = OPTIMIZERS[optimizer][0] * (1.0 + self.width_effect * (w - 0.5))
        return self.tau_fastest * 10.0 ** (1.5 * np.abs(np.asarray(u) - self.lr_fastest)) * speed

    def shape(self, params: Mapping[str, Any]) -> Shape:
        """The noiseless curve of ``params`` (``lr``, ``width``, ``optimizer``,
        ``weight_decay``; other keys are ignored)."""
        u = _unit(float(params["lr"]), *LR_RANGE)
        w = _unit(float(params["width"]), *WIDTH_RANGE)
        d = _unit(float(params["weight_decay"]), *WD_RANGE)
        optimizer = str(params["optimizer"])
        return Shape(float(self.floor(u, w, d, optimizer)), float(self.tau(u, w, optimizer)))

    def curve(self, params: Mapping[str, Any], seed: int, epochs: int = EPOCHS) -> np.ndarray:
        """The validation loss after epochs 1 .. ``epochs`` of one run with ``seed``."""
        rng = np.random.default_rng(seed)
        offset, jitter = NOISE * rng.standard_normal(), NOISE * rng.standard_normal(epochs)
        return self.shape(params).at(np.arange(1, epochs + 1)) + offset + jitter

    def final_loss(self, params: Mapping[str, Any], epochs: int = EPOCHS) -> float:
        """The noiseless loss after the last epoch: what a search should minimise."""
        return float(self.shape(params).at(epochs))

    def objective(self, params: Mapping[str, Any], trial: Any) -> dict[str, float]:
        """A propagate objective: reports every epoch's loss and stops when told to.

        ``params`` may hold ``epochs`` (default :data:`EPOCHS`) and ``step_time``, seconds
        slept per epoch (default 0), so that evaluations take time in proportion to their
        epochs, as training does, and the workers' results arrive out of order.

        Paused (``trial.paused``, ASHA with promotion), it saves ``{"t": t}``, the epochs it
        ran; resumed (``trial.restore()`` gives that back), it continues the same curve (a
        function of ``params`` and ``trial.seed``) from epoch ``t + 1``, so that every epoch
        is reported once.
        """
        epochs = int(params.get("epochs", EPOCHS))
        step_time = float(params.get("step_time", 0.0))
        curve = self.curve(params, trial.seed, epochs)
        saved = trial.restore()
        t = 0 if saved is None else int(saved["t"])
        while t < epochs:
            t += 1
            time.sleep(step_time)
            trial.report(t, float(curve[t - 1]))
            if t < epochs and trial.should_stop():  # after the last epoch there is nothing to save
                if trial.paused:
                    trial.save({"t": t})
                break
        return {"val_loss": float(curve[t - 1]), "epochs_run": float(t)}


CURVES = Curves("curves", tau_fastest=1.25, lr_fastest=0.6, width_effect=-0.4, floor_scale=3.0)
SLOW_CURVES = Curves(
    "curves-slow", tau_fastest=1.58, lr_fastest=1.0, width_effect=0.4, floor_scale=1.0
)
FAMILIES = {c.name: c for c in (CURVES, SLOW_CURVES)}


def _best_u(curves: Curves, w: float, optimizer: str, epochs: int) -> tuple[float, float]:
    """The learning rate's log-scale position with the smallest final loss, and that loss."""

    def loss(u: np.ndarray | float) -> Any:
        tau = curves.tau(u, w, optimizer)
        return curves.floor(u, w, BEST_D, optimizer) + AMPLITUDE * np.exp(-epochs / tau)

    grid = np.linspace(0.0, 1.0, 4001)
    i = int(np.argmin(loss(grid)))
    bounds = (grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)])
    fit = minimize_scalar(loss, bounds=bounds, method="bounded", options={"xatol": 1e-10})
    return (float(fit.x), float(fit.fun)) if fit.fun < loss(grid[i]) else (grid[i], loss(grid[i]))


@cache
def optimum(curves: Curves, epochs: int = EPOCHS) -> tuple[float, dict[str, Any]]:
    """The smallest :meth:`Curves.final_loss` over :data:`SPACE` and where it is.

    Weight decay enters the floor only, so its best is exact. For every optimizer and every
    integer width, the best learning rate is found on a grid of 4001 points in log scale and
    refined by a bounded scalar minimisation around the grid's best.
    """
    best: tuple[float, dict[str, Any]] = (math.inf, {})
    for optimizer in OPTIMIZERS:
        for width in range(WIDTH_RANGE[0], WIDTH_RANGE[1] + 1):
            u, value = _best_u(curves, _unit(width, *WIDTH_RANGE), optimizer, epochs)
            if value < best[0]:
                params = {
                    "lr": _from_unit(u, *LR_RANGE),
                    "width": width,
                    "optimizer": optimizer,
                    "weight_decay": _from_unit(BEST_D, *WD_RANGE),
                }
                best = (float(value), params)
    return best
