"""``baseline``: synchronous data-parallel training (gradient all-reduce every step).

The reference every other method is compared against: each rank of the worker trains on its
shard, gradients are averaged over the ranks in one bucket per step, so ``k`` ranks with a
global batch ``B`` follow the same trajectory as one rank with batch ``B`` (up to the order of
floating-point sums). Params: :data:`trainers.framework.DATA_PARALLEL`'s (data, model,
optimizer, schedule, loop, runtime), listed with their defaults in the README.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import torch
from torch import nn

from propagator import Trial

from .checkpointing import Epochs, TrainerState
from .collectives import Collectives
from .data import load_data
from .framework import (
    DATA_PARALLEL,
    METRICS,
    allreduce_gradients,
    batches,
    evaluate,
    finish,
    loss_function,
    make_optimizer,
    make_schedule,
    setup,
    steps_per_epoch,
    sync_parameters,
)
from .models import build_model
from .params import Trainer, Values


class Method(Protocol):
    """What a method built on this loop adds: a hook before every step, its own metrics, and
    its state for a paused training (:class:`trainers.checkpointing.Checkpointed`)."""

    def before_step(self, step: int) -> None: ...

    def metrics(self) -> dict[str, float]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


Attach = Callable[[nn.Module, torch.optim.Optimizer, Collectives, int], Method]


def data_parallel(params: Values, trial: Trial, attach: Attach | None = None) -> dict[str, float]:
    """The data-parallel loop; ``attach(model, optimizer, comm, total_steps)`` builds the
    method (e.g. OIALR) whose hook runs before every step. It ends early, after an epoch, when
    the search says so (:class:`trainers.checkpointing.Epochs`), and a paused training goes on from
    its checkpoint (:class:`trainers.checkpointing.TrainerState`, with the method's state)."""
    ctx = setup(params, trial)
    data = load_data(params, ctx.rank, ctx.size)
    model = build_model(params, data.input_shape, data.n_outputs).to(ctx.device)
    sync_parameters(model, ctx.comm)
    epochs = params["epochs"]
    steps, per_rank = steps_per_epoch(ctx, data, params["batch_size"])
    optimizer = make_optimizer(params, model.parameters())
    schedule = make_schedule(params, optimizer, epochs * steps)
    method = attach(model, optimizer, ctx.comm, epochs * steps) if attach else None
    loss_of = loss_function(data.task)
    state = TrainerState(ctx, model, optimizer, schedule, **({"method": method} if method else {}))
    start = time.perf_counter()
    loop = Epochs(ctx, epochs, state)
    for epoch in loop:
        total = 0.0
        for x, y in batches(data, per_rank, steps, epoch, ctx.seed, params["shuffle"]):
            if method:
                method.before_step(state.t)
            optimizer.zero_grad()
            loss = loss_of(model(x.to(ctx.device)), y.to(ctx.device))
            loss.backward()
            allreduce_gradients(model, ctx.comm)
            optimizer.step()
            schedule.step()
            total += loss.item()
            state.t += 1
        state.train_loss = total / steps
        loop.end(epoch, evaluate(model, data, ctx.device)[0])
    extra = method.metrics() if method else {}
    return finish(ctx, model, data, state.train_loss, time.perf_counter() - start, **extra)


train = Trainer("baseline", DATA_PARALLEL, METRICS, data_parallel)
