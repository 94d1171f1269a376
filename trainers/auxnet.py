"""``auxnet``: layer-parallel training of a ResNet by the penalty method, the augmented
Lagrangian (AL) or the penalty method with auxiliary-variable networks (AuxNet), after Sun, Dong
et al., "Layer-Parallel Training of Residual Networks with Auxiliary-Variable Networks" (see
``reference/methods/layer_parallel_auxnet.md``; equation numbers are the paper's).

The ResNet is cut into K modules (``modules``; stem in the first, head in the last, see
:mod:`trainers.partition`), one per stage of a :class:`trainers.chain.Chain` on the worker's
ranks. Module 0 starts from the input x, module k >= 1 from an auxiliary variable λ_k instead of
module k-1's output X^{k-1}_out. Every module works on the same minibatch in every iteration
(the data set is not sharded), and every update of an iteration uses the values from its start
(Jacobi). One iteration:

1. λ_k of the minibatch: read from the per-sample store (``auxnet: false``) or generated along
   the AuxNet chain, λ_k = AuxNet_{k-1}(λ_{k-1}) (Eq. 25); stage k sends λ_k (and κ_k) back to
   stage k-1 as its target.
2. Every module runs forward from x or λ_k and sends X^k_out forward to stage k+1.
3. Local losses (Eqs. 20-22): module k <= K-2 minimises β ψ(λ_{k+1}, X^k_out) (AL: plus
   mean(κ_{k+1} ⊙ X^k_out)); the last module the task's loss (cross-entropy). One optimizer
   step on the module's weights; the backward pass also gives ∂ℓ_k/∂λ_k.
4. λ correction (Eq. 23): λ_k <- λ_k - η_λ (β ∂ψ(λ_k, X^{k-1}_out)/∂λ + ∂ℓ_k/∂λ_k [- κ_k/N]),
   one gradient step on the total objective (8) w.r.t. λ_k. AL multipliers (Eq. 24):
   κ_k <- κ_k - c_κ η/(2β) (λ_k - X^{k-1}_out). With the AuxNet, one optimizer step of the
   regression ‖λ_k^corrected - AuxNet_{k-1}(λ_{k-1})‖² (Eq. 26) follows; with the store, the
   corrected λ_k replaces the stored one.

Messages per iteration, per boundary k|k+1 between ranks: X^k_out forward, λ_{k+1} back (AL:
κ_{k+1} too) and, with the AuxNet for k >= 1, λ_k forward along the AuxNet chain; no gradient
all-reduce. With one rank all stages run in sequence and hand over through the chain's
channels, so one rank and many compute the same numbers.

Params (defaults in brackets):

* the model's (:mod:`trainers.models`; ``model`` [resnet] must be ``resnet``), ``image``
  [true], the data's (:mod:`trainers.data`), ``modules`` K [2] or ``split`` (cut points in
  residual blocks, :mod:`trainers.partition`); K = 1 is plain backprop, the ``baseline``
  trainer on one rank.
* ``optimizer``, ``lr`` [0.1], ``momentum`` [0], ``weight_decay``, ``schedule`` [cosine],
  ``min_lr``, ``warmup_steps`` (:mod:`trainers.framework`): the module weights' optimizer, as
  the paper's SGD at 0.1 with a cosine schedule; ``batch_size`` [64] (every module sees the
  whole batch), ``epochs`` [5], ``shuffle`` [true].
* ``method`` [penalty]: ``penalty`` or ``al``.
* ``auxnet`` [true for penalty, false for al]: generate λ by AuxNets instead of storing it per
  training sample. ``al`` with ``auxnet: true`` is refused (the paper leaves an AuxNet for κ to
  future work).
* ``beta`` β0 [10; dimensionless, the weight of ψ, see below], ``beta_growth`` [1; factor]
  and ``beta_every`` [1; epochs]: β = β0 · growth^floor(epoch / every) (Algorithm 1's
  "increasing sequence of penalty coefficients"; §5.2 multiplies by 10 after 50 of 200 epochs).
* ``lambda_lr`` η_λ [= ``lr``]: the λ step, following the weights' schedule (see below).
* ``kappa_lr`` c_κ [1; multiplier]: κ's step is c_κ η/(2β) (Eq. 24 for c_κ = 1; 0 keeps κ ≡ 0,
  the penalty method).
* ``lambda_noise`` σ [0]: Gaussian noise of standard deviation σ on the λ the modules see
  (§5.1: "perturbed by the Gaussian noise with small variance").
* ``aux_filters`` [the boundary's channels], ``aux_blocks`` [1], ``aux_lr`` [= ``lr``]: the
  AuxNet pieces' width, residual blocks and learning rate (same optimizer and schedule kind).
* ``augment`` [false]: random shifts by up to one pixel (no flips: digits are not mirror
  symmetric); only with the AuxNet, since a stored λ belongs to one fixed image.

Metrics beyond :func:`trainers.layer_parallel.finish`'s (val_loss and val_acc from the
layer-serial evaluation through the chain, bytes_sent, parameters of the main network, ...):
``train_loss`` (the last module's loss, mean over the last epoch), ``serial_train_loss`` (the
whole network layer-serially on the training set at the end, in evaluation mode; the paper's
footnote 9 measures training loss this way), ``constraint_violation`` (mean over k of
mean((λ_k - X^{k-1}_out)²), averaged over the last epoch's iterations, values before their
update; 0 for K = 1), ``epoch_time`` (mean seconds per epoch of the training iterations, the
slowest rank's), ``beta`` (at the end), ``aux_parameters``. Every rank returns the same values;
ranks beyond K hold no stage and only join the evaluations.

Choices where the paper is ambiguous (notes §1.5 "Unspecified"), and why:

* ψ is ``F.mse_loss``, the mean over batch and features, not the sum ‖·‖², with which β would
  mean something different for every batch size and feature map. The notes read the paper's
  β = 10^3..10^8 as pointing to such a mean; on these models its values do not carry over. A
  module's last batch-norm shift moves a whole channel of its output, a curvature of about β/C
  of ψ's term (C channels at the boundary), so plain SGD at η = 0.1 needs β of order C or less.
  Beyond that the first step, taken while the gap to the AuxNet's random λ is large,
  overshoots: at β = 100 it silences 90 % of the boundary's ReLU outputs (35 % at β = 10), and
  the run never fully recovers (``jobs/bench/auxnet.py``, 16 filters: 54 % accuracy at β = 100,
  81 % at 10; β = 10^3 diverges). Hence the default β of 10; larger β is reached through
  ``beta_growth`` once the gap is small, or with a larger ``lambda_lr`` (below).
* η_λ is the weights' learning rate by default (the paper writes one η), scaled by the same
  schedule; κ's η is the weights' scheduled learning rate. With ψ and the cross-entropy both
  means, one correction moves each element of λ by 2 η_λ β / N of the gap (N = batch x
  features) plus η_λ / batch times its sample's gradient: at the defaults (N = 64·1024 for 16
  filters) about 3·10^-5 of the gap, so λ stays where the AuxNet put it, and the AuxNet, whose
  target that is, hardly learns (freezing it or setting ``lambda_lr: 0`` changes nothing in
  three digits there). ``lambda_lr`` of order N / (20 β) makes the correction matter; the
  search space (``search_spaces/auxnet.py``) covers it.
* The AL term is averaged like ψ: module k-1's loss adds mean(κ_k ⊙ X^{k-1}_out) and (8) gets
  -mean(κ_k ⊙ (λ_k - X^{k-1}_out)), so κ has the units of the sum-based paper's κ (λ_k -
  X^{k-1}_out ≈ (κ_k - N p_k)/(2β) at a stationary point, Eq. 17 with N p the adjoint of the
  summed loss) and Eq. 24 applies unchanged. Its step η/(2β) is then small against the κ it
  aims at (N p), so at c_κ = 1 AL stays close to the penalty method; ``kappa_lr`` scales it.
* One optimizer step of the AuxNet regression per iteration (the paper's "argmin"); its input is
  the generated λ_{k-1} of the iteration (not the corrected one), which is what the AuxNet chain
  feeds it in the next iteration and needs no extra message. ‖·‖² is an element mean, its scale
  absorbed by ``aux_lr``.
* λ_0 is the (augmented) input image, not the stem's output: the stem belongs to module 0 and
  is trained (the paper's footnote 7), so its output is a moving target; the image is on every
  rank, so AuxNet_0 needs no message.
* AuxNet_{k-1} (producing λ_k) sits on stage k, where the corrected λ_k is, so the regression
  is local. Each piece is a strided 3x3 convolution with batch norm and the activation,
  ``aux_blocks`` residual blocks and a 1x1 convolution with batch norm onto the boundary's
  channels, shaped like the main module it shadows (the paper pairs ResNet-110 with a
  ResNet-20: the same widths, fewer blocks). It ends with the main network's activation when
  the main blocks do (``order`` original or bn_after_addition): a λ with negative entries
  after a ReLU is a target module k-1 can never reach (without it, 5-epoch runs stayed at
  10-20 % accuracy for every β we tried).
* The noise perturbs the point where the modules see λ_k (module k's input, module k-1's
  target); the correction is applied to the clean λ_k, so noise neither accumulates in the
  store nor becomes part of the AuxNet's target.
* The stored λ are initialised by one forward pass of the initial network over the training set
  in chunks of ``batch_size``, in training mode (batch statistics, as training sees) through a
  copy, so that the modules' batch-norm running statistics are not touched.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from mpi4py import MPI
from torch import nn

from propagator import ConfigError, Trial

from .data import Data, load_data
from .framework import (
    Context,
    batches,
    loss_function,
    make_optimizer,
    make_schedule,
    setup,
)
from .layer_parallel import Split, evaluate, finish, split_model
from .models import activation
from .params import flag, integer, number

OUT, LAM, KAPPA, AUX = "out", "lam", "kappa", "aux"  # the chain's channels (see the docstring)
CHANNELS = (OUT, LAM, KAPPA, AUX)
METHODS = ("penalty", "al")
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
DEFAULTS = {"model": "resnet", "image": True, "lr": 0.1, "schedule": "cosine"}


@dataclass(frozen=True)
class Settings:
    """The method's hyperparameters, validated (see the module docstring)."""

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


