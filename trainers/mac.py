"""``mac``: the Method of Auxiliary Coordinates with quadratic penalty, distributed over a
worker's ranks as a linear chain of groups of layers (the MAC thesis, see
``reference/methods/mac.md``).

The network is cut into groups ``f_0 .. f_L`` (see :mod:`trainers.partition`; ``split: 1`` on
the 6-layer MLP of Table 4.1, ``depth: 5``, is the thesis's grouping (1,5)). Every sample has an
auxiliary coordinate ``z_l`` at each internal boundary (``z_0 = x``), initialised by a forward
pass. One MAC epoch is

1. **W-step** (Eq. 3.3, 3.13): every group fits its own targets, ``f_l(z_l) -> z_{l+1}`` by the
   mean over samples of the squared error summed over features, the last group ``f_L(z_L) -> y``
   by the output loss; ``w_iters`` passes over the data in minibatches of ``w_batch``.
2. **Z-step** for ``l >= 1`` (``z_iters`` iterations, ``z_batch`` rows at a time), minimising per
   sample, with ``p_l = f_{l-1}(z_{l-1})`` computed with the new weights:

   * ``1-term`` (Eq. 3.12, 3.16): ``(mu/2) |z_{l+1} - f_l(z_l)|^2``, or ``(1/2) loss(y, f_L(z_L))``;
   * ``2-term`` (Eq. 3.9, 3.15): the same ``+ (mu/2) |z_l - p_l|^2`` with the old ``z_{l-1}``
     and ``z_{l+1}`` held fixed;
   * ``coupled`` (Eq. 3.5, 3.14, the reference): all ``z`` of a sample jointly, as Jacobi
     iterations in which every stage takes its gradient at the current iterate of its
     neighbours (the same formula as 2-term, with ``p_l`` and ``z_{l+1}`` refreshed every
     iteration).
3. The new ``z_l`` becomes group ``l-1``'s target.

After each epoch the nested network's training loss (a layer-serial pass) is reported, and
``mu`` grows by ``mu_growth`` when that loss has not fallen by at least ``mu_tol`` (relative).

**Chain.** One stage per group on the worker's ranks (see :mod:`trainers.chain`). Per epoch
stage ``l`` sends its new ``z_l`` to ``l-1``; with 2-term, stage ``l`` also sends ``f_l(z_l)``
to ``l+1`` before the Z-step; with coupled, ``f_l(z_l)`` goes up and ``z_l`` down at every
Z-iteration. Weights are never sent. With one rank all groups run in sequence in one process
and give the same numbers.

Params (:data:`MAC_PARAMS` and the parts in :data:`PARTS`; defaults and ranges in the README;
the defaults follow Table 4.4's best row, 2-term with grouping (1,5)): ``split`` (1 unless
``modules`` is given) cuts the groups (see :mod:`trainers.partition`); ``epochs`` are MAC
epochs (10, one HPO trial of the thesis); ``w_lr`` (1.5e-3, the geometric mean of Table 4.4's
3.4e-4 and 6.7e-3), ``w_iters`` and ``z_lr``, ``z_iters`` hold for every group, ``w_lrI`` etc.
for group ``I`` (1-based; the Z-step's for the coordinates entering group ``I >= 2``; coupled
needs one ``z_iters`` for all, as its stages iterate in step); ``w_batch`` (512, the thesis's MLP
batch) is the W-step minibatch, ``z_batch`` rows per Z-step chunk, memory only (see below);
``loss`` ``mse`` is the squared error summed over outputs, against one-hot labels for
classification (regression always uses ``mse``); ``momentum``, ``nesterov``, ``weight_decay``
act on the W-step's optimizer; ``dropout`` acts in the W-step only.

Choices where the thesis leaves room, and why:

* An iteration of a W- or Z-step is one pass over the data (§2.5's definition).
* W-step optimizers keep their state for the whole run: a group's parameters are the same
  tensors from epoch to epoch, and with one group MAC is then exactly minibatch training with
  that optimizer for ``epochs * w_iters`` epochs. Z-step optimizers start afresh each epoch:
  every Z-step is a new problem (new weights and targets), and Table 4.4's single Z-iteration
  only means something that way.
* The Z-step objective is a sum over samples of independent terms and Adam acts per element,
  so each chunk of ``z_batch`` rows gets its own optimizer and all its iterations: the result
  does not depend on ``z_batch`` (up to floating-point rounding), which only bounds memory.
  The thesis sets the Z batch to the W batch; here it is a memory knob.
* The plateau rule for µ (the thesis gives none): relative decrease below ``mu_tol``.
* 2-term sends ``f_{l-1}(z_{l-1})`` (what the Z-step needs, fixed during it) instead of the
  weights and ``z_{l-1}`` (Fig. 3.1): the same numbers for fewer bytes whenever the group's
  input and weights outnumber its output, and no weights on the wire.
* The Z-step evaluates the groups in evaluation mode (the thesis: f must be deterministic),
  so dropout acts only in the W-step; the initial forward pass does the same.

Metrics beyond :func:`trainers.layer_parallel.finish`'s: ``train_loss`` (the nested network's,
on the whole training set, after the last epoch), ``train_acc``, ``epoch_time`` (seconds per
MAC epoch, W- and Z-steps and their messages, without the loss evaluation; the slowest rank's
mean), ``mu`` (its final value) and ``groups``. ``trial.report`` gets the training loss after
every epoch (the thesis's fitness).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from propagator import ConfigError, Trial

from .checkpointing import Epochs, rescaled
from .data import DATA, Data, load_data
from .framework import (
    LOOP,
    OPTIMIZER,
    OPTIMIZERS,
    RUNTIME,
    Context,
    batch_indices,
    evaluation_mode,
    make_optimizer,
    setup,
)
from .layer_parallel import LAYER_METRICS, RankState, Split, evaluate, finish, split_model
from .params import Table, Trainer, Values, choice, integer, join, real
from .partition import LAYERED_MODEL, PARTITION

VARIANTS = ("1-term", "2-term", "coupled")
LOSSES = ("cross_entropy", "mse")
MAC_PARAMS = Table(
    "mac",
    (
        choice("variant", "2-term", "the Z-step: 1-term, 2-term or coupled", VARIANTS),
        real("w_lr", 1.5e-3, "W-step learning rate (w_lrI: group I's)", "> 0", indexed=True),
        integer(
            "w_iters",
            67,
            "W-step passes over the data per MAC epoch (w_itersI: group I's)",
            ">= 1",
            indexed=True,
        ),
        integer("w_batch", 512, "W-step minibatch (samples)", ">= 1"),
        choice("w_optimizer", "adam", "W-step optimizer", OPTIMIZERS),
        real(
            "z_lr",
            3e-5,
            "Z-step learning rate (z_lrI: of the coordinates entering group I)",
            "> 0",
            indexed=True,
        ),
        integer("z_iters", 1, "Z-step iterations per MAC epoch (z_itersI)", ">= 0", indexed=True),
        integer("z_batch", 4096, "rows per Z-step chunk (memory only)", ">= 1"),
        choice("z_optimizer", "adam", "Z-step optimizer", ("adam", "sgd")),
        real("mu", 1.0, "µ0, the penalty weight at the start", "> 0"),
        real("mu_growth", 10.0, "factor on µ when the training loss plateaus", ">= 1"),
        real("mu_tol", 0.01, "relative decrease below which the loss plateaus", "[0, 1)"),
        choice(
            "loss",
            None,
            "output loss",
            LOSSES,
            derived="cross_entropy for classification, mse for regression",
        ),
    ),
).mark_structural("w_optimizer")
PARTS = (
    DATA,
    LAYERED_MODEL,
    OPTIMIZER.pick("momentum", "nesterov", "weight_decay"),
    LOOP.pick("epochs", "shuffle").with_defaults(epochs=10),
    RUNTIME,
    PARTITION.replace("split", derived="1, unless modules is given"),
    MAC_PARAMS,
)
TABLE = join("mac", *PARTS)
# init: z_{l+1} up at the start; prior: f_l(z_l) up; target: new z_l down; iterate: coupled's
# z_l down at every Z-iteration
CHANNELS = ("init", "prior", "target", "iterate")


@dataclass(frozen=True)
class Settings:
    """MAC's knobs (see the module docstring), per group where the thesis has them per group."""

    variant: str
    epochs: int
    w_lr: tuple[float, ...]
    w_iters: tuple[int, ...]
    w_batch: int
    w_optimizer: str
    z_lr: tuple[float, ...]  # per group; group 0's is unused (its input is the data)
    z_iters: tuple[int, ...]
    z_batch: int
    z_optimizer: str
    mu: float
    mu_growth: float
    mu_tol: float
    loss: str


