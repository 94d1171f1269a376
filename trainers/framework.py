"""What every trainer shares: set-up on a worker's ranks, optimizers and schedules, batches,
evaluation and the metrics every trainer reports.

A trainer is a function ``train(params, trial) -> dict`` registered under the entry-point group
``propagate.trainers`` (see ``pyproject.toml``), so a search file can say ``objective: easgd``.
``params`` holds the searched values and the search file's ``fixed`` values alike. Its epoch
loop, and what a paused training saves and a resumed one restores (with the params that may
change between PBT segments), are :mod:`trainers.checkpointing`'s.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from propagator import ConfigError, Trial

from .collectives import BACKENDS, Collectives, MPICollectives, local_rank, make_collectives
from .data import DATA, Data
from .models import MODEL
from .params import Table, choice, flag, integer, real

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "step", "exponential")
DEVICES = ("auto", "cpu", "cuda")

RUNTIME = Table(
    "runtime",
    (
        choice(
            "device",
            "auto",
            "auto: one GPU per node-local rank if CUDA is available, else the CPU",
            DEVICES,
        ),
        choice(
            "backend",
            None,
            "collectives: mpi (mpi4py; GPU tensors staged through host memory) or torch "
            "(gloo on CPU, NCCL on GPU)",
            BACKENDS,
            derived="mpi on CPU, torch on GPU",
        ),
    ),
)
OPTIMIZER = Table(
    "optimizer",
    (
        choice("optimizer", "sgd", "the optimizer", OPTIMIZERS),
        real("lr", 0.05, "learning rate", ">= 0"),
        real("momentum", 0.0, "sgd: momentum", "[0, 1)"),
        flag("nesterov", False, "sgd: Nesterov momentum (with momentum > 0)"),
        real("weight_decay", 0.0, "weight decay (L2; decoupled for adamw)", ">= 0"),
    ),
).mark_structural("optimizer")
SCHEDULE = Table(
    "schedule",
    (
        choice("schedule", "constant", "learning-rate schedule after the warm-up", SCHEDULES),
        integer("warmup_steps", 0, "steps of linear warm-up", ">= 0"),
        real("min_lr", 0.0, "cosine: the final learning rate", ">= 0"),
        real(
            "gamma",
            None,
            "step: factor at 1/3 and 2/3 of the run; exponential: factor per step",
            "> 0",
            derived="0.1 for step, 0.999 for exponential",
        ),
    ),
)
LOOP = Table(
    "loop",
    (
        integer("epochs", 5, "passes over the training set", ">= 1"),
        integer("batch_size", 64, "samples per step over the worker's ranks", ">= 1"),
        flag("shuffle", True, "shuffle the training set every epoch"),
    ),
).mark_structural("epochs", "batch_size")
# the parts of a data-parallel trainer (baseline, daso, oialr, ab), in the order the docs use
DATA_PARALLEL = (DATA, MODEL, OPTIMIZER, SCHEDULE, LOOP, RUNTIME)


@dataclass
class Context:
    """One rank's view of a trial: its device, the worker's collectives, a seed shared by
    the worker's ranks, and the epochs run so far (set by
    :class:`trainers.checkpointing.Epochs`)."""

    params: Mapping[str, Any]
    trial: Trial
    device: torch.device
    comm: Collectives
    seed: int
    epochs_run: int = 0

    @property
    def rank(self) -> int:
        return self.comm.rank

    @property
    def size(self) -> int:
        return self.comm.size


def setup(params: Mapping[str, Any], trial: Trial) -> Context:
    """Device, seeds and collectives of :data:`RUNTIME`'s params on the worker of ``trial``."""
    p = RUNTIME.read(params)
    device = _device(p["device"])
    if device.type == "cpu":
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    backend = p["backend"] or ("mpi" if device.type == "cpu" else "torch")
    comm = make_collectives(trial.comm, device, backend)
    torch.manual_seed(trial.seed)
    return Context(params, trial, device, comm, trial.seed)


def _device(choice: str) -> torch.device:
    """The CPU, or this rank's GPU: one per node-local rank (ranks beyond the GPUs share)."""
    if choice == "cpu" or (choice == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError("parameter 'device': cuda was asked for, but CUDA is not available")
    device = torch.device("cuda", local_rank() % torch.cuda.device_count())
    torch.cuda.set_device(device)
    return device


def sync_parameters(model: nn.Module, comm: Collectives) -> None:
    """Start every rank from rank 0's weights (and buffers)."""
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            comm.broadcast_(tensor.data, root=0)


def flat_gradients(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.grad is not None])


def set_flat_gradients(model: nn.Module, flat: torch.Tensor) -> None:
    offset = 0
    for p in model.parameters():
        if p.grad is not None:
            n = p.grad.numel()
            p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
            offset += n


def allreduce_gradients(model: nn.Module, comm: Collectives) -> None:
    """Average the gradients over the ranks in one bucket (one collective per step)."""
    if comm.size > 1:
        flat = flat_gradients(model)
        set_flat_gradients(model, comm.allreduce_(flat))


def average_gradients_on_host(model: nn.Module, comm: MPICollectives) -> None:
    """Average the gradients over the ranks of an mpi4py communicator beside the worker's
    collectives (a DASO node, an AB group), staged on the CPU whatever the worker's backend."""
    if comm.size > 1:
        flat = flat_gradients(model)
        set_flat_gradients(model, comm.allreduce_(flat.cpu()).to(flat.device))