def settings(params: dict[str, Any]) -> Settings:
    """The method's hyperparameters from ``params`` (with :data:`DEFAULTS` applied); a bad value
    raises :class:`propagator.ConfigError` naming it."""
    method = params.get("method", "penalty")
    if method not in METHODS:
        raise ConfigError(f"method must be one of {list(METHODS)}, got {method!r}")
    if params.get("model", "resnet") != "resnet":
        raise ConfigError(f"model must be resnet for the auxnet trainer, got {params['model']!r}")
    auxnet = flag(params, "auxnet", method == "penalty")
    augment = flag(params, "augment", False)
    if auxnet and method == "al":
        raise ConfigError(
            "auxnet: true needs method penalty (the paper has no AuxNet for the AL multipliers)"
        )
    if augment and not auxnet:
        raise ConfigError(
            "augment: true needs auxnet: true (a stored λ belongs to one fixed image)"
        )
    lr = number(params, "lr", 0.1, low=0.0)
    aux_filters = params.get("aux_filters")
    return Settings(
        method=method,
        auxnet=auxnet,
        beta=number(params, "beta", 10.0, low=0.0, strict=True),
        beta_growth=number(params, "beta_growth", 1.0, low=1.0),
        beta_every=integer(params, "beta_every", 1, low=1),
        lambda_lr=number(params, "lambda_lr", lr, low=0.0),
        kappa_lr=number(params, "kappa_lr", 1.0, low=0.0),
        lambda_noise=number(params, "lambda_noise", 0.0, low=0.0),
        augment=augment,
        aux_lr=number(params, "aux_lr", lr, low=0.0),
        aux_filters=None if aux_filters is None else integer(params, "aux_filters", 0, low=1),
        aux_blocks=integer(params, "aux_blocks", 1, low=0),
    )


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
    params: dict[str, Any],
) -> nn.Sequential:
    """An AuxNet piece from per-sample shape ``shape_in`` (C, H, W) to ``shape_out``: a strided
    3x3 convolution, ``blocks`` residual blocks of ``width`` channels and a 1x1 projection with
    batch norm, followed by the main network's ``activation`` if its blocks end with it
    (``order``): λ must lie where the module before it can reach, e.g. >= 0 after a ReLU."""
    (c_in, h_in, _), (c_out, h_out, _) = shape_in, shape_out
    if h_out > h_in or h_in % h_out:
        raise ConfigError(f"an AuxNet cannot map feature maps of {shape_in} to {shape_out}")
    act = params.get("activation", "relu")
    tail = params.get("order", "original") in ENDS_WITH_ACTIVATION
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
    ctx: Context, params: dict[str, Any], cfg: Settings, split: Split, total_steps: int
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


