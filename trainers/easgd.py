"""``easgd``: Elastic Averaging SGD, EAMSGD and DOWNPOUR on a worker's ranks (Zhang's thesis,
see ``reference/methods/easgd.md``).

Each of the worker's ``p`` ranks keeps a local model ``x^i``; a centre variable ``x̃`` is the
model that is evaluated. Every ``tau`` local steps a rank exchanges with the centre:

* EASGD (Alg. 1, Eq. 2.3-2.4): ``d = alpha (x^i - x̃)``; ``x^i -= d``; the centre moves by
  ``+d`` for every rank (with ``beta = p alpha``: ``x̃ <- (1 - beta) x̃ + beta mean_i x^i``).
* EAMSGD (Alg. 2): EASGD with Nesterov momentum ``delta`` on the ranks only (never on x̃).
* DOWNPOUR (Alg. 3): the rank pushes its accumulated update ``v`` (``x̃ += v``), pulls
  ``x^i <- x̃`` and resets ``v``.

``variant: sync`` keeps a copy of x̃ on every rank and exchanges with one all-reduce (the
Jacobi form: all ranks use the same x̃_t). ``variant: async`` keeps x̃ in an MPI window on the
worker's rank 0 that ranks read and add to with one-sided operations whenever their own period
ends (Algorithm 1's master, without a master process).

Choices where the thesis leaves room, and why:
* Every rank samples the whole training set (the thesis's assumption, §1) with its own
  shuffling, rather than a shard.
* ``alpha`` defaults to ``beta / p`` with ``beta = 0.9`` (every run of Ch. 4); an explicit
  ``alpha`` wins and ``beta`` is then ``p alpha``.
* With one rank (p = 1) the centre is an exponential moving average of the iterates with
  weight ``alpha`` (MVASGD with a tether): what Eq. 2.4 reduces to.
* Bytes sent: sync counts the all-reduced vector; async counts the difference (or DOWNPOUR's
  update) added to x̃; the read of x̃ moves as much again the other way.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch.nn.utils import parameters_to_vector

from propagator import ConfigError, Trial

from .checkpointing import Attributes, Epochs, TrainerState
from .data import DATA, Data, load_data
from .framework import (
    LOOP,
    METRICS,
    OPTIMIZER,
    RUNTIME,
    SCHEDULE,
    Context,
    evaluate,
    finish,
    loss_function,
    make_schedule,
    setup,
    sync_parameters,
)
from .models import MODEL, build_model
from .params import Table, Trainer, Values, choice, integer, real

METHODS = ("easgd", "eamsgd", "downpour")
EASGD = Table(
    "easgd",
    (
        choice("method", "easgd", "EASGD (Alg. 1), EAMSGD (Alg. 2) or DOWNPOUR (Alg. 3)", METHODS),
        choice(
            "variant",
            "sync",
            "sync: all-reduce; async: the centre in an MPI window",
            ("sync", "async"),
        ),
        real(
            "alpha",
            None,
            "elastic weight α (wins over beta)",
            "[0, 1]",
            derived="beta / ranks",
        ),
        real("beta", 0.9, "β = ranks × α, the centre's total elastic weight", ">= 0"),
        integer(
            "tau",
            None,
            "local steps between exchanges with the centre",
            ">= 1",
            derived="1 for downpour, else 10",
        ),
        real(
            "delta",
            None,
            "eamsgd: Nesterov momentum of the ranks (never of the centre)",
            "[0, 1)",
            derived="0.99 for eamsgd, else 0",
        ),
    ),
).mark_structural("method")
PARTS = (
    DATA,
    MODEL,
    OPTIMIZER.pick("lr", "weight_decay"),
    SCHEDULE,
    LOOP.pick("epochs", "batch_size").replace(
        "batch_size", doc="samples per step of each rank (each samples the whole set)"
    ),
    RUNTIME,
    EASGD,
)


class SyncCentre:
    """x̃ replicated on every rank, updated from an all-reduce of the ranks' contributions."""

    def __init__(self, ctx: Context, x: torch.Tensor) -> None:
        self.ctx = ctx
        self.value = x.clone()

    def elastic(self, x: torch.Tensor, alpha: float) -> torch.Tensor:
        """EASGD exchange: returns ``d = alpha (x - x̃_t)``; x̃ moves by the sum of all d."""
        d = alpha * (x - self.value)
        self.value += self.ctx.comm.allreduce_(d.clone(), average=False)
        return d

    def push_pull(self, v: torch.Tensor) -> torch.Tensor:
        """DOWNPOUR exchange: x̃ += sum of the ranks' v; returns the new x̃."""
        self.value += self.ctx.comm.allreduce_(v.clone(), average=False)
        return self.value.clone()

    def read(self) -> torch.Tensor:
        return self.value.clone()

    def close(self) -> None:
        return None

    def state_dict(self) -> dict[str, Any]:
        return {"value": self.value}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.value.copy_(state["value"])


