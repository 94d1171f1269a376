"""What the layer-parallel trainers share: the model cut into groups and placed on a chain of
the worker's ranks, a layer-serial evaluation through the chain, their final metrics, random
streams per stage, and what a rank saves when the search pauses a training (:class:`RankState`).

Every rank builds the whole model from the worker's seed (so every group starts as it would in
one process) and keeps only the groups it holds; the inputs of the first group and the labels
of the last are on every rank (the data set is not sharded: every stage works on all samples).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from .chain import Chain
from .checkpointing import load_part
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


class Stateful(Protocol):
    """A module, optimizer or schedule: anything with a state dict."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


class RankState:
    """What a layer-parallel trainer checkpoints on one rank when the search pauses it (a
    :class:`trainers.checkpointing.Checkpointed` for :class:`trainers.checkpointing.Epochs`).

    Each rank saves its own shard: the state dicts of the groups it holds and of ``parts``
    (their optimizers, schedules, ...), the method's ``values`` (tensors, counters, generator
    states: whatever ``get`` gives, ``put`` takes back) and the bytes sent so far, which enter
    the metrics. A rank that holds no stage saves only its counters. A pause comes at the end
    of an epoch, when every message of the chain has been received (the trainers flush and
    meet there), so nothing in flight needs saving.

    Optimizers and schedules among the parts go on with the hyperparameters of the params the
    training resumes with (:func:`trainers.checkpointing.load_part`), so each optimizer must come
    before its schedule in ``parts``.

    The bytes are restored as absolute counts, over whatever the trainer's set-up sent again
    while it was rebuilt (MAC's and AuxNet's initial passes): the resumed run counts as the
    uninterrupted one.
    """

    def __init__(
        self,
        ctx: Context,
        split: Split,
        parts: Mapping[str, Stateful],
        get: Callable[[], dict[str, Any]],
        put: Callable[[Mapping[str, Any]], None],
    ) -> None:
        self._ctx, self._split, self._get, self._put = ctx, split, get, put
        self._parts = {f"group{s}": g for s, g in split.held()} | dict(parts)

    def state_dict(self) -> dict[str, Any]:
        return {
            "parts": {name: part.state_dict() for name, part in self._parts.items()},
            "values": self._get(),
            "bytes_sent": self._ctx.comm.bytes_sent,
            "bytes_by_channel": dict(self._split.chain.bytes_by_channel),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for name, part in self._parts.items():
            load_part(part, state["parts"][name])
        self._put(state["values"])
        self._ctx.comm.bytes_sent = state["bytes_sent"]
        self._split.chain.bytes_by_channel.update(state["bytes_by_channel"])


def on_device(tensor: torch.Tensor | None, device: torch.device) -> torch.Tensor | None:
    """A restored tensor moved to the trainer's device (``None`` stays ``None``)."""
    return None if tensor is None else tensor.to(device)


RandomState = tuple[torch.Tensor, torch.Tensor | None]  # torch's CPU and CUDA generators


def random_state(cuda: bool) -> RandomState:
    """The state of torch's default generators (the CUDA one's on the current device)."""
    return torch.get_rng_state(), torch.cuda.get_rng_state() if cuda else None


def set_random_state(state: RandomState) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1])


@contextmanager
def drawing_from(state: RandomState) -> Iterator[None]:
    """Draw random numbers from ``state`` inside, from where they were outside afterwards."""
    outer = random_state(state[1] is not None)
    set_random_state(state)
    try:
        yield
    finally:
        set_random_state(outer)


class Streams:
    """One torch random stream per stage, so that where the stages sit does not change the
    numbers: stage 0 continues the stream left after building the model (as one process
    training the whole model would), stage ``s > 0`` starts from a seed of its own."""

    def __init__(self, stages: list[int], seed: int, device: torch.device) -> None:
        self._cuda = device.type == "cuda"
        first = random_state(self._cuda)
        self._states = {}
        for s in stages:
            if s > 0:
                torch.manual_seed(int(np.random.SeedSequence([seed, s]).generate_state(1)[0]))
            self._states[s] = first if s == 0 else random_state(self._cuda)
        set_random_state(first)

    @contextmanager
    def of(self, stage: int) -> Iterator[None]:
        outer = random_state(self._cuda)
        set_random_state(self._states[stage])
        try:
            yield
        finally:
            self._states[stage] = random_state(self._cuda)
            set_random_state(outer)

    def state_dict(self) -> dict[str, Any]:
        return {"states": dict(self._states)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._states = dict(state["states"])


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