def _aux_net(cfg: Settings, split: Split, k: int, params: dict[str, Any]) -> nn.Module:
    width = cfg.aux_filters or split.shapes[k][0]
    return aux_piece(split.shapes[k - 1], split.shapes[k], width, cfg.aux_blocks, params)


def _noise(ctx: Context, k: int) -> torch.Generator:
    seed = int(np.random.SeedSequence([ctx.seed, k]).generate_state(1)[0])
    return torch.Generator().manual_seed(seed)


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


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image shifted by -1, 0 or 1 pixels in each direction, zeros filling in."""
    n, c, h, w = x.shape
    dy, dx = torch.randint(-1, 2, (2, n), generator=generator)
    padded = F.pad(x, (1, 1, 1, 1))
    rows = (torch.arange(h)[None, :] + 1 + dy[:, None])[:, None, :, None]
    cols = (torch.arange(w)[None, :] + 1 + dx[:, None])[:, None, None, :]
    return padded[
        torch.arange(n)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols
    ]


def train(params: dict[str, Any], trial: Trial) -> dict[str, float]:
    """Train the ResNet of ``params`` layer-parallel on the worker's ranks (see the module
    docstring); every rank returns the same metrics."""
    params = {**DEFAULTS, **params}
    cfg = settings(params)
    ctx = setup(params, trial)
    data = load_data(params)  # every stage works on every sample: no shards
    split = split_model(ctx, params, data, CHANNELS)
    epochs = integer(params, "epochs", 5, low=1)
    batch = integer(params, "batch_size", 64, low=1)
    steps = len(data.x_train) // batch  # as ``baseline`` on one rank, so that K = 1 is BP
    if steps < 1:
        raise ConfigError(
            f"batch_size must be at most the {len(data.x_train)} training samples, got {batch}"
        )
    stages = build_stages(ctx, params, cfg, split, epochs * steps)
    if stages and not cfg.auxnet:
        initialise_store(split, stages, cfg, data.x_train.to(ctx.device), batch)
    start = time.perf_counter()
    epoch_times, stats = [], []
    for epoch in range(epochs):
        tick = time.perf_counter()
        stats = list(_epoch(ctx, split, stages, cfg, data, epoch, batch, steps)) if stages else []
        epoch_times.append(time.perf_counter() - tick)
        trial.report(epoch, evaluate(split, data.x_val, data.y_val, data.task, ctx.device)[0])
    train_loss, extra = _summary(ctx, split, stages, stats, epoch_times)
    serial = evaluate(split, data.x_train, data.y_train, data.task, ctx.device)[0]
    extra |= {"serial_train_loss": serial, "beta": cfg.beta_at(epochs - 1)}
    return finish(ctx, split, data, train_loss, time.perf_counter() - start, **extra)


def _epoch(
    ctx: Context,
    split: Split,
    stages: list[Stage],
    cfg: Settings,
    data: Data,
    epoch: int,
    batch: int,
    steps: int,
) -> Iterator[Stats]:
    """The iterations of one epoch, yielding each one's :class:`Stats`. The minibatches are
    ``baseline``'s (:func:`trainers.framework.batches` over the row numbers)."""
    rows = dataclasses.replace(data, x_train=torch.arange(len(data.x_train)))
    shifts = _augment_generator(ctx, epoch) if cfg.augment else None
    loss_of, beta, device = loss_function(data.task), cfg.beta_at(epoch), ctx.device
    shuffle = ctx.params.get("shuffle", True)
    for idx, y in batches(rows, batch, steps, epoch, ctx.seed, shuffle):
        x = data.x_train[idx]
        if shifts is not None:
            x = augment(x, shifts)
        yield iteration(
            split, stages, cfg, beta, Batch(x.to(device), y.to(device), idx.to(device)), loss_of
        )


