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

Params: :data:`PARTS` (defaults and ranges in the README); what they mean here:

* the model is a ResNet (:mod:`trainers.models`) cut into ``modules`` K or at ``split`` (cut
  points in residual blocks, :mod:`trainers.partition`); K = 1 is plain backprop, the
  ``baseline`` trainer on one rank.
* ``optimizer``, ``lr``, ``schedule``, ...: the module weights' optimizer, by default the
  paper's SGD at 0.1 with a cosine schedule; every module sees the whole ``batch_size``.
* ``method``: ``penalty`` or ``al``. ``auxnet``: generate λ by AuxNets instead of storing it per
  training sample; ``al`` with ``auxnet: true`` is refused (the paper leaves an AuxNet for κ to
  future work).
* ``beta`` β0 (dimensionless, the weight of ψ, see below), ``beta_growth`` and ``beta_every``
  (epochs): β = β0 · growth^floor(epoch / every) (Algorithm 1's "increasing sequence of
  penalty coefficients"; §5.2 multiplies by 10 after 50 of 200 epochs).
* ``lambda_lr`` η_λ: the λ step, following the weights' schedule (see below).
* ``kappa_lr`` c_κ: κ's step is c_κ η/(2β) (Eq. 24 for c_κ = 1; 0 keeps κ ≡ 0, the penalty
  method).
* ``lambda_noise`` σ: Gaussian noise of standard deviation σ on the λ the modules see (§5.1:
  "perturbed by the Gaussian noise with small variance").
* ``aux_filters``, ``aux_blocks``, ``aux_lr``: the AuxNet pieces' width, residual blocks and
  learning rate (same optimizer and schedule kind).
* ``augment``: random shifts by up to one pixel (no flips: digits are not mirror symmetric);
  only with the AuxNet, since a stored λ belongs to one fixed image.

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

import dataclasses
import time
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from propagator import ConfigError, Trial

from .auxnet_steps import (
    CHANNELS,
    Batch,
    Progress,
    Settings,
    Stage,
    Stats,
    build_stages,
    checkpoint,
    initialise_store,
    iteration,
)
from .checkpointing import Epochs
from .data import DATA, Data, load_data
from .framework import LOOP, OPTIMIZER, RUNTIME, SCHEDULE, Context, batches, loss_function, setup
from .layer_parallel import LAYER_METRICS, Split, evaluate, finish, split_model
from .models import MODEL
from .params import Table, Trainer, Values, choice, flag, integer, join, real, with_defaults
from .partition import PARTITION

METHODS = ("penalty", "al")
# the parts' defaults that differ for the paper's ResNet: SGD at 0.1 with a cosine schedule
DEFAULTS = {"model": "resnet", "image": True, "lr": 0.1, "schedule": "cosine"}
AUXNET = Table(
    "auxnet",
    (
        choice("method", "penalty", "penalty, or al (augmented Lagrangian)", METHODS),
        flag(
            "auxnet",
            None,
            "generate λ by AuxNets instead of storing it per sample",
            derived="true for penalty, false for al",
        ),
        real("beta", 10.0, "β0, the weight of ψ (dimensionless)", "> 0"),
        real("beta_growth", 1.0, "factor on β every beta_every epochs", ">= 1"),
        integer("beta_every", 1, "epochs between growths of β", ">= 1"),
        real("lambda_lr", None, "η_λ, the λ step (follows the schedule)", ">= 0", derived="lr"),
        real("kappa_lr", 1.0, "c_κ: κ's step is c_κ η / (2β) (0: the penalty method)", ">= 0"),
        real("lambda_noise", 0.0, "σ of the Gaussian noise on the λ the modules see", ">= 0"),
        flag("augment", False, "random shifts by up to one pixel (needs auxnet)"),
        real("aux_lr", None, "the AuxNets' learning rate", ">= 0", derived="lr"),
        integer(
            "aux_filters",
            None,
            "the AuxNet pieces' width",
            ">= 1",
            derived="the boundary's channels",
        ),
        integer("aux_blocks", 1, "residual blocks per AuxNet piece", ">= 0"),
    ),
).mark_structural("method", "auxnet", "aux_filters", "aux_blocks")
PARTS = with_defaults(
    (
        DATA,
        MODEL.replace("model", default=DEFAULTS["model"], choices=(DEFAULTS["model"],))
        .replace("activation", derived="relu")
        .pick("model", "activation", "filters", "blocks", "blocks_per_stage", "order"),
        OPTIMIZER,
        SCHEDULE,
        LOOP.replace("batch_size", doc="samples per iteration (every module sees the whole batch)"),
        RUNTIME,
        PARTITION,
        AUXNET,
    ),
    DEFAULTS,
)
TABLE = join("auxnet", *PARTS)


