"""``ab``: AB training (Coquelin's thesis, Ch. 5; ``reference/methods/daso_oialr_ab_propulate.md``
§3).

The loop of Algorithm 2 on a worker's ranks:

1. Full-rank data-parallel warm-up (gradients averaged over all ranks every step, as in
   :mod:`trainers.baseline`).
2. Repeat until the step budget is spent:

   * every eligible weight ``W`` (``m x n``, trailing dims flattened) becomes ``A B`` with
     ``A = U_k S_k^1/2`` and ``B = S_k^1/2 V_k^T`` (Eq. 5.3), ``k`` the number of singular values
     above ``ab_cutoff`` times the largest (Eq. 5.4);
   * the ranks split into groups (``trial.comm.Split``); the first half of the groups train A
     with B frozen, the others B with A frozen, each group on its own ranks' data shards with
     gradients averaged inside the group only;
   * after the independent phase A and B are averaged separately over all ranks and
     ``W <- A B`` (Eq. 5.8, :func:`ab_merge`);
   * full-rank data-parallel rebound steps.

   The optimizer state is reset at every change of shape, and the learning rate rebounds:
   it drops to ``1/L`` of its scheduled value and climbs back linearly over ``L`` steps.

Params (:data:`AB`, besides the baseline's data, model, optimizer, schedule, loop and runtime;
defaults and ranges in the README): ``ab_warmup`` (full-rank warm-up, §5.3.3 guideline),
``ab_steps`` (each independent phase, ``numABSteps``; at least one step), ``ab_rebound``
(``fullRankReboundSteps``), ``ab_lr_rebound`` (0 turns it off) are fractions, the first two of
all steps, the others of the independent phase; ``ab_cutoff`` is ``sigmaCutoff`` of Eq. 5.4
(Table A.6); ``ab_group_size`` ranks per independent group must divide the worker's ranks;
``ab_full_rank_first`` and ``ab_full_rank_last`` keep the first and last eligible layers
full-rank (Table A.6: "input and output layers stay full-rank").

Metrics besides :func:`trainers.framework.finish`'s: ``bytes_full_rank`` (the initial
broadcast and the gradient all-reduces of the full-rank phases), ``bytes_merge`` (the A/B
averages and the rank agreements), ``bytes_group`` (gradients inside groups),
``comm_reduction`` (``1 - bytes_sent / bytes`` a baseline run of the same steps sends),
``compression`` (full-rank parameters over those of the last AB representation), ``ab_merges``
and ``full_rank_steps``.

Choices where the reference leaves room, and why:

* Phase lengths are fractions of the run (the §5.3.3 guidelines' form), so one setting fits
  any ``epochs`` and ``batch_size``; Tables A.7-A.9 give absolute steps that do not follow the
  guidelines, and the search space covers their spread.
* Groups: Algorithm 2 assigns ``workerId <= worldSize/2`` (1-based) to A, so with ``g``
  groups the first ``g // 2`` train A; an odd count gives one more B group. The thesis ran
  groups of 4 GPUs on 16-128 GPUs (Table A.6); a worker here has 2-4 ranks, so the default
  is one rank per group, which is exactly Eq. 5.8's example on 4 ranks.
* One group (one rank, or ``ab_group_size`` equal to the worker's ranks) cannot split: it runs
  the thesis's "AB - No Groups" variant (B trained with data parallelism, A frozen).
* Biases and full-rank layers train in every group during the independent phase and are
  averaged with A and B in the same all-reduce (as are float buffers such as BatchNorm's
  running statistics); the thesis does not say what happens to them.
* All optimizer state is reset at every switch, not only that of reshaped tensors: after an
  independent phase the state of the other parameters differs between ranks and would make
  the data-parallel replicas drift apart.
* Algorithm 2 transposes ``W`` when ``n > m`` before the SVD; the reduced SVD gives the same
  factors either way, so there is no transpose here.
* The ranks agree on ``k`` (minimum over ranks, 8 bytes per layer): their weights are equal
  after data-parallel steps, but the all-reduces that follow must have equal sizes even if
  an SVD rounds differently.
* A run that ends inside an independent phase merges at its last step, so the final model is
  the average one; so does a run the search stops early (after an epoch) inside one.
  Intermediate reports during an independent phase are of the model of the worker's rank 0
  (an A group), so there the final ``val_loss`` of a stopped run differs from its last
  report.
* Attention projections inside ``nn.MultiheadAttention`` stay full-rank: that module reads
  their weights directly rather than calling them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from propagator import ConfigError, Trial

from .checkpointing import Attributes, Epochs, TrainerState
from .collectives import Collectives, MPICollectives
from .data import load_data
from .framework import (
    DATA_PARALLEL,
    METRICS,
    Context,
    allreduce_gradients,
    average_gradients_on_host,
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
from .params import Table, Trainer, Values, flag, integer, real

if TYPE_CHECKING:
    from mpi4py import MPI

AB = Table(
    "ab",
    (
        real("ab_warmup", 0.2, "full-rank warm-up, a fraction of all steps", "[0, 1]"),
        real("ab_steps", 0.0333, "each independent phase, a fraction of all steps", "(0, 1]"),
        real("ab_rebound", 0.25, "full-rank rebound, a fraction of the independent phase", ">= 0"),
        real(
            "ab_lr_rebound",
            0.5,
            "LR rebound, a fraction of the independent phase (0: off)",
            ">= 0",
        ),
        real("ab_cutoff", 0.15, "σ cutoff of Eq. 5.4, a fraction of the largest", "[0, 1)"),
        integer("ab_group_size", 1, "ranks per independent group (divides the worker's)", ">= 1"),
        flag("ab_full_rank_first", True, "keep the first eligible layer full-rank"),
        flag("ab_full_rank_last", True, "keep the last eligible layer full-rank"),
    ),
).mark_structural("ab_group_size", "ab_full_rank_first", "ab_full_rank_last")
LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
Slot = tuple[nn.Module, str]  # (parent module, child name) of an eligible layer


@dataclass(frozen=True)
class Plan:
    """Phase lengths in steps; ``phase(t)`` says where step ``t`` (from 0) falls."""

    total: int
    warmup: int
    ab_steps: int
    rebound: int
    lr_rebound: int

    def phase(self, t: int) -> tuple[str, int]:
        """(``"warmup"``, ``"ab"`` or ``"rebound"``, steps since that phase began)."""
        if t < self.warmup:
            return "warmup", t
        r = (t - self.warmup) % (self.ab_steps + self.rebound)
        return ("ab", r) if r < self.ab_steps else ("rebound", r - self.ab_steps)

    def ends_ab(self, t: int) -> bool:
        stage, since = self.phase(t)
        return stage == "ab" and (since == self.ab_steps - 1 or t == self.total - 1)

    def lr_factor(self, t: int) -> float:
        """The LR rebound: ``(i + 1) / L`` on the ``i``-th step after a switch of shape."""
        stage, since = self.phase(t)
        if stage == "warmup" or self.lr_rebound == 0:
            return 1.0
        return min(1.0, (since + 1) / self.lr_rebound)


def make_plan(params: Mapping[str, Any], total: int) -> Plan:
    """The phases of a run of ``total`` steps from :data:`AB`'s fractions."""
    p = AB.read(params)
    n = max(1, round(p["ab_steps"] * total))
    return Plan(
        total,
        round(p["ab_warmup"] * total),
        n,
        round(p["ab_rebound"] * n),
        round(p["ab_lr_rebound"] * n),
    )


