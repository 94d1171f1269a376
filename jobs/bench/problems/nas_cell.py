"""A synthetic architecture cell shaped like NAS-Bench-201's: 6 edges x 5 operations.

The cell is a DAG on nodes 0 (input) .. 3 (output); every edge ``j <- i`` (``i < j``) carries
one of ``none``, ``skip_connect``, ``nor_conv_1x1``, ``nor_conv_3x3``, ``avg_pool_3x3``:
5^6 = 15,625 architectures. The validation error (%, minimised) is a fixed, documented
formula with seeded tables (``SEED``), built to have the structure measured on real cells
(Dong & Yang, NAS-Bench-201, ICLR 2020: CIFAR-10 validation errors from about 8.4 % for the
best cell, most cells 9-20 %, parameter-free cells far worse, disconnected cells at chance):

* **Connectivity.** An edge is *live* when it is not ``none``, its source is reachable from
  the input and its target reaches the output through live edges. No live path from input to
  output: 90 % (chance on 10 classes): a ``none`` on the input path ruins the cell. Dead
  edges change nothing.
* **Parameter-free cells** (no convolution on any live edge): 45 % plus the live edges'
  small effects.
* **Additive per-edge effects** of the live edges: an operation's mean effect (3x3 conv best,
  then 1x1 conv, skip, pooling) scaled by a per-edge weight, plus a seeded per-(edge,
  operation) deviation N(0, 0.3).
* **Pairwise interactions** between live edges: a seeded N(0, 0.15) term per pair of edges and
  pair of operations; more than two live skip connections cost 1.5 points each beyond two
  (the skip-collapse of weight-sharing NAS); a skip on the input-to-output edge next to a
  convolutional path is a residual connection and gains 1.8 points.
* **Depth**: 0.4 points gained per convolution on the longest live path beyond the first.

The optimum (:func:`nas_cell_optimum`) is found by enumerating all 15,625 cells.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

import numpy as np

from propagator.space import Categorical, Space

from .base import Problem

SEED = 201
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))  # (to, from)
NAMES = tuple(f"edge_{j}_{i}" for j, i in EDGES)

CHANCE = 90.0  # % error of a disconnected cell
PARAMETER_FREE = 45.0  # % error of a cell without convolutions
BASE = 18.0  # % error of a cell before the live edges' effects
_OP_MEAN = {"skip_connect": -0.6, "nor_conv_1x1": -1.1, "nor_conv_3x3": -1.5, "avg_pool_3x3": -0.2}
_EDGE_WEIGHT = (1.0, 0.8, 1.0, 0.7, 0.9, 1.2)
_SKIP_LIMIT, _SKIP_COST = 2, 1.5
_RESIDUAL_GAIN = 1.8
_DEPTH_GAIN = 0.4
_CONVS = ("nor_conv_1x1", "nor_conv_3x3")


@cache
def _tables() -> tuple[np.ndarray, np.ndarray]:
    """Seeded deviations: per (edge, op) and per (edge pair, op pair); none's entries are 0."""
    rng = np.random.default_rng(SEED)
    main = rng.normal(0.0, 0.3, (len(EDGES), len(OPS)))
    pair = rng.normal(0.0, 0.15, (len(EDGES), len(EDGES), len(OPS), len(OPS)))
    main[:, 0] = 0.0
    pair[:, :, 0, :] = pair[:, :, :, 0] = 0.0
    return main, pair


def _live(ops: Sequence[str]) -> list[bool]:
    """Which edges are live: not none, fed from the input, and leading to the output."""
    fed = {0}
    for (j, i), op in zip(EDGES, ops, strict=True):
        if op != "none" and i in fed:
            fed.add(j)
    leads = {3}
    for (j, i), op in reversed(list(zip(EDGES, ops, strict=True))):
        if op != "none" and j in leads:
            leads.add(i)
    return [op != "none" and i in fed and j in leads for (j, i), op in zip(EDGES, ops, strict=True)]


def _longest_conv_path(ops: Sequence[str], live: Sequence[bool]) -> int:
    """Most convolutions on one live path from the input to the output (-1: no path)."""
    best = {0: 0}
    for e, ((j, i), op) in enumerate(zip(EDGES, ops, strict=True)):
        if live[e] and i in best:
            best[j] = max(best.get(j, -1), best[i] + (op in _CONVS))
    return best.get(3, -1)


def cell_error(ops: Sequence[str]) -> float:
    """Validation error (%) of the cell with operation ``ops[e]`` on edge ``EDGES[e]``."""
    live = _live(ops)
    convs = _longest_conv_path(ops, live)
    if convs < 0:
        return CHANCE
    main, pair = _tables()
    idx = [OPS.index(op) for op in ops]
    on = [e for e in range(len(EDGES)) if live[e]]
    effect = sum(_EDGE_WEIGHT[e] * _OP_MEAN[ops[e]] + main[e, idx[e]] for e in on)
    effect += sum(pair[e, f, idx[e], idx[f]] for e, f in itertools.combinations(on, 2))
    if convs == 0:
        return PARAMETER_FREE + effect
    skips = sum(ops[e] == "skip_connect" for e in on)
    effect += _SKIP_COST * max(0, skips - _SKIP_LIMIT)
    if ops[EDGES.index((3, 0))] == "skip_connect":
        effect -= _RESIDUAL_GAIN
    return float(BASE + effect - _DEPTH_GAIN * (convs - 1))


@cache
def nas_cell_optimum() -> tuple[float, tuple[str, ...]]:
    """The smallest error over all 15,625 cells, and that cell's operations."""
    return min((cell_error(ops), ops) for ops in itertools.product(OPS, repeat=len(EDGES)))


def _evaluate(params: Mapping[str, Any]) -> float:
    return cell_error([params[n] for n in NAMES])


def nas_cell_problem() -> Problem:
    """The cell as a problem: one categorical parameter per edge (``edge_<to>_<from>``)."""
    space = Space({n: Categorical(list(OPS)) for n in NAMES})
    return Problem("nas_cell", space, nas_cell_optimum()[0], _evaluate)