def settings(params: Mapping[str, Any], groups: int, task: str = "classification") -> Settings:
    """The knobs of :data:`TABLE` for ``groups`` groups; raises ConfigError naming a bad one."""
    p = TABLE.read(params)
    loss = p["loss"] or ("cross_entropy" if task == "classification" else "mse")
    if task == "regression" and loss != "mse":
        raise ConfigError(f"loss must be mse for regression, got {loss!r}")
    z_iters = p.per_group("z_iters", groups)
    if p["variant"] == "coupled" and len(set(z_iters[1:])) > 1:
        raise ConfigError(
            f"z_iters must be the same for every group with the coupled Z-step, got {z_iters!r}"
        )
    return Settings(
        variant=p["variant"],
        epochs=p["epochs"],
        w_lr=p.per_group("w_lr", groups),
        w_iters=p.per_group("w_iters", groups),
        w_batch=p["w_batch"],
        w_optimizer=p["w_optimizer"],
        z_lr=p.per_group("z_lr", groups),
        z_iters=z_iters,
        z_batch=p["z_batch"],
        z_optimizer=p["z_optimizer"],
        mu=p["mu"],
        mu_growth=p["mu_growth"],
        mu_tol=p["mu_tol"],
        loss=loss,
    )


@dataclass
class _Stage:
    """One group and its coordinates on the rank that holds it."""

    index: int
    group: nn.Module
    optimizer: torch.optim.Optimizer  # the W-step's, kept for the whole run
    z: torch.Tensor | None  # z_l for every training sample; None for group 0 (its input is x)
    target: torch.Tensor  # z_{l+1}, or the labels for the last group


