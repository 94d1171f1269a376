"""``fr``: features replay (Huo's thesis, Ch. 6, Alg. 11).

The model is cut into K modules (``modules``, default 2, or ``split``) on a chain of the
worker's ranks (:mod:`trainers.decoupled` runs the loop). Iteration t:

* Play: a sequential forward pass of sample t with the current weights and no graph; module k
  (0-based) stores its input.
* Replay: module k recomputes its output from the input it stored D_k = K-1-k iterations ago
  (sample t-D_k) with its *current* weights w^t, backpropagates the error gradient δ that
  module k+1 sent at iteration t-1 for that same sample (Eq. 6.7), updates, and sends the
  gradient w.r.t. that input to module k-1. The last module (D = 0) uses the real loss of the
  current sample. A module does not update until its first δ has arrived (t < D_k).

Params: :data:`trainers.decoupled.PARTS`, with defaults and ranges in the README (the thesis's
FR runs used SGD with momentum 0.9). Metrics: see :mod:`trainers.decoupled` (``stored_weights``
is 0: FR keeps no weight copies).

Choices where the thesis is ambiguous:

* Iterations t < D_k: Alg. 11 replays a zero input (h^{t+k-K} = 0) with a δ that does not exist
  yet; here the module simply skips its update until the first δ arrives, as DDG does.
* History: module k keeps D_k + 1 inputs (the thesis's K - k + 1, 1-based), the oldest is
  dropped once replayed; the last module's replay is its play (same input, same weights), so
  it runs its forward once, with the graph.
* BatchNorm: running statistics are updated once per sample, in the play pass. The replay
  runs in training mode (batch statistics, as the thesis's PyTorch code would), and the
  module's buffers are saved before and restored after it, so the second pass over the same
  sample leaves them untouched.
* Dropout draws a fresh mask in the replay (the stage's own random stream): the replay is a
  second forward pass, not a copy of the first.
* The sufficient-direction constant σ (§6.5.2) is not computed: it needs a full
  backpropagation through the chain at every measured step, i.e. the backward locking FR
  removes and extra traffic in ``bytes_sent``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

import torch

from propagator import Trial

from . import decoupled
from .decoupled import Graph, Stage, kept_buffers, record
from .params import Trainer, Values


class FeaturesReplay:
    """FR's part of the loop: each module keeps its inputs until it replays them; the last
    keeps its (only) forward pass's graph until its backward in the same iteration."""

    def __init__(self, stages: list[Stage]) -> None:
        self.stages = stages
        self.history: dict[int, deque[torch.Tensor]] = {s.index: deque() for s in stages}
        self.current: dict[int, Graph] = {}

    def forward(self, stage: Stage, h: torch.Tensor) -> torch.Tensor:
        if stage.delay == 0:
            self.current[stage.index] = record(stage, h, snapshot=False)
            return self.current[stage.index].output
        self.history[stage.index].append(h)
        with torch.no_grad():
            return stage.group(h)

    def graph(self, stage: Stage) -> Graph:
        if stage.delay == 0:
            return self.current.pop(stage.index)
        history = self.history[stage.index]
        assert len(history) == stage.delay + 1, "replay of a sample that was never played"
        with kept_buffers(stage.group):
            return record(stage, history.popleft(), snapshot=False)

    def stored(self) -> tuple[int, int]:
        inputs = sum(h.numel() * h.element_size() for q in self.history.values() for h in q)
        return inputs + sum(g.activation_bytes for g in self.current.values()), 0

    def state_dict(self) -> dict[str, Any]:
        # the last module's graph lives within an iteration: none is kept at a pause
        return {s: list(history) for s, history in self.history.items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for stage in self.stages:
            device = stage.weights[0].device
            self.history[stage.index] = deque(h.to(device) for h in state[stage.index])


def fit(params: Mapping[str, Any], trial: Trial, iterations: int | None = None) -> decoupled.Fitted:
    """FR training for the params' epochs, or only the first ``iterations`` iterations."""
    return decoupled.fit(params, trial, FeaturesReplay, iterations)


def _train(params: Values, trial: Trial) -> dict[str, float]:
    return fit(params, trial).metrics()


train = Trainer("fr", decoupled.PARTS, decoupled.METRICS, _train)
