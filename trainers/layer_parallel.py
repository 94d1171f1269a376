"""What the layer-parallel trainers share: the model cut into groups and placed on a chain of
the worker's ranks, a layer-serial evaluation through the chain, and their final metrics.

Every rank builds the whole model from the worker's seed (so every group starts as it would in
one process) and keeps only the groups it holds; the inputs of the first group and the labels
of the last are on every rank (the data set is not sharded: every stage works on all samples).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .chain import Chain
from .data import Data
from .framework import METRICS, Context, evaluation_mode, loss_function, metrics
from .models import build_model
from .partition import boundary_shapes, partition

EVAL = "eval"  # the channel of the layer-serial evaluation
# what :func:`finish` returns, besides a trainer's own extra values
LAYER_METRICS = (*METRICS, "bytes_method")


@dataclass
class Split:
    """A model cut into groups on a chain.

    Attributes:
        chain: the stages' placement and messages (one stage per group).
        groups: group ``s`` where this rank holds stage ``s``, else ``None``.
        shapes: per-sample shapes at the boundaries: ``shapes[s]`` enters group ``s``,
            ``shapes[s + 1]`` leaves it.
    """

    chain: Chain
    groups: list[nn.Module | None]
    shapes: list[tuple[int, ...]]

    def held(self) -> list[tuple[int, nn.Module]]:
        """(stage, group) for each group this rank holds, in chain order."""
        return [(s, g) for s, g in enumerate(self.groups) if g is not None]

    def batch_shape(self, stage: int, n: int) -> tuple[int, ...]:
        """Shape of ``n`` samples entering group ``stage``."""
        return (n, *self.shapes[stage])


def split_model(
    ctx: Context,
    params: Mapping[str, Any],
    data: Data,
    channels: Sequence[str],
    default_modules: int = 2,
) -> Split:
    """The model of ``params`` cut by ``split`` / ``modules`` (see :mod:`trainers.partition`) on a
    chain with ``channels`` (plus the evaluation's)."""
    model = build_model(params, data.input_shape, data.n_outputs)
    groups = partition(model, params, default_modules)
    shapes = boundary_shapes(groups, data.input_shape)
    chain = Chain(ctx.comm, len(groups), [*channels, EVAL])
    held: list[nn.Module | None] = [
        g.to(ctx.device) if chain.holds(s) else None for s, g in enumerate(groups)
    ]
    return Split(chain, held, shapes)


@torch.no_grad()
def evaluate(
    split: Split, x: torch.Tensor, y: torch.Tensor, task: str, device: torch.device
) -> tuple[float, float]:
    """(loss, accuracy) of the whole model on ``(x, y)`` by a layer-serial forward pass through
    the chain in evaluation mode; every rank gets them. Accuracy is NaN for regression."""
    chain, loss_of = split.chain, loss_function(task)
    # on the device: the share below may be an NCCL broadcast, which takes no host tensors
    totals = torch.zeros(2, dtype=torch.float64, device=device)
    with evaluation_mode(*(g for _, g in split.held())):
        for i in range(0, len(x), 1024):
            n = min(1024, len(x) - i)
            for s, g in split.held():
                h = x[i : i + n].to(device) if s == 0 else _receive(split, s, n, device)
                out = g(h)
                if s < chain.last:
                    chain.send(EVAL, s, s + 1, out)
                    continue
                target = y[i : i + n].to(device)
                totals[0] += float(loss_of(out, target)) * n
                if task == "classification":
                    totals[1] += float((out.argmax(1) == target).sum())
    totals = chain.share(chain.last, totals) / len(x)
    return float(totals[0]), float(totals[1]) if task == "classification" else math.nan


def _receive(split: Split, stage: int, n: int, device: torch.device) -> torch.Tensor:
    return split.chain.recv(EVAL, stage - 1, stage, split.batch_shape(stage, n), device=device)


def finish(
    ctx: Context,
    split: Split,
    data: Data,
    train_loss: float,
    seconds: float,
    **extra: float,
) -> dict[str, float]:
    """The metrics every trainer returns, for a model spread over the chain, and
    ``bytes_method``: the bytes this rank sent for the method itself (``bytes_sent`` without
    the layer-serial evaluations)."""
    from mpi4py import MPI

    method = sum(n for channel, n in split.chain.bytes_by_channel.items() if channel != EVAL)
    extra = {"bytes_method": float(method), **extra}
    validation = evaluate(split, data.x_val, data.y_val, data.task, ctx.device)
    own = [p for _, g in split.held() for p in g.parameters()]
    counts = (sum(p.numel() for p in own), sum(p.numel() for p in own if p.requires_grad))
    total, trainable = (int(c) for c in ctx.trial.comm.allreduce(np.array(counts), op=MPI.SUM))
    return metrics(ctx, validation, train_loss, seconds, (total, trainable), **extra)