@dataclass(frozen=True)
class Settings:
    cutoff: float
    group_size: int
    full_rank_first: bool
    full_rank_last: bool


def make_settings(params: Mapping[str, Any], ranks: int) -> Settings:
    """:data:`AB`'s settings for a worker of ``ranks`` ranks."""
    p = AB.read(params)
    if ranks % p["ab_group_size"]:
        raise ConfigError(
            f"ab_group_size must be a positive divisor of the worker's {ranks} ranks, "
            f"got {p['ab_group_size']}"
        )
    return Settings(
        p["ab_cutoff"], p["ab_group_size"], p["ab_full_rank_first"], p["ab_full_rank_last"]
    )


# --- the AB representation (Eq. 5.3-5.4, 5.8) ------------------------------------------------


def inner_rank(singular_values: torch.Tensor, cutoff: float) -> int:
    """Eq. 5.4: how many singular values (sorted, largest first) exceed ``cutoff`` times the
    largest; at least one."""
    return max(1, int((singular_values > singular_values[0] * cutoff).sum()))


def ab_factors(
    svd: tuple[torch.Tensor, torch.Tensor, torch.Tensor], k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 5.3: ``A = U_k S_k^1/2``, ``B = S_k^1/2 V_k^T`` from ``(U, S, V^T)``."""
    u, s, vh = svd
    root = s[:k].sqrt()
    return u[:, :k] * root, root[:, None] * vh[:k]


def ab_decomposition(w: torch.Tensor, cutoff: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``W ~ A B`` for a weight of any shape (trailing dims flattened), truncated by Eq. 5.4."""
    svd = torch.linalg.svd(w.reshape(w.shape[0], -1), full_matrices=False)
    return ab_factors(svd, inner_rank(svd[1], cutoff))


def ab_merge(a_factors: Sequence[torch.Tensor], b_factors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Eq. 5.8: the workers' A and B averaged separately, then multiplied: ``W = mean(A) mean(B)``
    (not the mean of the products, Eq. 5.7)."""
    return torch.stack(list(a_factors)).mean(0) @ torch.stack(list(b_factors)).mean(0)


class LowRank(nn.Module):
    """A linear or convolutional layer whose weight is the product ``a @ b``."""

    def __init__(self, layer: nn.Module, a: torch.Tensor, b: torch.Tensor) -> None:
        super().__init__()
        self.shape = layer.weight.shape
        del layer.weight  # the factors replace it, also in model.parameters()
        self.layer = layer
        self.a, self.b = nn.Parameter(a.contiguous()), nn.Parameter(b.contiguous())

    def weight(self) -> torch.Tensor:
        return (self.a @ self.b).reshape(self.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.layer, nn.Linear):
            return F.linear(x, self.weight(), self.layer.bias)
        return self.layer._conv_forward(x, self.weight(), self.layer.bias)

    def full_rank(self) -> nn.Module:
        """The layer with ``W = a @ b`` as a plain weight again."""
        self.layer.weight = nn.Parameter(self.weight().detach().clone())
        return self.layer


def eligible_layers(model: nn.Module, full_rank_first: bool, full_rank_last: bool) -> list[Slot]:
    """The layers that get an AB representation, in the model's order."""
    slots = [
        (parent, name)
        for parent in model.modules()
        if not isinstance(parent, nn.MultiheadAttention)
        for name, child in parent.named_children()
        if isinstance(child, LAYERS)
    ]
    return slots[int(full_rank_first) : len(slots) - int(full_rank_last)]


def to_low_rank(slots: list[Slot], cutoff: float, train_a: bool, comm: MPI.Comm) -> int:
    """Replace every slot's layer by its AB form, with only A (``train_a``) or only B trainable.
    Returns the bytes sent to agree on the ranks."""
    from mpi4py import MPI

    weights = [getattr(parent, name).weight.detach() for parent, name in slots]
    svds = [torch.linalg.svd(w.reshape(len(w), -1), full_matrices=False) for w in weights]
    ks = np.array([inner_rank(s, cutoff) for _, s, _ in svds], dtype=np.int64)
    sent = 0
    if comm.size > 1 and len(ks):
        comm.Allreduce(MPI.IN_PLACE, ks, op=MPI.MIN)
        sent = ks.nbytes
    for (parent, name), svd, k in zip(slots, svds, ks, strict=True):
        low = LowRank(getattr(parent, name), *ab_factors(svd, int(k)))
        low.a.requires_grad_(train_a)
        low.b.requires_grad_(not train_a)
        setattr(parent, name, low)
    return sent


def merge_groups(model: nn.Module, comm: Collectives) -> int:
    """Average A and B separately over all ranks (Eq. 5.8), with every other parameter and
    float buffer, in one all-reduce. Returns the bytes sent."""
    tensors = [t.data for t in model.parameters()]
    tensors += [b for b in model.buffers() if b.is_floating_point()]
    flat = torch.cat([t.reshape(-1) for t in tensors])
    before = comm.bytes_sent
    comm.allreduce_(flat)
    offset = 0
    for t in tensors:
        t.copy_(flat[offset : offset + t.numel()].view_as(t))
        offset += t.numel()
    return comm.bytes_sent - before


def to_full_rank(slots: list[Slot]) -> None:
    """``W <- A B`` in every slot (after :func:`merge_groups`, ``mean(A) mean(B)``)."""
    for parent, name in slots:
        setattr(parent, name, getattr(parent, name).full_rank())


# --- training ---------------------------------------------------------------------------------


class Layers:
    """The eligible layers' form, checkpointed: each slot's factor shapes in its AB form, else
    ``None``. Loading rebuilds the AB forms (the values are loaded next) and, after a merge,
    registers each plain weight after its bias as :meth:`LowRank.full_rank` does: parameters in
    the uninterrupted run's order keep its flat all-reduces' sums bit for bit on any ranks."""

    def __init__(self, slots: list[Slot], groups: Groups, tally: Tally) -> None:
        self.slots, self.groups, self.tally = slots, groups, tally

    def state_dict(self) -> dict[str, Any]:
        layers = [getattr(parent, name) for parent, name in self.slots]
        shapes = [
            (tuple(x.a.shape), tuple(x.b.shape)) if isinstance(x, LowRank) else None for x in layers
        ]
        return {"shapes": shapes}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for (parent, name), shapes in zip(self.slots, state["shapes"], strict=True):
            layer = getattr(parent, name)
            if shapes is not None:
                weight = layer.weight.detach()
                low = LowRank(layer, weight.new_zeros(shapes[0]), weight.new_zeros(shapes[1]))
                low.a.requires_grad_(self.groups.train_a)
                low.b.requires_grad_(not self.groups.train_a)
                setattr(parent, name, low)
            elif self.tally.merges:
                weight = layer.weight
                del layer.weight
                layer.weight = weight


def reset_optimizer(optimizer: torch.optim.Optimizer, model: nn.Module) -> None:
    """Train the model's trainable parameters from a fresh optimizer state (shapes changed)."""
    optimizer.state.clear()
    optimizer.param_groups[0]["params"] = [p for p in model.parameters() if p.requires_grad]


@dataclass
class Groups:
    """The rank's independent group: its collectives, whether it trains A, and whether there
    are other groups to merge with (one group runs "AB - No Groups": B by data parallelism)."""

    comm: MPICollectives
    train_a: bool
    independent: bool

    @classmethod
    def split(cls, ctx: Context, group_size: int) -> Groups:
        count, index = ctx.size // group_size, ctx.rank // group_size
        if count == 1:
            return cls(MPICollectives(ctx.trial.comm), False, False)
        return cls(MPICollectives(ctx.trial.comm.Split(index, ctx.rank)), index < count // 2, True)

    def close(self) -> None:
        if self.independent:
            self.comm.comm.Free()


@dataclass
class Tally:
    """What the run did, for the metrics."""

    merge_bytes: int = 0
    merges: int = 0
    full_rank_steps: int = 0
    low_rank_size: int = 0  # parameters of the last AB representation


def _train(params: Values, trial: Trial) -> dict[str, float]:
    ctx = setup(params, trial)
    settings = make_settings(params, ctx.size)
    data = load_data(params, ctx.rank, ctx.size)
    model = build_model(params, data.input_shape, data.n_outputs).to(ctx.device)
    sync_parameters(model, ctx.comm)
    slots = eligible_layers(model, settings.full_rank_first, settings.full_rank_last)
    epochs = params["epochs"]
    steps, per_rank = steps_per_epoch(ctx, data, params["batch_size"])
    plan = make_plan(params, epochs * steps)
    groups = Groups.split(ctx, settings.group_size)
    optimizer = make_optimizer(params, model.parameters())
    schedule = make_schedule(params, optimizer, plan.total)
    loss_of = loss_function(data.task)
    tally = Tally(low_rank_size=sum(p.numel() for p in model.parameters()))
    state = TrainerState(
        ctx,
        model,
        optimizer,
        schedule,
        tally=Attributes(tally, *vars(tally)),  # before the layers: they read the merges
        layers=Layers(slots, groups, tally),
        group=Attributes(groups.comm, "bytes_sent"),
    )
    start = time.perf_counter()
    loop = Epochs(ctx, epochs, state)
    for epoch in loop:
        total = 0.0
        for x, y in batches(data, per_rank, steps, epoch, ctx.seed, params["shuffle"]):
            t = state.t
            stage, since = plan.phase(t)
            # the layers' form is the plan's, unless a resumed training's phases moved
            if slots and isinstance(getattr(*slots[0]), LowRank) != (stage == "ab" and since > 0):
                raise ConfigError(
                    "parameters 'ab_warmup', 'ab_steps' and 'ab_rebound': they put step "
                    f"{t} in another phase than the one the resumed training paused in"
                )
            if stage == "ab" and since == 0:
                sent = to_low_rank(slots, settings.cutoff, groups.train_a, trial.comm)
                ctx.comm.bytes_sent += sent
                tally.merge_bytes += sent
                tally.low_rank_size = sum(p.numel() for p in model.parameters())
                reset_optimizer(optimizer, model)
            for group in optimizer.param_groups:
                group["lr"] = schedule.get_last_lr()[0] * plan.lr_factor(t)
            optimizer.zero_grad()
            loss = loss_of(model(x.to(ctx.device)), y.to(ctx.device))
            loss.backward()
            if stage == "ab":
                average_gradients_on_host(model, groups.comm)
            else:
                allreduce_gradients(model, ctx.comm)
                tally.full_rank_steps += 1
            optimizer.step()
            schedule.step()
            if plan.ends_ab(t):
                _merge(model, slots, ctx, groups, tally)
                reset_optimizer(optimizer, model)
            total += loss.item()
            state.t += 1
        state.train_loss = total / steps
        loop.end(epoch, evaluate(model, data, ctx.device)[0])
    t = state.t
    if loop.stopped and plan.phase(t - 1)[0] == "ab" and not plan.ends_ab(t - 1):
        _merge(model, slots, ctx, groups, tally)  # stopped inside an independent phase
    seconds = time.perf_counter() - start
    groups.close()
    return _finish(ctx, model, data, state.train_loss, seconds, t, groups, tally)


def _merge(model: nn.Module, slots: list[Slot], ctx: Context, groups: Groups, tally: Tally) -> None:
    if groups.independent:  # one group's replicas are equal already
        tally.merge_bytes += merge_groups(model, ctx.comm)
    tally.merges += 1
    to_full_rank(slots)


def _finish(
    ctx: Context,
    model: nn.Module,
    data: Any,
    train_loss: float,
    seconds: float,
    steps: int,
    groups: Groups,
    tally: Tally,
) -> dict[str, float]:
    """The metrics after ``steps`` steps (fewer than the plan's when stopped early)."""
    ctx.comm.bytes_sent += groups.comm.bytes_sent
    size = sum(p.numel() for p in model.parameters())
    element = next(model.parameters()).element_size()
    # what the baseline sends: a gradient bucket per step, plus the root's initial broadcast
    baseline = element * size * (steps + int(ctx.rank == 0)) if ctx.size > 1 else 0
    group_bytes = groups.comm.bytes_sent
    return finish(
        ctx,
        model,
        data,
        train_loss,
        seconds,
        bytes_full_rank=float(ctx.comm.bytes_sent - tally.merge_bytes - group_bytes),
        bytes_merge=float(tally.merge_bytes),
        bytes_group=float(group_bytes),
        comm_reduction=1.0 - ctx.comm.bytes_sent / baseline if baseline else 0.0,
        compression=size / tally.low_rank_size,
        ab_merges=float(tally.merges),
        full_rank_steps=float(tally.full_rank_steps),
    )


train = Trainer(
    "ab",
    (*DATA_PARALLEL, AB),
    (
        *METRICS,
        "bytes_full_rank",
        "bytes_merge",
        "bytes_group",
        "comm_reduction",
        "compression",
        "ab_merges",
        "full_rank_steps",
    ),
    _train,
)