def output_loss(out: torch.Tensor, y: torch.Tensor, loss: str, reduction: str) -> torch.Tensor:
    """The output loss per sample, summed or averaged over the samples (``reduction``)."""
    if loss == "cross_entropy":
        return F.cross_entropy(out, y, reduction=reduction)
    if y.dtype == torch.int64:
        y = F.one_hot(y, out.shape[1]).to(out.dtype)
    per_sample = _squared_norm(out - y)
    return per_sample.sum() if reduction == "sum" else per_sample.mean()


def _squared_norm(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).pow(2).sum(1)


def z_objective(
    group: nn.Module,
    z: torch.Tensor,
    target: torch.Tensor,
    prior: torch.Tensor | None,
    mu: float,
    last: bool,
    loss: str,
) -> torch.Tensor:
    """The Z-step objective of one group's coordinates ``z``, summed over its samples:
    ``(mu/2) |target - f(z)|^2`` (hidden) or ``(1/2) loss(target, f(z))`` (last group), plus
    ``(mu/2) |z - prior|^2`` when ``prior`` (``f_{l-1}(z_{l-1})``) is given (2-term, coupled)."""
    out = group(z)
    if last:
        fit = 0.5 * output_loss(out, target, loss, "sum")
    else:
        fit = 0.5 * mu * _squared_norm(target - out).sum()
    if prior is not None:
        fit = fit + 0.5 * mu * _squared_norm(z - prior).sum()
    return fit


