"""A mixed, conditional HPO-shaped function: optimizer, its own settings, a per-layer width.

The space mixes every kind of parameter and two kinds of conditions:

* ``optimizer`` (sgd / adam / rmsprop) with ``momentum`` only for sgd and ``beta1``/``beta2``
  only for adam;
* ``lr`` (log), ``weight_decay`` (log), ``batch_size`` (log int), ``dropout``, ``activation``;
* ``depth`` 1..4 with ``width<i>`` (log int) existing only when ``depth >= i``.

The "validation loss" is a fixed formula with the interactions tuning practice knows:

* the best learning rate depends on the optimizer and grows with the square root of the
  batch size; for sgd it is the *effective* rate ``lr / (1 - momentum)`` that matters, so
  lr and momentum form a ridge; more than 1.5 decades above the best rate training diverges
  (loss 2.3, chance on 10 classes);
* adam prefers ``beta1 = 0.9``, ``beta2 = 0.999`` (measured on ``log10(1 - beta2)``);
* each layer's width has its own best value (a pyramid: 512, 256, 128, 64);
* the best dropout grows with depth; the best weight decay depends on the optimizer;
* discrete offsets per optimizer, activation and depth (adam, gelu, depth 3 are best).

Every quadratic term reaches 0 inside the box at any discrete choice, so the optimum is
``FLOOR`` plus the smallest discrete offsets, at :data:`ARGMIN`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from propagator.space import Categorical, Float, Int, Space

from .base import Problem

FLOOR = 0.20
DIVERGED = 2.3
_OPTIMIZER = {"adam": 0.0, "sgd": 0.02, "rmsprop": 0.03}
_ACTIVATION = {"gelu": 0.0, "relu": 0.01, "tanh": 0.04, "sigmoid": 0.10}
_DEPTH = {1: 0.08, 2: 0.02, 3: 0.0, 4: 0.01}
_LOG_LR = {"adam": -3.0, "sgd": -0.5, "rmsprop": -3.5}  # best log10 (effective) lr at batch 128
_LOG_WD = {"adam": -2.0, "sgd": -4.0, "rmsprop": -5.0}
_LOG2_WIDTH = (9.0, 8.0, 7.0, 6.0)
_DIVERGE_DECADES = 1.5

SPACE = Space(
    {
        "optimizer": Categorical(list(_OPTIMIZER)),
        "lr": Float(1e-5, 1.0, log=True),
        "momentum": Float(0.0, 0.99, when="optimizer == 'sgd'"),
        "beta1": Float(0.5, 0.999, when="optimizer == 'adam'"),
        "beta2": Float(0.9, 0.99999, when="optimizer == 'adam'"),
        "batch_size": Int(16, 1024, log=True),
        "depth": Int(1, 4),
        **{f"width{i}": Int(16, 1024, log=True, when=f"depth >= {i}") for i in range(1, 5)},
        "activation": Categorical(list(_ACTIVATION)),
        "dropout": Float(0.0, 0.7),
        "weight_decay": Float(1e-7, 1e-1, log=True),
    }
)
ARGMIN = {
    "optimizer": "adam",
    "lr": 1e-3,
    "beta1": 0.9,
    "beta2": 0.999,
    "batch_size": 128,
    "depth": 3,
    "width1": 512,
    "width2": 256,
    "width3": 128,
    "activation": "gelu",
    "dropout": 0.15,
    "weight_decay": 1e-2,
}


def _lr_gap(p: Mapping[str, Any]) -> float:
    """Decades between the (effective) learning rate and the best one for this setting."""
    log_lr = math.log10(p["lr"])
    if p["optimizer"] == "sgd":
        log_lr -= math.log10(1.0 - p["momentum"])
    best = _LOG_LR[p["optimizer"]] + 0.5 * math.log10(p["batch_size"] / 128)
    return log_lr - best


def _optimizer_terms(p: Mapping[str, Any]) -> float:
    if p["optimizer"] == "sgd":
        return 0.2 * (p["momentum"] - 0.9) ** 2
    if p["optimizer"] == "adam":
        return 0.3 * (p["beta1"] - 0.9) ** 2 + 0.02 * (math.log10(1.0 - p["beta2"]) + 3.0) ** 2
    return 0.0


def mixed_loss(p: Mapping[str, Any]) -> float:
    """The loss at active params ``p`` (see the module docstring); at least :data:`FLOOR`."""
    gap = _lr_gap(p)
    if gap > _DIVERGE_DECADES:
        return DIVERGED
    depth = p["depth"]
    widths = sum((math.log2(p[f"width{i + 1}"]) - _LOG2_WIDTH[i]) ** 2 for i in range(depth))
    return (
        FLOOR
        + _OPTIMIZER[p["optimizer"]]
        + _ACTIVATION[p["activation"]]
        + _DEPTH[depth]
        + 0.05 * gap**2
        + _optimizer_terms(p)
        + 0.004 * widths
        + 0.3 * (p["dropout"] - 0.05 * depth) ** 2
        + 0.005 * (math.log10(p["weight_decay"]) - _LOG_WD[p["optimizer"]]) ** 2
        + 0.002 * (math.log2(p["batch_size"]) - 7.0) ** 2
    )


def mixed_problem() -> Problem:
    """The mixed conditional space with :func:`mixed_loss`; optimum ``FLOOR``."""
    return Problem("mixed_hpo", SPACE, FLOOR, mixed_loss)
