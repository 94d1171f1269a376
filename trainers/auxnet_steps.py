"""The steps of the ``auxnet`` trainer (:mod:`trainers.auxnet` describes the method, its
params and the choices made): the AuxNet pieces, the stages of the chain and what each keeps,
and one synchronous iteration of every stage (λ, forward, local steps, λ correction).
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from propagator import ConfigError

from .framework import Context, make_optimizer, make_schedule
from .layer_parallel import RankState, Split, on_device
from .models import MODEL, activation

OUT, LAM, KAPPA, AUX = "out", "lam", "kappa", "aux"  # the chain's channels (see auxnet's doc)
CHANNELS = (OUT, LAM, KAPPA, AUX)
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Settings:
    """The method's hyperparameters, validated (see :mod:`trainers.auxnet`)."""

    method: str
    auxnet: bool
    beta: float
    beta_growth: float
    beta_every: int
    lambda_lr: float
    kappa_lr: float
    lambda_noise: float
    augment: bool
    aux_lr: float
    aux_filters: int | None
    aux_blocks: int

    @property
    def al(self) -> bool:
        return self.method == "al"

    def beta_at(self, epoch: int) -> float:
        """β of ``epoch`` (0-based)."""
        return self.beta * self.beta_growth ** (epoch // self.beta_every)


class _Residual(nn.Module):
    def __init__(self, width: int, act: str) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, 1, 1, bias=False),
            nn.BatchNorm2d(width),
            activation(act),
            nn.Conv2d(width, width, 3, 1, 1, bias=False),
            nn.BatchNorm2d(width),
        )
        self.act = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


ENDS_WITH_ACTIVATION = ("original", "bn_after_addition")  # block orders of trainers.models