def make_optimizer(params: Mapping[str, Any], parameters: Any) -> torch.optim.Optimizer:
    """The optimizer :data:`OPTIMIZER`'s params describe, for ``parameters``."""
    p = OPTIMIZER.read(params)
    lr, wd = p["lr"], p["weight_decay"]
    if p["optimizer"] == "sgd":
        momentum = p["momentum"]
        nesterov = p["nesterov"] and momentum > 0
        return torch.optim.SGD(
            parameters, lr, momentum=momentum, nesterov=nesterov, weight_decay=wd
        )
    if p["optimizer"] == "adam":
        return torch.optim.Adam(parameters, lr, weight_decay=wd)
    return torch.optim.AdamW(parameters, lr, weight_decay=wd)


def make_schedule(
    params: Mapping[str, Any], optimizer: torch.optim.Optimizer, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """:data:`SCHEDULE`'s schedule over ``total_steps`` after the linear warm-up."""
    p = SCHEDULE.read(params)
    name, warmup = p["schedule"], p["warmup_steps"]
    base = optimizer.param_groups[0]["lr"]
    floor = p["min_lr"] / base if base else 0.0
    gamma = p["gamma"] if p["gamma"] is not None else (0.1 if name == "step" else 0.999)
    span = max(1, total_steps - warmup)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = min(1.0, (step - warmup) / span)
        if name == "cosine":
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))
        if name == "step":
            return gamma ** int(3 * t) if t < 1 else gamma**2
        if name == "exponential":
            return gamma ** (step - warmup)
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def steps_per_epoch(ctx: Context, data: Data, batch_size: int) -> tuple[int, int]:
    """(steps, per-rank batch): the same number of steps on every rank, or collectives would
    wait forever; ``batch_size`` is the global batch over the worker's ranks."""
    from mpi4py import MPI

    per_rank = max(1, batch_size // ctx.size)
    shortest = ctx.trial.comm.allreduce(len(data.x_train), op=MPI.MIN)
    return max(1, shortest // per_rank), per_rank


def batches(
    data: Data, per_rank: int, steps: int, epoch: int, seed: int, shuffle: bool = True
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``steps`` batches of this rank's shard; the shuffle seed is the same on every rank."""
    for idx in batch_indices(len(data.x_train), per_rank, steps, epoch, seed, shuffle):
        yield data.x_train[idx], data.y_train[idx]


def batch_indices(
    n: int, per_rank: int, steps: int, epoch: int, seed: int, shuffle: bool = True
) -> Iterator[torch.Tensor]:
    """The sample indices of :func:`batches` (for trainers that keep per-sample state)."""
    if shuffle:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1009 + epoch))
    else:
        order = torch.arange(n)
    for i in range(steps):
        yield order[i * per_rank : (i + 1) * per_rank]


def loss_function(task: str) -> nn.Module:
    return nn.CrossEntropyLoss() if task == "classification" else nn.MSELoss()


@contextmanager
def evaluation_mode(*modules: nn.Module) -> Iterator[None]:
    """The modules in evaluation mode (no dropout, batch norm's running statistics), each
    back in its own mode on exit."""
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(modules, modes, strict=True):
            m.train(mode)


@torch.no_grad()
def evaluate(model: nn.Module, data: Data, device: torch.device) -> tuple[float, float]:
    """(validation loss, accuracy); accuracy is NaN for regression."""
    with evaluation_mode(model):
        out = model(data.x_val.to(device))
    y = data.y_val.to(device)
    loss = float(loss_function(data.task)(out, y))
    acc = float((out.argmax(1) == y).float().mean()) if data.task == "classification" else math.nan
    return loss, acc


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(all parameters, trainable ones)."""
    total = sum(p.numel() for p in model.parameters())
    return total, sum(p.numel() for p in model.parameters() if p.requires_grad)


def finish(
    ctx: Context, model: nn.Module, data: Data, train_loss: float, seconds: float, **extra: float
) -> dict[str, float]:
    """The metrics every trainer returns (the value on the worker's rank 0 counts)."""
    val_loss, val_acc = evaluate(model, data, ctx.device)
    return metrics(ctx, (val_loss, val_acc), train_loss, seconds, count_parameters(model), **extra)


# what :func:`metrics` returns, besides a trainer's own extra values
METRICS = (
    "val_loss",
    "val_acc",
    "train_loss",
    "train_time",
    "bytes_sent",
    "parameters",
    "trainable_share",
    "epochs_run",
)


def metrics(
    ctx: Context,
    validation: tuple[float, float],
    train_loss: float,
    seconds: float,
    parameters: tuple[int, int],
    **extra: float,
) -> dict[str, float]:
    """The metrics dict from (val loss, val acc) and (all parameters, trainable ones), with
    ``epochs_run`` (fewer than ``epochs`` when the search stopped the run early); raises
    ``FloatingPointError`` when the validation loss is not finite."""
    val_loss, val_acc = validation
    total, trainable = parameters
    out = {
        "val_loss": val_loss,
        "val_acc": val_acc,
        "train_loss": train_loss,
        "train_time": seconds,
        "bytes_sent": float(ctx.comm.bytes_sent),
        "parameters": float(total),
        "trainable_share": trainable / total if total else 1.0,
        "epochs_run": float(ctx.epochs_run),
    }
    out.update(extra)
    if not math.isfinite(val_loss):
        raise FloatingPointError(f"training diverged: val_loss={val_loss}")
    return out
