"""``ddg``: decoupled parallel backpropagation with delayed gradients (Huo's thesis, Ch. 5:
SGD-DDG, Alg. 9; Adam-DDG, Alg. 10).

The model is cut into K modules (``modules``, default 2, or ``split``) on a chain of the
worker's ranks (:mod:`trainers.decoupled` runs the loop). The forward pass stays sequential:
at iteration t every module runs sample t with its current weights w^t. Module k (0-based)
then applies the gradient of its weights at (w^{t-D_k}, sample t-D_k), D_k = K-1-k (the
thesis's 1-based delay K-k): the last module backpropagates the loss of sample t at once and
sends the error gradient w.r.t. its input down; module k < K-1 receives the gradient of its
output for sample t-D_k, which module k+1 computed one iteration earlier, and backpropagates
it through the graph it built at that sample's forward pass. While t < D_k nothing has
arrived and the module does not update (Eq. 5.8 takes the gradient as 0).

Params: :data:`trainers.decoupled.PARTS`, with defaults and ranges in the
README. Metrics: see :mod:`trainers.decoupled`.

Choices where the thesis is ambiguous:

* Stale weights. Module k's gradient must be the one at w^{t-D_k}, but its live weights are
  updated in place D_k times before the gradient comes back, which would both change the
  result and invalidate the stored graph. So module k (D_k > 0) runs its forward through a
  detached copy of its weights (``torch.func.functional_call``) and keeps that copy with the
  graph: D_k + 1 graphs and copies per module at the peak. This is DDG's memory cost (Table
  6: O(LK + K²) activations; ``stored_activations`` and ``stored_weights`` report it). The
  last module (D = 0) needs no copy.
* The first D_k iterations: no optimizer step (not a step with a zero gradient). For plain
  SGD this is the same; with weight decay or Adam it differs: decay starts with the first
  gradient, and Adam's bias correction counts the module's own updates, so its first update
  has the usual size (Alg. 10 with zero gradients would count from t = 0).
* Adam-DDG (Alg. 10) is ``torch.optim.Adam`` per module (β1 0.9, β2 0.999, ε 1e-8, the
  algorithm's constants) fed with the delayed gradient.
* The pipeline runs across epochs (t counts every iteration of the run); the gradients still
  in flight when the run ends are dropped, as Alg. 9 stops at T.
* BatchNorm: running statistics are updated once per sample, at its forward pass (the only
  one); the backward uses the batch statistics saved in the graph.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

import torch

from propagator import Trial

from . import decoupled
from .decoupled import Graph, Stage, kept_buffers, record
from .layer_parallel import RandomState, drawing_from, random_state
from .params import Trainer, Values


class DelayedGradients:
    """DDG's part of the loop: each module keeps the graphs of its last D_k + 1 forward
    passes, built with weight snapshots, and learns from the oldest.

    A pause keeps D_k graphs per module. A graph cannot be saved, but what built it can: the
    input, the weight snapshot and the stage's random stream before the pass (dropout's
    masks). A resumed run rebuilds each graph by the same forward pass, bit for bit, leaving
    the module's batch-norm statistics as they were saved (the pass updated them once
    already)."""

    def __init__(self, stages: list[Stage]) -> None:
        self.stages = stages
        self.pending: dict[int, deque[Graph]] = {s.index: deque() for s in stages}
        self.randoms: dict[int, deque[RandomState]] = {s.index: deque() for s in stages}

    def forward(self, stage: Stage, h: torch.Tensor) -> torch.Tensor:
        if stage.delay > 0:  # the last module learns from this pass in the same iteration
            self.randoms[stage.index].append(random_state(h.device.type == "cuda"))
        graph = record(stage, h, snapshot=stage.delay > 0)
        self.pending[stage.index].append(graph)
        return graph.output

    def graph(self, stage: Stage) -> Graph:
        if stage.delay > 0:
            self.randoms[stage.index].popleft()
        return self.pending[stage.index].popleft()

    def stored(self) -> tuple[int, int]:
        graphs = [g for queue in self.pending.values() for g in queue]
        return sum(g.activation_bytes for g in graphs), sum(g.weight_bytes for g in graphs)

    def state_dict(self) -> dict[str, Any]:
        return {
            s: [(g.inputs, g.leaves, r) for g, r in zip(graphs, self.randoms[s], strict=True)]
            for s, graphs in self.pending.items()
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for stage in self.stages:
            self.pending[stage.index].clear()
            self.randoms[stage.index] = deque(r for _, _, r in state[stage.index])
            for h, leaves, randoms in state[stage.index]:
                h = h.to(stage.weights[0].device)
                with kept_buffers(stage.group), drawing_from(randoms):
                    graph = record(stage, h, snapshot=True, leaves=leaves)
                self.pending[stage.index].append(graph)


def fit(params: Mapping[str, Any], trial: Trial, iterations: int | None = None) -> decoupled.Fitted:
    """DDG training for the params' epochs, or only the first ``iterations`` iterations."""
    return decoupled.fit(params, trial, DelayedGradients, iterations)


def _train(params: Values, trial: Trial) -> dict[str, float]:
    return fit(params, trial).metrics()


train = Trainer("ddg", decoupled.PARTS, decoupled.METRICS, _train)
