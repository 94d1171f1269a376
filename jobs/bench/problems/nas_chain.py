"""A synthetic macro architecture: a chain of 8 layers, each one of 5 operations.

5^8 = 390,625 networks, a larger and differently shaped space than the cell of
:mod:`.nas_cell`: what matters here is where in the depth an operation sits and what its
neighbours are. The validation error (%, minimised) is a fixed formula with seeded tables
(``SEED``), shaped like what macro searches of convolutional networks report (wide
convolutions early, cheap separable ones late, two downsamplings, no collapse to identity):

* **Position effects**: each operation's effect depends on its relative depth (3x3 and 5x5
  convolutions gain most early, separable convolutions late; identity costs a little
  everywhere), plus a seeded per-(layer, operation) deviation N(0, 0.25).
* **Neighbours**: a seeded N(0, 0.2) term per pair of adjacent operations at each position;
  two poolings in a row cost 1.5 points.
* **Downsampling**: max pooling downsamples; the error grows by 2.5 points per pooling away
  from two, and by 2 more if the first pooling comes before layer 3 (too early).
* **Depth and size**: identity layers shorten the network: fewer than 5 real layers cost 1.5
  points each; 5x5 convolutions are large: more than three cost 1 point each (overfitting).

The optimum (:func:`nas_chain_optimum`) is found by evaluating all 390,625 networks at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

import numpy as np

from propagator.space import Categorical, Space

from .base import Problem

SEED = 2024
OPS = ("conv3x3", "conv5x5", "sep_conv3x3", "max_pool", "identity")
LAYERS = 8
NAMES = tuple(f"layer{i}" for i in range(LAYERS))
BASE = 12.0  # % error before the effects
_POOL, _IDENTITY, _CONV5 = OPS.index("max_pool"), OPS.index("identity"), OPS.index("conv5x5")
# effect of each operation at the first and at the last layer, interpolated in between
_EARLY = np.array([-1.2, -1.0, -0.3, 0.0, 0.3])
_LATE = np.array([-0.4, -0.2, -1.1, 0.0, 0.2])
_POOLS_WANTED, _POOL_COST, _EARLY_POOL_COST, _POOL_PAIR_COST = 2, 2.5, 2.0, 1.5
_MIN_REAL, _SHALLOW_COST = 5, 1.5
_MAX_CONV5, _CONV5_COST = 3, 1.0


@cache
def _tables() -> tuple[np.ndarray, np.ndarray]:
    """Per (layer, op) effects and per (layer pair, op pair) neighbour terms."""
    rng = np.random.default_rng(SEED)
    depth = np.linspace(0.0, 1.0, LAYERS)[:, None]
    unary = (1 - depth) * _EARLY + depth * _LATE + rng.normal(0.0, 0.25, (LAYERS, len(OPS)))
    pair = rng.normal(0.0, 0.2, (LAYERS - 1, len(OPS), len(OPS)))
    pair[:, _POOL, _POOL] += _POOL_PAIR_COST
    return unary, pair


def chain_errors(ops: np.ndarray) -> np.ndarray:
    """Validation error (%) of each network; ``ops`` is (networks, 8) operation indices."""
    unary, pair = _tables()
    layers = np.arange(LAYERS)
    error = BASE + unary[layers, ops].sum(axis=1)
    error += pair[layers[:-1], ops[:, :-1], ops[:, 1:]].sum(axis=1)
    pools = (ops == _POOL).sum(axis=1)
    error += _POOL_COST * np.abs(pools - _POOLS_WANTED)
    first_pool = np.where(pools > 0, (ops == _POOL).argmax(axis=1), LAYERS)
    error += _EARLY_POOL_COST * (first_pool < 2)
    real = (ops != _IDENTITY).sum(axis=1)
    error += _SHALLOW_COST * np.maximum(0, _MIN_REAL - real)
    error += _CONV5_COST * np.maximum(0, (ops == _CONV5).sum(axis=1) - _MAX_CONV5)
    return error


def chain_error(ops: list[str] | tuple[str, ...]) -> float:
    """Validation error (%) of the network with operation ``ops[i]`` at layer ``i``."""
    return float(chain_errors(np.array([[OPS.index(op) for op in ops]]))[0])


@cache
def nas_chain_optimum() -> tuple[float, tuple[str, ...]]:
    """The smallest error over all 390,625 networks, and that network's operations."""
    every = np.stack(np.unravel_index(np.arange(len(OPS) ** LAYERS), (len(OPS),) * LAYERS), 1)
    errors = chain_errors(every)
    best = int(errors.argmin())
    return float(errors[best]), tuple(OPS[i] for i in every[best])


def _evaluate(params: Mapping[str, Any]) -> float:
    return chain_error([params[n] for n in NAMES])


def nas_chain_problem() -> Problem:
    """The chain as a problem: one categorical parameter per layer (``layer0`` .. ``layer7``)."""
    space = Space({n: Categorical(list(OPS)) for n in NAMES})
    return Problem("nas_chain", space, nas_chain_optimum()[0], _evaluate)