class AsyncCentre:
    """x̃ in an MPI window on the worker's rank 0 (host memory); ranks read it and add to it
    one-sidedly. Values cross to and from the model's device."""

    def __init__(self, ctx: Context, x: torch.Tensor) -> None:
        from mpi4py import MPI

        self.ctx = ctx
        comm = ctx.trial.comm
        n = x.numel()
        self._win = MPI.Win.Allocate(4 * n if comm.rank == 0 else 0, 4, comm=comm)
        if comm.rank == 0:
            np.frombuffer(self._win.tomemory(), dtype=np.float32)[:] = x.detach().cpu().numpy()
        comm.Barrier()
        self._win.Lock_all()
        self._buf = np.zeros(n, dtype=np.float32)

    def read(self) -> torch.Tensor:
        from mpi4py import MPI

        # Not Get: a Get that overlaps other ranks' Accumulate into x̃ is undefined in MPI,
        # while accumulate operations (NO_OP reads) are atomic with respect to each other.
        # NO_OP ignores the origin buffer, so the target gives the count.
        n = len(self._buf)
        self._win.Get_accumulate([None, MPI.FLOAT], self._buf, 0, (0, n, MPI.FLOAT), MPI.NO_OP)
        self._win.Flush(0)
        return torch.from_numpy(self._buf.copy()).to(self.ctx.device)

    def _add(self, delta: torch.Tensor) -> None:
        from mpi4py import MPI

        self._win.Accumulate(delta.detach().cpu().numpy(), 0, op=MPI.SUM)
        self._win.Flush(0)
        self.ctx.comm.bytes_sent += delta.numel() * 4

    def elastic(self, x: torch.Tensor, alpha: float) -> torch.Tensor:
        d = alpha * (x - self.read())
        self._add(d)
        return d

    def push_pull(self, v: torch.Tensor) -> torch.Tensor:
        self._add(v)
        return self.read()

    def state_dict(self) -> dict[str, Any]:
        """x̃ once every rank has made its last exchange before the pause (read on every rank,
        kept from rank 0's window)."""
        self.ctx.trial.comm.Barrier()
        return {"value": self.read()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Rank 0 puts the saved x̃ in its window before any rank reads it."""
        from mpi4py import MPI

        if self.ctx.trial.comm.rank == 0:
            value = state["value"].detach().cpu().numpy()
            self._win.Accumulate(value, 0, op=MPI.REPLACE)
            self._win.Flush(0)
        self.ctx.trial.comm.Barrier()

    def close(self) -> None:
        self._win.Unlock_all()
        self.ctx.trial.comm.Barrier()
        self._win.Free()


@dataclass(frozen=True)
class Settings:
    """The method's knobs: ``alpha`` (elastic weight), ``tau`` (steps between exchanges),
    ``delta`` (worker momentum)."""

    method: str
    variant: str
    alpha: float
    tau: int
    delta: float

    @property
    def elastic(self) -> bool:
        return self.method != "downpour"


def settings(params: Mapping[str, Any], p: int) -> Settings:
    """The knobs of :data:`EASGD` for ``p`` ranks; raises ConfigError naming a bad one."""
    v = EASGD.read(params)
    method = v["method"]
    alpha = v["alpha"] if v["alpha"] is not None else v["beta"] / p
    tau = v["tau"] if v["tau"] is not None else (1 if method == "downpour" else 10)
    delta = v["delta"] if v["delta"] is not None else (0.99 if method == "eamsgd" else 0.0)
    if method != "eamsgd" and delta > 0:
        raise ConfigError(f"delta (Nesterov momentum) belongs to eamsgd, not {method}")
    return Settings(method, v["variant"], alpha, tau, delta)


def rank_batches(
    data: Data, batch: int, epoch: int, seed: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Minibatches sampled from the whole training set in this rank's own order."""
    generator = torch.Generator().manual_seed(seed * 7919 + epoch)
    order = torch.randperm(len(data.x_train), generator=generator)
    for i in range(len(order) // batch):
        idx = order[i * batch : (i + 1) * batch]
        yield data.x_train[idx], data.y_train[idx]


def _train(params: Values, trial: Trial) -> dict[str, float]:
    ctx = setup(params, trial)
    s = settings(params, ctx.size)
    data = load_data(params)  # every rank samples the whole set (see the module docstring)
    model = build_model(params, data.input_shape, data.n_outputs).to(ctx.device)
    sync_parameters(model, ctx.comm)  # all ranks share the initialisation (thesis §4)
    weights = list(model.parameters())
    centre = (SyncCentre if s.variant == "sync" else AsyncCentre)(ctx, _vector(weights))
    epochs, batch = params["epochs"], params["batch_size"]
    if batch > len(data.x_train):
        raise ConfigError(f"batch_size must be in [1, {len(data.x_train)}], got {batch}")
    steps = len(data.x_train) // batch
    optimizer = torch.optim.SGD(
        weights,
        params["lr"],
        momentum=s.delta,
        nesterov=s.delta > 0,
        weight_decay=params["weight_decay"],
    )
    schedule = make_schedule(params, optimizer, epochs * steps)
    loss_of = loss_function(data.task)
    # DOWNPOUR: x^i - pulled is the accumulated update v^i
    local = SimpleNamespace(pulled=_vector(weights))
    state = TrainerState(
        ctx, model, optimizer, schedule, centre=centre, local=Attributes(local, "pulled")
    )
    start = time.perf_counter()
    loop = Epochs(ctx, epochs, state)
    for epoch in loop:
        total = 0.0
        for xb, yb in rank_batches(data, batch, epoch, ctx.seed + 1000 * ctx.rank):
            exchange = state.t % s.tau == 0
            if exchange and not s.elastic:
                local.pulled = centre.push_pull(_vector(weights) - local.pulled)
                _assign(local.pulled, weights)
            optimizer.zero_grad()
            loss = loss_of(model(xb.to(ctx.device)), yb.to(ctx.device))
            loss.backward()
            # Eq. 2.3: the gradient and the elastic force both act at x_t (Jacobi form)
            d = centre.elastic(_vector(weights), s.alpha) if exchange and s.elastic else None
            optimizer.step()
            if d is not None:
                _assign(_vector(weights) - d, weights)
            schedule.step()
            total += loss.item()
            state.t += 1
        state.train_loss = total / steps
        loop.end(epoch, _centre_loss(model, weights, centre, data, ctx))
    local_loss, _ = evaluate(model, data, ctx.device)
    _assign(centre.read(), weights)
    centre.close()
    seconds = time.perf_counter() - start
    return finish(ctx, model, data, state.train_loss, seconds, local_val_loss=local_loss)


def _vector(weights: list[torch.Tensor]) -> torch.Tensor:
    return parameters_to_vector(weights).detach()


def _assign(vector: torch.Tensor, weights: list[torch.Tensor]) -> None:
    """Copy ``vector`` into the weights' own memory (torch's ``vector_to_parameters`` would make
    the weights views of ``vector``, so later steps would change it behind our back)."""
    offset = 0
    with torch.no_grad():
        for w in weights:
            w.copy_(vector[offset : offset + w.numel()].view_as(w))
            offset += w.numel()


def _centre_loss(model: Any, weights: list, centre: Any, data: Data, ctx: Context) -> float:
    """Validation loss of x̃ (the model EASGD produces), leaving the local weights as they were."""
    local = _vector(weights).clone()
    _assign(centre.read(), weights)
    loss = evaluate(model, data, ctx.device)[0]
    _assign(local, weights)
    return loss


train = Trainer("easgd", PARTS, (*METRICS, "local_val_loss"), _train)