def aux_piece(
    shape_in: tuple[int, ...],
    shape_out: tuple[int, ...],
    width: int,
    blocks: int,
    params: Mapping[str, Any],
) -> nn.Sequential:
    """An AuxNet piece from per-sample shape ``shape_in`` (C, H, W) to ``shape_out``: a strided
    3x3 convolution, ``blocks`` residual blocks of ``width`` channels and a 1x1 projection with
    batch norm, followed by the main network's ``activation`` if its blocks end with it
    (``order``): λ must lie where the module before it can reach, e.g. >= 0 after a ReLU."""
    (c_in, h_in, _), (c_out, h_out, _) = shape_in, shape_out
    if h_out > h_in or h_in % h_out:
        raise ConfigError(f"an AuxNet cannot map feature maps of {shape_in} to {shape_out}")
    model = MODEL.read(params)
    act = model["activation"] or "relu"
    tail = model["order"] in ENDS_WITH_ACTIVATION
    return nn.Sequential(
        nn.Conv2d(c_in, width, 3, h_in // h_out, 1, bias=False),
        nn.BatchNorm2d(width),
        activation(act),
        *[_Residual(width, act) for _ in range(blocks)],
        nn.Conv2d(width, c_out, 1, bias=False),
        nn.BatchNorm2d(c_out),
        *([activation(act)] if tail else []),
    )


@dataclass
class Stage:
    """Module ``k`` of the chain and what its stage keeps between iterations.

    Attributes:
        lam, kappa: λ_k and κ_k of every training sample (stored λ, k >= 1; κ with AL only).
        aux: AuxNet_{k-1}, which generates λ_k (AuxNet, k >= 1).
        noise: the generator of this stage's noise on λ_k (seeded per stage, so that every
            placement of the stages draws the same numbers).
    """

    k: int
    module: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    noise: torch.Generator
    lam: torch.Tensor | None = None
    kappa: torch.Tensor | None = None
    aux: nn.Module | None = None
    aux_optimizer: torch.optim.Optimizer | None = None
    aux_schedule: torch.optim.lr_scheduler.LRScheduler | None = None

    @property
    def lr(self) -> float:
        """The weights' learning rate in this iteration (before the schedule steps)."""
        return self.optimizer.param_groups[0]["lr"]

    def step_schedules(self) -> None:
        self.schedule.step()
        if self.aux_schedule is not None:
            self.aux_schedule.step()


def build_stages(
    ctx: Context, params: Mapping[str, Any], cfg: Settings, split: Split, total_steps: int
) -> list[Stage]:
    """The stages this rank holds, in chain order. Every rank builds every AuxNet piece (from
    the same seed, after the main network) and keeps its own, as with the main network."""
    pieces = [
        _aux_net(cfg, split, k, params) if cfg.auxnet else None
        for k in range(1, split.chain.stages)
    ]
    stages = []
    for k, module in split.held():
        optimizer = make_optimizer(params, module.parameters())
        stage = Stage(
            k, module, optimizer, make_schedule(params, optimizer, total_steps), _noise(ctx, k)
        )
        if k >= 1 and pieces[k - 1] is not None:
            stage.aux = pieces[k - 1].to(ctx.device)
            stage.aux_optimizer = make_optimizer(
                {**params, "lr": cfg.aux_lr}, stage.aux.parameters()
            )
            stage.aux_schedule = make_schedule(params, stage.aux_optimizer, total_steps)
        stages.append(stage)
    return stages


def _aux_net(cfg: Settings, split: Split, k: int, params: Mapping[str, Any]) -> nn.Module:
    width = cfg.aux_filters or split.shapes[k][0]
    return aux_piece(split.shapes[k - 1], split.shapes[k], width, cfg.aux_blocks, params)


def _noise(ctx: Context, k: int) -> torch.Generator:
    seed = int(np.random.SeedSequence([ctx.seed, k]).generate_state(1)[0])
    return torch.Generator().manual_seed(seed)


@dataclass
class Progress:
    """What the epoch loop carries from epoch to epoch: the epochs' seconds and the last
    epoch's :class:`Stats` (the metrics summarise them)."""

    epoch_times: list[float] = dataclasses.field(default_factory=list)
    stats: list[Stats] = dataclasses.field(default_factory=list)


def checkpoint(ctx: Context, split: Split, stages: list[Stage], progress: Progress) -> RankState:
    """This rank's state for a pause: per held stage its module, AuxNet piece, their
    optimizers and schedules, the noise generator, the stored λ and κ; and the loop's
    progress."""
    parts = {}
    for st in stages:
        named = {"optimizer": st.optimizer, "schedule": st.schedule, "aux": st.aux}
        named |= {"aux_optimizer": st.aux_optimizer, "aux_schedule": st.aux_schedule}
        parts |= {f"{name}{st.k}": part for name, part in named.items() if part is not None}

    def get() -> dict[str, Any]:
        own = {st.k: (st.noise.get_state(), st.lam, st.kappa) for st in stages}
        stats = [(s.loss, s.violation) for s in progress.stats]
        return {"stages": own, "epoch_times": progress.epoch_times, "stats": stats}

    def put(values: Mapping[str, Any]) -> None:
        for st in stages:
            noise, lam, kappa = values["stages"][st.k]
            st.noise.set_state(noise)
            st.lam, st.kappa = on_device(lam, ctx.device), on_device(kappa, ctx.device)
        progress.epoch_times = list(values["epoch_times"])
        progress.stats = [Stats(loss, dict(violation)) for loss, violation in values["stats"]]

    return RankState(ctx, split, parts, get, put)


@torch.no_grad()
def initialise_store(
    split: Split, stages: list[Stage], cfg: Settings, x_train: torch.Tensor, batch: int
) -> None:
    """λ_k of every training sample from one forward pass of the initial network (see the
    module docstring), κ_k = 0; the pass goes along the chain on the ``out`` channel."""
    chain, n, device = split.chain, len(x_train), x_train.device
    copies = {st.k: copy.deepcopy(st.module).train() for st in stages if st.k < chain.last}
    for st in stages:
        if st.k >= 1:
            st.lam = torch.empty((n, *split.shapes[st.k]), device=device)
            st.kappa = torch.zeros_like(st.lam) if cfg.al else None
    # the last chunk takes the remainder: a chunk of one sample would break batch norm
    bounds = [*range(0, n - batch + 1, batch), n] if n > batch else [0, n]
    for lo, hi in itertools.pairwise(bounds):
        for st in stages:
            if st.k == 0:
                h = x_train[lo:hi]
            else:
                h = chain.recv(OUT, st.k - 1, st.k, split.batch_shape(st.k, hi - lo), device=device)
                st.lam[lo:hi] = h
            if st.k < chain.last:
                chain.send(OUT, st.k, st.k + 1, copies[st.k](h))
        chain.flush()


@dataclass
class Auxiliary:
    """λ_k of one iteration on the stage of module k.

    Attributes:
        value: λ_k, stored or generated (the variable the correction updates).
        seen: λ_k as modules k-1 and k see it (``value`` plus the noise).
        generated: AuxNet_{k-1}(λ_{k-1}) with its graph, for the regression (AuxNet only).
        kappa: κ_k (AL only).
    """

    value: torch.Tensor
    seen: torch.Tensor
    generated: torch.Tensor | None = None
    kappa: torch.Tensor | None = None


@dataclass
class Batch:
    x: torch.Tensor
    y: torch.Tensor
    idx: torch.Tensor  # rows of the training set


@dataclass
class Stats:
    """What one iteration measured on this rank's stages."""

    loss: float | None = None  # the last module's loss, if held here
    violation: dict[int, float] = dataclasses.field(default_factory=dict)  # per k >= 1


def iteration(
    split: Split, stages: list[Stage], cfg: Settings, beta: float, batch: Batch, loss_of: Loss
) -> Stats:
    """One synchronous iteration of every held stage (steps 1-4 of the module docstring)."""
    aux = _auxiliaries(split, stages, cfg, batch)
    outs = _forward(split, stages, batch, aux)
    stats = Stats(loss=_local_steps(split, stages, cfg, beta, batch, outs, loss_of))
    for st in stages:
        if st.k >= 1:
            stats.violation[st.k] = _correct(split, st, cfg, beta, batch, aux[st.k], outs[st.k][0])
    for st in stages:
        st.step_schedules()
    split.chain.flush()
    return stats


def _auxiliaries(
    split: Split, stages: list[Stage], cfg: Settings, batch: Batch
) -> dict[int, Auxiliary]:
    """Step 1: λ_k (k >= 1) of the minibatch, each also sent back to stage k-1 as its target."""
    chain, n, out = split.chain, len(batch.idx), {}
    for st in stages:
        if st.k == 0:
            continue
        if cfg.auxnet:
            prev = batch.x
            if st.k >= 2:
                shape = split.batch_shape(st.k - 1, n)
                prev = chain.recv(AUX, st.k - 1, st.k, shape, device=batch.x.device)
            generated = st.aux(prev)  # Eq. 25
            a = Auxiliary(generated.detach(), generated.detach(), generated)
            if st.k < chain.last:
                chain.send(AUX, st.k, st.k + 1, a.value)
        else:
            stored = st.lam[batch.idx]
            a = Auxiliary(stored, stored)
            a.kappa = st.kappa[batch.idx] if st.kappa is not None else None
        if cfg.lambda_noise > 0:
            noise = torch.randn(a.value.shape, generator=st.noise).to(a.value.device)
            a.seen = a.value + cfg.lambda_noise * noise
        chain.send(LAM, st.k, st.k - 1, a.seen)
        if a.kappa is not None:
            chain.send(KAPPA, st.k, st.k - 1, a.kappa)
        out[st.k] = a
    return out


def _forward(
    split: Split, stages: list[Stage], batch: Batch, aux: dict[int, Auxiliary]
) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Step 2: (input, X^k_out) of every held module; X^k_out goes on to stage k+1."""
    outs = {}
    for st in stages:
        # a leaf of its own, so that the backward pass leaves ∂ℓ_k/∂λ_k in its grad
        inp = batch.x if st.k == 0 else aux[st.k].seen.detach().requires_grad_()
        out = st.module(inp)
        if st.k < split.chain.last:
            split.chain.send(OUT, st.k, st.k + 1, out)
        outs[st.k] = (inp, out)
    return outs


def _local_steps(
    split: Split,
    stages: list[Stage],
    cfg: Settings,
    beta: float,
    batch: Batch,
    outs: dict[int, tuple[torch.Tensor, torch.Tensor]],
    loss_of: Loss,
) -> float | None:
    """Step 3: the local losses (Eqs. 20-22) and one optimizer step per module; returns the
    last module's loss if it is held here."""
    chain, n, last_loss = split.chain, len(batch.idx), None
    for st in stages:
        out = outs[st.k][1]
        if st.k == chain.last:
            loss = loss_of(out, batch.y)
            last_loss = loss.item()
        else:
            shape, device = split.batch_shape(st.k + 1, n), out.device
            target = chain.recv(LAM, st.k + 1, st.k, shape, device=device)
            loss = beta * F.mse_loss(out, target)
            if cfg.al:
                kappa = chain.recv(KAPPA, st.k + 1, st.k, shape, device=device)
                loss = loss + (kappa * out).mean()
        st.optimizer.zero_grad()
        loss.backward()
        st.optimizer.step()
    return last_loss


def _correct(
    split: Split,
    st: Stage,
    cfg: Settings,
    beta: float,
    batch: Batch,
    a: Auxiliary,
    inp: torch.Tensor,
) -> float:
    """Step 4 on stage k >= 1: the λ correction (Eq. 23), κ's update (Eq. 24), and the AuxNet
    regression (Eq. 26) or the store's update; returns mean((λ_k - X^{k-1}_out)²)."""
    n = len(inp)
    prev_out = split.chain.recv(OUT, st.k - 1, st.k, split.batch_shape(st.k, n), device=inp.device)
    lr, base = st.lr, st.optimizer.defaults["lr"]
    with torch.no_grad():
        # ∂/∂λ of β mean((λ - X)²) [- mean(κ ⊙ (λ - X))], plus ∂ℓ_k/∂λ_k from the backward pass
        grad = 2 * beta * (a.seen - prev_out) / prev_out.numel() + inp.grad
        if a.kappa is not None:
            grad -= a.kappa / prev_out.numel()
        corrected = a.value - cfg.lambda_lr * (lr / base if base else 1.0) * grad
        gap = a.value - prev_out
        if st.lam is not None:
            st.lam[batch.idx] = corrected
            if st.kappa is not None:
                st.kappa[batch.idx] = a.kappa - cfg.kappa_lr * lr / (2 * beta) * gap
    if a.generated is not None:
        st.aux_optimizer.zero_grad()
        F.mse_loss(a.generated, corrected).backward()
        st.aux_optimizer.step()
    return float((gap**2).mean())