class MAC:
    """The method on one rank: its stages of the chain and the MAC epoch."""

    def __init__(self, ctx: Context, params: Mapping[str, Any], split: Split, data: Data) -> None:
        self.ctx, self.split, self.chain = ctx, split, split.chain
        self.s = settings(params, split.chain.stages, data.task)
        self.x, self.y = data.x_train.to(ctx.device), data.y_train.to(ctx.device)
        self.shuffle = TABLE.read(params)["shuffle"]
        self.mu = self.s.mu
        self.previous = math.inf  # the training loss of the epoch before, for µ's schedule
        self.stages = [
            _Stage(i, g, self._w_optimizer(params, g, i), None, self.y) for i, g in split.held()
        ]
        self._initialise()

    def _w_optimizer(self, params: Mapping[str, Any], group: nn.Module, i: int) -> Any:
        knobs = {**params, "optimizer": self.s.w_optimizer, "lr": self.s.w_lr[i]}
        return make_optimizer(knobs, group.parameters())

    def _shape(self, stage: int, n: int | None = None) -> tuple[int, ...]:
        return self.split.batch_shape(stage, len(self.x) if n is None else n)

    @torch.no_grad()
    def _forward(self, stage: _Stage, rows: slice | None = None) -> torch.Tensor:
        """``f_l(z_l)`` in evaluation mode (deterministic: no dropout)."""
        inputs = self.x if stage.z is None else stage.z
        with evaluation_mode(stage.group):
            return stage.group(inputs if rows is None else inputs[rows])

    def _initialise(self) -> None:
        """z by a forward pass through the chain; each group's target is its own output."""
        for stage in self.stages:
            if stage.index > 0:
                stage.z = self._recv("init", stage.index - 1, stage.index)
            if stage.index < self.chain.last:
                stage.target = self._forward(stage)
                self.chain.send("init", stage.index, stage.index + 1, stage.target)

    def epoch(self, epoch: int) -> None:
        """One MAC epoch: W-steps, Z-steps, new targets down the chain."""
        for stage in self.stages:
            self._w_step(stage, epoch)
        if self.chain.stages > 1:
            self._z_step()
        self._exchange_targets()
        self.chain.flush()

    def _w_step(self, stage: _Stage, epoch: int) -> None:
        iters, n = self.s.w_iters[stage.index], len(self.x)
        inputs = self.x if stage.z is None else stage.z
        last = stage.index == self.chain.last
        steps = max(1, n // self.s.w_batch)
        for i in range(iters):
            order = batch_indices(
                n, self.s.w_batch, steps, epoch * iters + i, self.ctx.seed, self.shuffle
            )
            for idx in order:
                stage.optimizer.zero_grad()
                out = stage.group(inputs[idx])
                target = stage.target[idx]
                if last:
                    loss = output_loss(out, target, self.s.loss, "mean")
                else:
                    loss = _squared_norm(out - target).mean()
                loss.backward()
                stage.optimizer.step()

    def _z_step(self) -> None:
        """The groups are fixed and must be deterministic (the thesis): evaluation mode."""
        with evaluation_mode(*(st.group for st in self.stages)):
            if self.s.variant == "coupled":
                self._coupled_z_step()
                return
            priors = self._send_priors() if self.s.variant == "2-term" else {}
            for stage in self.stages:
                if stage.index > 0:
                    self._decoupled_z_step(stage, priors.get(stage.index))

    def _send_priors(self) -> dict[int, torch.Tensor]:
        """2-term: ``f_{l-1}(z_{l-1})`` with the new weights, from each stage to the next."""
        for stage in self.stages:
            if stage.index < self.chain.last:
                self.chain.send("prior", stage.index, stage.index + 1, self._forward(stage))
        return {
            stage.index: self._recv("prior", stage.index - 1, stage.index)
            for stage in self.stages
            if stage.index > 0
        }

    def _z_optimizer(self, z: torch.Tensor, lr: float) -> torch.optim.Optimizer:
        if self.s.z_optimizer == "adam":
            return torch.optim.Adam([z], lr=lr)
        return torch.optim.SGD([z], lr=lr)

    def _z_update(self, stage: _Stage, z: torch.Tensor, opt: Any, target: Any, prior: Any) -> None:
        last = stage.index == self.chain.last
        value = z_objective(stage.group, z, target, prior, self.mu, last, self.s.loss)
        (z.grad,) = torch.autograd.grad(value, z)
        opt.step()

    def _decoupled_z_step(self, stage: _Stage, prior: torch.Tensor | None) -> None:
        """1-term / 2-term: this stage's coordinates alone, neighbours held fixed."""
        new = torch.empty_like(stage.z)
        for rows in self._chunks():
            z = stage.z[rows].clone().requires_grad_()
            opt = self._z_optimizer(z, self.s.z_lr[stage.index])
            p = None if prior is None else prior[rows]
            for _ in range(self.s.z_iters[stage.index]):
                self._z_update(stage, z, opt, stage.target[rows], p)
            new[rows] = z.detach()
        stage.z = new

    def _coupled_z_step(self) -> None:
        """All coordinates jointly: each iteration ``f_l(z_l)`` goes up and ``z_l`` down the
        chain, then every stage steps from the iterate all of them started the iteration with."""
        last = self.chain.last
        for rows in self._chunks():
            n = rows.stop - rows.start
            live = [(st, st.z[rows].clone().requires_grad_()) for st in self.stages if st.index]
            opts = [self._z_optimizer(z, self.s.z_lr[st.index]) for st, z in live]
            if self.chain.holds(0):  # f_0(x) does not change during the Z-step: sent once
                self.chain.send("prior", 0, 1, self._forward(self.stages[0], rows))
            first_prior = self._recv("prior", 0, 1, n) if self.chain.holds(1) else None
            for _ in range(self.s.z_iters[-1]):  # the same for every group (see settings)
                for stage, z in live:
                    self._send_iterate(stage, z)
                for (stage, z), opt in zip(live, opts, strict=True):
                    i = stage.index
                    prior = first_prior if i == 1 else self._recv("prior", i - 1, i, n)
                    target = stage.target[rows] if i == last else self._recv("iterate", i + 1, i, n)
                    self._z_update(stage, z, opt, target, prior)
            for stage, z in live:
                stage.z[rows] = z.detach()

    @torch.no_grad()
    def _send_iterate(self, stage: _Stage, z: torch.Tensor) -> None:
        """Coupled: ``f_l(z_l)`` to the next stage, ``z_l`` (its target) to the previous one."""
        if stage.index < self.chain.last:
            self.chain.send("prior", stage.index, stage.index + 1, stage.group(z))
        if stage.index > 1:
            self.chain.send("iterate", stage.index, stage.index - 1, z)

    def _recv(self, channel: str, src: int, dst: int, n: int | None = None) -> torch.Tensor:
        """A tensor of coordinates at the boundary between stages ``src`` and ``dst``."""
        boundary = max(src, dst)
        return self.chain.recv(channel, src, dst, self._shape(boundary, n), device=self.ctx.device)

    def _chunks(self) -> Iterator[slice]:
        n, b = len(self.x), self.s.z_batch
        for start in range(0, n, b):
            yield slice(start, min(n, start + b))

    def _exchange_targets(self) -> None:
        """The new ``z_l`` becomes group ``l-1``'s target."""
        for stage in self.stages:
            if stage.index > 0:
                self.chain.send("target", stage.index, stage.index - 1, stage.z)
        for stage in self.stages:
            if stage.index < self.chain.last:
                stage.target = self._recv("target", stage.index + 1, stage.index)

    def after_epoch(self, train_loss: float) -> None:
        """µ schedule: grow when the training loss plateaus or rises."""
        if train_loss > (1 - self.s.mu_tol) * self.previous:
            self.mu *= self.s.mu_growth
        self.previous = train_loss


OnEpoch = Callable[[int, float, float], None]  # (epoch, seconds of MAC epochs so far, train loss)


@dataclass
class _Progress:
    """What the epoch loop carries from epoch to epoch: seconds in MAC epochs, the last loss."""

    spent: float = 0.0
    train_loss: float = math.nan
    train_acc: float = math.nan


def _checkpoint(mac: MAC, progress: _Progress) -> RankState:
    """This rank's state for a pause: its groups, their W-step optimizers (the Z-step's start
    afresh every epoch), the coordinates and targets of its stages, µ and the loop's progress.
    A training resumed with another µ0 (``mu``) keeps the growth of µ so far (see
    :func:`trainers.checkpointing.rescaled`)."""
    device = mac.ctx.device

    def get() -> dict[str, Any]:
        coordinates = {st.index: (st.z, st.target) for st in mac.stages}
        mu = (mac.mu, mac.previous, mac.s.mu)
        return {"mu": mu, "coordinates": coordinates, "progress": asdict(progress)}

    def put(values: Mapping[str, Any]) -> None:
        mu, mac.previous, mu0 = values["mu"]
        mac.mu = rescaled(mu, mu0, mac.s.mu)
        for st in mac.stages:
            z, target = values["coordinates"][st.index]
            st.z, st.target = z if z is None else z.to(device), target.to(device)
        vars(progress).update(values["progress"])

    parts = {f"w_optimizer{st.index}": st.optimizer for st in mac.stages}
    return RankState(mac.ctx, mac.split, parts, get, put)


def fit(
    params: Mapping[str, Any], trial: Trial, on_epoch: OnEpoch | None = None
) -> dict[str, float]:
    """MAC on the worker's ranks; ``on_epoch`` (for benchmarks) is called after every epoch.
    Every stage ends an epoch with its messages received (the targets' exchange and the
    layer-serial loss), so the chain stops together after any epoch the search stops, and a
    paused run saves each rank's stages then (:func:`_checkpoint`)."""
    params = TABLE.read(params)
    if params["split"] is None and params["modules"] is None:
        params = TABLE.read({**params, "split": 1})
    ctx = setup(params, trial)
    data = load_data(params)  # every stage works on all samples
    start = time.perf_counter()
    split = split_model(ctx, params, data, CHANNELS)
    mac = MAC(ctx, params, split, data)
    run = _Progress()
    loop = Epochs(ctx, mac.s.epochs, _checkpoint(mac, run))
    for epoch in loop:
        t0 = time.perf_counter()
        mac.epoch(epoch)
        run.spent += time.perf_counter() - t0
        loss, run.train_acc = evaluate(split, data.x_train, data.y_train, data.task, ctx.device)
        if not math.isfinite(loss):
            raise FloatingPointError(f"MAC diverged in epoch {epoch}: train_loss={loss}")
        run.train_loss = loss
        mac.after_epoch(loss)  # µ of the next epoch before this one ends: a pause saves it
        loop.end(epoch, loss)
        if on_epoch is not None:
            on_epoch(epoch, run.spent, loss)
    from mpi4py import MPI

    epoch_time = ctx.trial.comm.allreduce(run.spent / ctx.epochs_run, op=MPI.MAX)
    return finish(
        ctx,
        split,
        data,
        run.train_loss,
        time.perf_counter() - start,
        train_acc=run.train_acc,
        epoch_time=epoch_time,
        mu=mac.mu,
        groups=float(split.chain.stages),
    )


def _train(params: Values, trial: Trial) -> dict[str, float]:
    return fit(params, trial)


train = Trainer("mac", PARTS, (*LAYER_METRICS, "train_acc", "epoch_time", "mu", "groups"), _train)