def settings(params: Mapping[str, Any]) -> Settings:
    """The method's hyperparameters (:data:`AUXNET`; ``lr`` for the derived ones) from
    ``params``; a bad value raises :class:`propagator.ConfigError` naming it."""
    p = TABLE.read(params)
    method, lr = p["method"], p["lr"]
    auxnet = p["auxnet"] if p["auxnet"] is not None else method == "penalty"
    if auxnet and method == "al":
        raise ConfigError(
            "auxnet: true needs method penalty (the paper has no AuxNet for the AL multipliers)"
        )
    if p["augment"] and not auxnet:
        raise ConfigError(
            "augment: true needs auxnet: true (a stored λ belongs to one fixed image)"
        )
    return Settings(
        method=method,
        auxnet=auxnet,
        beta=p["beta"],
        beta_growth=p["beta_growth"],
        beta_every=p["beta_every"],
        lambda_lr=lr if p["lambda_lr"] is None else p["lambda_lr"],
        kappa_lr=p["kappa_lr"],
        lambda_noise=p["lambda_noise"],
        augment=p["augment"],
        aux_lr=lr if p["aux_lr"] is None else p["aux_lr"],
        aux_filters=p["aux_filters"],
        aux_blocks=p["aux_blocks"],
    )


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


def _train(params: Values, trial: Trial) -> dict[str, float]:
    """Train the ResNet of ``params`` layer-parallel on the worker's ranks (see the module
    docstring); every rank returns the same metrics."""
    cfg = settings(params)
    ctx = setup(params, trial)
    data = load_data(params)  # every stage works on every sample: no shards
    split = split_model(ctx, params, data, CHANNELS)
    epochs, batch = params["epochs"], params["batch_size"]
    steps = len(data.x_train) // batch  # as ``baseline`` on one rank, so that K = 1 is BP
    if steps < 1:
        raise ConfigError(
            f"batch_size must be at most the {len(data.x_train)} training samples, got {batch}"
        )
    stages = build_stages(ctx, params, cfg, split, epochs * steps)
    if stages and not cfg.auxnet:
        initialise_store(split, stages, cfg, data.x_train.to(ctx.device), batch)
    start = time.perf_counter()
    run = Progress()
    loop = Epochs(ctx, epochs, checkpoint(ctx, split, stages, run))
    for epoch in loop:
        tick = time.perf_counter()
        iterations = _epoch(ctx, split, stages, cfg, data, epoch, batch, steps) if stages else ()
        run.stats = list(iterations)
        run.epoch_times.append(time.perf_counter() - tick)
        loop.end(epoch, evaluate(split, data.x_val, data.y_val, data.task, ctx.device)[0])
    train_loss, extra = _summary(ctx, split, stages, run.stats, run.epoch_times)
    serial = evaluate(split, data.x_train, data.y_train, data.task, ctx.device)[0]
    extra |= {"serial_train_loss": serial, "beta": cfg.beta_at(ctx.epochs_run - 1)}
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
    shuffle = ctx.params["shuffle"]
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
    from mpi4py import MPI

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


train = Trainer(
    "auxnet",
    PARTS,
    (
        *LAYER_METRICS,
        "serial_train_loss",
        "constraint_violation",
        "epoch_time",
        "beta",
        "aux_parameters",
    ),
    _train,
)
