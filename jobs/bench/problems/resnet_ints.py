"""An integer-heavy space: a ResNet-like network's stages, blocks, width, kernel and schedule.

Every parameter is an integer: ``stages`` (2..5), ``blocks<i>`` (1..8, only for the first
``stages`` stages), ``log2_width`` (base width 16..128), ``kernel`` (3..7), ``batch_size``
(16..512, log) and ``epochs`` (10..200, log). The validation error (%) is a fixed formula
in three independent groups, each with the interaction scaling practice knows:

* **Depth** (``stages``, ``blocks<i>``): each number of stages has a preferred distribution
  of blocks (ResNet-34's 3-4-6-3 for four stages) and a preferred total depth, and an
  offset (four stages best, two far too shallow).
* **Width and kernel**: the best width halves for every two pixels of kernel; even kernels
  cost (no centre pixel), 3x3 is best.
* **Batch and epochs**: the best number of epochs grows with the square root of the batch
  size (fewer steps per epoch); large batches cost a little in the end.

Since the groups add up, the optimum is the floor plus each group's minimum, each found by
enumerating the group (:func:`resnet_optimum`; 37,440 depth settings, 20 width and kernel
settings, 93,177 batch and epoch settings).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from functools import cache
from typing import Any

import numpy as np

from propagator.space import Int, Space

from .base import Problem

FLOOR = 6.0
MAX_STAGES, MAX_BLOCKS = 5, 8
_STAGES = {2: 1.2, 3: 0.4, 4: 0.0, 5: 0.3}  # offsets
_BLOCKS = {2: (2, 3), 3: (3, 4, 3), 4: (3, 4, 6, 3), 5: (2, 3, 4, 6, 3)}
_DEPTH = {2: 6, 3: 10, 4: 16, 5: 18}  # preferred total blocks
_KERNEL = {3: 0.0, 4: 0.6, 5: 0.15, 6: 0.8, 7: 0.35}

SPACE = Space(
    {
        "stages": Int(2, MAX_STAGES),
        **{
            f"blocks{i}": Int(1, MAX_BLOCKS, when=f"stages >= {i}")
            for i in range(1, MAX_STAGES + 1)
        },
        "log2_width": Int(4, 7),
        "kernel": Int(3, 7),
        "batch_size": Int(16, 512, log=True),
        "epochs": Int(10, 200, log=True),
    }
)


def depth_cost(stages: int, blocks: np.ndarray) -> np.ndarray:
    """The depth group's cost for ``stages`` and rows of its ``blocks`` (networks, stages)."""
    preferred = np.array(_BLOCKS[stages])
    spread = 0.12 * ((blocks - preferred) ** 2).sum(axis=1)
    return _STAGES[stages] + spread + 0.03 * (blocks.sum(axis=1) - _DEPTH[stages]) ** 2


def width_cost(log2_width: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """The width and kernel group's cost (the best width is 64 at kernel 3)."""
    best = 6.0 - (kernel - 3) / 2.0
    offsets = np.array([_KERNEL[k] for k in range(3, 8)])[kernel - 3]
    return offsets + 0.4 * (log2_width - best) ** 2


def schedule_cost(batch_size: np.ndarray, epochs: np.ndarray) -> np.ndarray:
    """The batch and epochs group's cost (the best epochs: 40 at batch 64, x2 per 4x batch)."""
    best = np.log2(40.0) + 0.5 * (np.log2(batch_size) - 6.0)
    return 1.5 * (np.log2(epochs) - best) ** 2 + 0.05 * np.maximum(0.0, np.log2(batch_size) - 7)


def resnet_error(p: Mapping[str, Any]) -> float:
    """Validation error (%) at active params ``p`` (see the module docstring)."""
    stages = p["stages"]
    blocks = np.array([[p[f"blocks{i}"] for i in range(1, stages + 1)]])
    depth = depth_cost(stages, blocks)[0]
    width = width_cost(np.array([p["log2_width"]]), np.array([p["kernel"]]))[0]
    schedule = schedule_cost(np.array([p["batch_size"]]), np.array([p["epochs"]]))[0]
    return float(FLOOR + depth + width + schedule)


def _best_blocks(stages: int) -> tuple[float, int, tuple[int, ...]]:
    """The smallest depth cost with ``stages`` stages, and its blocks."""
    every = np.array(list(itertools.product(range(1, MAX_BLOCKS + 1), repeat=stages)))
    costs = depth_cost(stages, every)
    best = int(costs.argmin())
    return float(costs[best]), stages, tuple(int(v) for v in every[best])


@cache
def resnet_optimum() -> tuple[float, dict[str, int]]:
    """The smallest error and a point reaching it, by enumerating each group."""
    depth = min(_best_blocks(s) for s in _STAGES)
    w, k = np.meshgrid(np.arange(4, 8), np.arange(3, 8))
    widths = width_cost(w.ravel(), k.ravel())
    b, e = np.meshgrid(np.arange(16, 513), np.arange(10, 201))
    schedules = schedule_cost(b.ravel(), e.ravel())
    i, j = int(widths.argmin()), int(schedules.argmin())
    point = {
        "stages": depth[1],
        **{f"blocks{n}": v for n, v in enumerate(depth[2], 1)},
        "log2_width": int(w.ravel()[i]),
        "kernel": int(k.ravel()[i]),
        "batch_size": int(b.ravel()[j]),
        "epochs": int(e.ravel()[j]),
    }
    return resnet_error(point), point


def resnet_problem() -> Problem:
    """The integer network as a problem; optimum from :func:`resnet_optimum`."""
    return Problem("resnet_ints", SPACE, resnet_optimum()[0], resnet_error)