def _augment_generator(ctx: Context, epoch: int) -> torch.Generator:
    # the same shifts on every rank: all modules must see the same minibatch
    seed = int(np.random.SeedSequence([ctx.seed, epoch, 1]).generate_state(1)[0])
    return torch.Generator().manual_seed(seed)


def _summary(
    ctx: Context,
    split: Split,
    stages: list[Stage],
    stats: list[Stats],
    epoch_times: list[float],
) -> tuple[float, dict[str, float]]:
    """(train loss, extra metrics) agreed by every rank, from the last epoch's stats. The
    reductions are bookkeeping over ``trial.comm``, not the method's messages, so they are
    not counted in ``bytes_sent`` (as ``finish`` does with the parameter counts)."""
    k = split.chain.stages
    local = np.zeros(k + 1)  # [last module's loss, violation of λ_1 .. λ_{K-1}, AuxNet params]
    for st in stages:
        if st.k == split.chain.last and stats:
            local[0] = float(np.mean([s.loss for s in stats]))
        if st.k >= 1 and stats:
            local[st.k] = float(np.mean([s.violation[st.k] for s in stats]))
        if st.aux is not None:
            local[k] += sum(p.numel() for p in st.aux.parameters())
    comm = ctx.trial.comm
    total = comm.allreduce(local, op=MPI.SUM)
    seconds = comm.allreduce(float(np.mean(epoch_times)), op=MPI.MAX)
    violation = float(np.mean(total[1:k])) if k > 1 else 0.0
    extra = {
        "constraint_violation": violation,
        "epoch_time": seconds,
        "aux_parameters": float(total[k]),
    }
    return float(total[0]), extra
