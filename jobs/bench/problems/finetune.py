"""A fine-tuning recipe with nested conditions: the space a user tunes to adapt a pretrained net.

Parameters, with conditions two levels deep:

* ``optimizer`` (sgd / adamw); ``momentum`` only for sgd; ``ema`` (an average of the
  weights) only for adamw and its ``ema_decay`` only when ``ema`` is on;
* ``lr`` and ``weight_decay`` (log), ``label_smoothing``, ``epochs`` (int);
* ``schedule`` (constant / step / cosine) with ``step_every`` (int, epochs) and
  ``step_gamma`` only for step;
* ``warmup`` (on / off) with ``warmup_epochs`` (int) only when on;
* ``freeze`` (none / partial / backbone) with ``unfrozen_blocks`` (int) only for partial.

The top-1 error (%) is a fixed formula with the interactions fine-tuning practice knows: the
best learning rate depends on the optimizer and on how much is frozen (a frozen backbone
takes a rate 10x larger); more than 1.5 decades above it training diverges (90 %, chance),
2 decades with a warmup; adamw needs a warmup more than sgd; the best number of epochs
depends on what is frozen, the best step interval is a third of the epochs. Every quadratic
term is zero somewhere in the box for every discrete choice, and the discrete offsets are
smallest at adamw with an EMA, a warmup, a cosine schedule and a partial freeze, so the
optimum is :data:`FLOOR` plus those offsets, at :data:`ARGMIN`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from propagator.space import Categorical, Float, Int, Space

from .base import Problem

FLOOR = 8.0
DIVERGED = 90.0
_OPTIMIZER = {"adamw": 0.0, "sgd": 0.4}
_NO_WARMUP = {"adamw": 0.6, "sgd": 0.1}
_EMA_GAIN = 0.3
_SCHEDULE = {"cosine": 0.0, "step": 0.2, "constant": 0.7}
_FREEZE = {"partial": 0.0, "none": 0.5, "backbone": 1.5}
_LOG_LR = {"adamw": -4.0, "sgd": -2.0}
_LR_SHIFT = {"none": 0.0, "partial": 0.5, "backbone": 1.0}  # decades: frozen layers tolerate more
_LOG_WD = {"adamw": -2.0, "sgd": -4.0}
_EPOCHS = {"none": 30, "partial": 20, "backbone": 10}
_WARMUP_EPOCHS = {"adamw": 3, "sgd": 1}
_BEST_BLOCKS = 4

SPACE = Space(
    {
        "optimizer": Categorical(list(_OPTIMIZER)),
        "lr": Float(1e-6, 1.0, log=True),
        "momentum": Float(0.0, 0.99, when="optimizer == 'sgd'"),
        "ema": Categorical([False, True], when="optimizer == 'adamw'"),
        "ema_decay": Float(0.9, 0.99999, when="ema == True"),
        "weight_decay": Float(1e-6, 1e-1, log=True),
        "schedule": Categorical(list(_SCHEDULE)),
        "step_every": Int(1, 30, when="schedule == 'step'"),
        "step_gamma": Float(0.05, 0.9, when="schedule == 'step'"),
        "warmup": Categorical([False, True]),
        "warmup_epochs": Int(1, 10, when="warmup == True"),
        "freeze": Categorical(list(_FREEZE)),
        "unfrozen_blocks": Int(1, 12, when="freeze == 'partial'"),
        "label_smoothing": Float(0.0, 0.3),
        "epochs": Int(5, 60),
    }
)
ARGMIN = {
    "optimizer": "adamw",
    "lr": 10 ** (_LOG_LR["adamw"] + _LR_SHIFT["partial"]),
    "ema": True,
    "ema_decay": 0.999,
    "weight_decay": 1e-2,
    "schedule": "cosine",
    "warmup": True,
    "warmup_epochs": 3,
    "freeze": "partial",
    "unfrozen_blocks": 4,
    "label_smoothing": 0.1,
    "epochs": 20,
}


def _lr_gap(p: Mapping[str, Any]) -> float:
    """Decades between the learning rate and the best one for this optimizer and freeze."""
    return math.log10(p["lr"]) - _LOG_LR[p["optimizer"]] - _LR_SHIFT[p["freeze"]]


def _offsets(p: Mapping[str, Any]) -> float:
    """The discrete choices' costs (smallest at :data:`ARGMIN`'s choices)."""
    cost = _OPTIMIZER[p["optimizer"]] + _SCHEDULE[p["schedule"]] + _FREEZE[p["freeze"]]
    cost += 0.0 if p["warmup"] else _NO_WARMUP[p["optimizer"]]
    return cost - (_EMA_GAIN if p.get("ema") else 0.0)


def _settings(p: Mapping[str, Any]) -> float:
    """The continuous and integer settings' costs: each zero at its best value."""
    cost = 1.2 * _lr_gap(p) ** 2 + 10.0 * (p["label_smoothing"] - 0.1) ** 2
    cost += 0.3 * (math.log10(p["weight_decay"]) - _LOG_WD[p["optimizer"]]) ** 2
    cost += 0.002 * (p["epochs"] - _EPOCHS[p["freeze"]]) ** 2
    if p["optimizer"] == "sgd":
        cost += 3.0 * (p["momentum"] - 0.9) ** 2
    if p.get("ema"):
        cost += 0.2 * (math.log10(1.0 - p["ema_decay"]) + 3.0) ** 2
    if p["schedule"] == "step":
        cost += 3.0 * (p["step_every"] / p["epochs"] - 1 / 3) ** 2
        cost += 2.0 * (p["step_gamma"] - 0.3) ** 2
    if p["warmup"]:
        cost += 0.1 * (p["warmup_epochs"] - _WARMUP_EPOCHS[p["optimizer"]]) ** 2
    if p["freeze"] == "partial":
        cost += 0.05 * (p["unfrozen_blocks"] - _BEST_BLOCKS) ** 2
    return cost


def finetune_error(p: Mapping[str, Any]) -> float:
    """Top-1 error (%) at active params ``p`` (see the module docstring)."""
    if _lr_gap(p) > (2.0 if p["warmup"] else 1.5):
        return DIVERGED
    return FLOOR + _offsets(p) + _settings(p)


def finetune_problem() -> Problem:
    """The recipe as a problem; its optimum is the error at :data:`ARGMIN`."""
    return Problem("finetune", SPACE, finetune_error(ARGMIN), finetune_error)
