"""Pausing and resuming a training: what a paused training saves and how a resumed one is
restored, and the epoch loop (:class:`Epochs`) that pauses, resumes or stops it when the search
says so.

Population-based training resumes a paused training (its own or a copy of another one's)
with other params. The training goes on from its saved state with the params it resumes
with (``docs/pbt_trainers.md`` says the same for users):

* the optimizer's hyperparameters (``lr``, ``momentum``, ``nesterov``, ``weight_decay``;
  MAC's ``w_lr``, AuxNet's ``aux_lr``) on its saved buffers, moments and step counts
  (:func:`load_optimizer`);
* the learning-rate schedule (``schedule``, ``warmup_steps``, ``min_lr``, ``gamma``) at its
  saved step, from the new base rate (:func:`load_schedule`);
* ``dropout``, ``shuffle``, and the methods' own knobs, read afresh from the params, except:
  DASO's adapted B and S stay unless ``global_sync_period`` or ``stale_steps`` changed (then
  the new values replace them); MAC's µ keeps the growth it had, from the new ``mu``
  (:func:`rescaled`); OIALR's ``delay`` and AB's ``ab_warmup``, ``ab_steps``,
  ``ab_rebound`` may change only where they leave the pause on the same side of the
  switch to low rank, or in the same phase (ConfigError otherwise);
* params declared :attr:`trainers.params.Param.structural` must keep their values, as must
  the worker's ranks (:class:`Epochs` raises ConfigError naming the first that differs):
  the data, the model but ``dropout``, ``optimizer``, ``epochs``, ``batch_size``, ``split``
  and ``modules``, and EASGD's ``method``, DASO's ``node_size``, OIALR's
  ``full_rank_first``/``full_rank_last``, AB's ``ab_group_size``,
  ``ab_full_rank_first``/``ab_full_rank_last``, MAC's ``w_optimizer``, AuxNet's
  ``method``, ``auxnet``, ``aux_filters``, ``aux_blocks``. ``device`` and ``backend`` may
  differ.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

import torch
from torch import nn

from propagator import ConfigError

from .framework import Context
from .params import Values


class Checkpointed(Protocol):
    """A trainer's state beyond the epoch count and the random generators: its model,
    optimizer, schedule, step counters and method state (what a paused training needs to go
    on exactly as if it had never stopped)."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


class Attributes:
    """Named attributes of ``obj`` (counters, plain values, tensors) as a
    :class:`Checkpointed` part. A tensor is loaded onto the device of the one it replaces
    (checkpoints hold CPU copies)."""

    def __init__(self, obj: Any, *names: str) -> None:
        self._obj, self._names = obj, names

    def state_dict(self) -> dict[str, Any]:
        return {name: getattr(self._obj, name) for name in self._names}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for name in self._names:
            value, now = state[name], getattr(self._obj, name)
            if isinstance(now, torch.Tensor) and isinstance(value, torch.Tensor):
                value = value.to(now.device)
            setattr(self._obj, name, value)


class TrainerState:
    """What a data-parallel trainer checkpoints: its model, optimizer and learning-rate
    schedule, the steps taken (:attr:`t`), the last epoch's :attr:`train_loss`, the worker
    collectives' ``bytes_sent``, and the method's own ``parts`` (each :class:`Checkpointed`).

    The parts are loaded first, so that a method which replaces layers (low-rank factors)
    rebuilds them before the model's tensors are loaded into them; the optimizer's parameters
    are saved by their names in the model, so it finds them again whatever their order.
    """

    def __init__(
        self,
        ctx: Context,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        schedule: torch.optim.lr_scheduler.LambdaLR,
        /,
        **parts: Checkpointed,
    ) -> None:
        self.ctx, self.model, self.optimizer, self.schedule = ctx, model, optimizer, schedule
        self.parts = parts
        self.t = 0
        self.train_loss = math.nan

    def state_dict(self) -> dict[str, Any]:
        names = {id(p): name for name, p in self.model.named_parameters()}
        return {
            "parts": {name: part.state_dict() for name, part in self.parts.items()},
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "optimized": [[names[id(p)] for p in g["params"]] for g in self.optimizer.param_groups],
            "schedule": self.schedule.state_dict(),
            "t": self.t,
            "train_loss": self.train_loss,
            "bytes_sent": self.ctx.comm.bytes_sent,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Load ``state``; the optimizer and the schedule go on with the hyperparameters they
        were built with (:func:`load_optimizer`, :func:`load_schedule`)."""
        for name, part in self.parts.items():
            load_part(part, state["parts"][name])
        self.model.load_state_dict(state["model"])
        params = dict(self.model.named_parameters())
        for group, names in zip(self.optimizer.param_groups, state["optimized"], strict=True):
            group["params"] = [params[name] for name in names]
        load_optimizer(self.optimizer, state["optimizer"])
        load_schedule(self.schedule, state["schedule"])
        self.t, self.train_loss = state["t"], state["train_loss"]
        self.ctx.comm.bytes_sent = state["bytes_sent"]


def load_optimizer(optimizer: torch.optim.Optimizer, state: Mapping[str, Any]) -> None:
    """Load a paused training's optimizer state (momentum buffers, Adam's moments and step
    counts) into ``optimizer``, which keeps the hyperparameters it was built with: those of the
    params the training resumes with. ``load_state_dict`` alone would bring back the saved
    ones (every key of a param group but its parameters).

    Raises:
        ConfigError: the state is another optimizer's (its groups have other keys).
    """
    built = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
    for hyper, saved in zip(built, state["param_groups"], strict=True):
        if hyper.keys() != saved.keys() - {"params"}:
            raise ConfigError(
                f"parameter 'optimizer': a paused training's optimizer state does not fit "
                f"{type(optimizer).__name__}: it resumes only with the optimizer it was paused with"
            )
    optimizer.load_state_dict(state)
    for group, hyper in zip(optimizer.param_groups, built, strict=True):
        group.update(hyper)


def load_schedule(schedule: torch.optim.lr_scheduler.LambdaLR, state: Mapping[str, Any]) -> None:
    """Load a paused training's schedule (after its optimizer, :func:`load_optimizer`): it goes
    on at its saved step with the factor of the params it was built with, from their base
    learning rate (each group's ``initial_lr``), and each group's ``lr`` becomes what it gives
    there. ``load_state_dict`` alone would keep the saved base and rate."""
    schedule.load_state_dict(state)
    groups = schedule.optimizer.param_groups
    schedule.base_lrs = [group["initial_lr"] for group in groups]
    # LambdaLR.get_lr's expression: with unchanged params, the saved rates bit for bit
    for group, factor, base in zip(groups, schedule.lr_lambdas, schedule.base_lrs, strict=True):
        group["lr"] = base * factor(schedule.last_epoch)
    schedule._last_lr = [group["lr"] for group in groups]  # what get_last_lr() gives


def load_part(part: Checkpointed, state: Mapping[str, Any]) -> None:
    """Load a trainer's checkpointed part; an optimizer or a schedule (after its optimizer)
    keeps the resuming params' hyperparameters (:func:`load_optimizer`,
    :func:`load_schedule`)."""
    if isinstance(part, torch.optim.Optimizer):
        load_optimizer(part, state)
    elif isinstance(part, torch.optim.lr_scheduler.LambdaLR):
        load_schedule(part, state)
    else:
        part.load_state_dict(state)


def rescaled(value: float, start: float, new_start: float) -> float:
    """A value a method adapts during training (MAC's µ), which started at ``start``, for a
    training that resumes with ``new_start``: the same factor from the new start (and
    ``value`` itself, bit for bit, when the start is unchanged)."""
    return value if new_start == start else new_start * (value / start)


class Epochs:
    """A trainer's epoch loop, which ends early when the search says so, and is paused and
    resumed from checkpoints when the search pauses it.

    Iterating gives the epochs ``0 .. count - 1``. After each, the trainer calls :meth:`end`
    with the value to report (the validation loss; MAC's training loss): it is reported as step
    ``epoch + 1`` (steps count from 1, so a pruner's first rung, step 1, is the first epoch),
    and, unless it was the last epoch, ``trial.should_stop()`` is asked. When that says stop
    (a pruner, the step budget, the time limit), the iteration ends after this epoch and the
    trainer returns its metrics for the model as it is, with ``epochs_run`` the epochs it ran.

    With ``state``, a stop that pauses the training (``trial.paused``) first saves a checkpoint
    of this rank: the epochs run, the random generators' states and ``state.state_dict()``
    (tensors copied to the CPU), with the worker's ranks and the structural params' values.
    A trial that resumes the training (``trial.resumed``) checks that it shares those, loads
    the rest back before the first epoch, and the iteration starts at the epoch after the
    pause (with the trial's own params: see the module docstring).

    ``should_stop`` is answered by the worker's first rank and broadcast, so every rank must
    call :meth:`end` at the same epochs, idle ranks of a chain included, and only when no
    message between ranks is in flight (the end of an epoch): then every rank leaves the loop
    after the same epoch and none waits for a message that is never sent.

    Args:
        ctx: the rank's context (its trial; :attr:`Context.epochs_run` is kept up to date).
        count: the epochs to run when nothing stops them (``epochs``).
        state: the trainer's state, for pausing and resuming (``None``: a pause is a stop).
    """

    def __init__(self, ctx: Context, count: int, state: Checkpointed | None = None) -> None:
        self._ctx = ctx
        self.count = count
        self.stopped = False
        self._state = state

    def __iter__(self) -> Iterator[int]:
        for epoch in range(self._restore(), self.count):
            if self.stopped:
                return
            yield epoch

    def end(self, epoch: int, value: float) -> None:
        """Epoch ``epoch`` (from 0) is over: report ``value`` and ask whether to go on."""
        trial = self._ctx.trial
        self._ctx.epochs_run = epoch + 1
        trial.report(epoch + 1, value)
        # Not after the last epoch: the training is complete, and a pruner judging that step
        # (a rung at the last epoch) would record a finished evaluation as pruned.
        if epoch + 1 < self.count:
            self.stopped = trial.should_stop()
        if self.stopped and self._state is not None and trial.paused:
            rng, trainer = _rng_states(self._ctx.device), to_cpu(self._state.state_dict())
            structure = self._structure()
            trial.save({"epoch": epoch + 1, "rng": rng, "trainer": trainer, "structure": structure})

    def _structure(self) -> dict[str, Any]:
        """What a resumed training must share with the paused one: the worker's ranks and the
        params declared structural (:meth:`trainers.params.Values.structural`)."""
        params = self._ctx.params
        fixed = params.structural() if isinstance(params, Values) else {}
        return {"ranks": self._ctx.size, "params": fixed}

    def _restore(self) -> int:
        """The first epoch to run: after the pause, for a resumed training.

        Raises:
            ConfigError: the training resumes on other ranks or with another value of a
                structural param than it was paused with.
        """
        if self._state is None or (saved := self._ctx.trial.restore()) is None:
            return 0
        if "structure" in saved:  # not in checkpoints written before it was saved
            _same_structure(saved["structure"], self._structure())
        self._state.load_state_dict(saved["trainer"])
        _set_rng_states(saved["rng"], self._ctx.device)
        self._ctx.epochs_run = saved["epoch"]
        return saved["epoch"]


def _same_structure(paused: Mapping[str, Any], now: Mapping[str, Any]) -> None:
    if paused["ranks"] != now["ranks"]:
        raise ConfigError(
            f"a training paused on {paused['ranks']} ranks cannot resume on {now['ranks']}"
        )
    for name in sorted(paused["params"].keys() | now["params"].keys()):
        before, after = paused["params"].get(name), now["params"].get(name)
        if before != after:
            raise ConfigError(
                f"parameter {name!r}: a paused training resumes only with the value it was "
                f"paused with ({before!r}), got {after!r}"
            )


def to_cpu(state: Any) -> Any:
    """``state`` with every tensor in it (in dicts, lists, tuples) copied to the CPU."""
    if isinstance(state, torch.Tensor):
        return state.detach().to("cpu", copy=True)
    if isinstance(state, Mapping):
        return {k: to_cpu(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(to_cpu(v) for v in state)
    return state


def _rng_states(device: torch.device) -> dict[str, Any]:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return {"torch": torch.get_rng_state(), "cuda": cuda}


def _set_rng_states(states: Mapping[str, Any], device: torch.device) -> None:
    torch.set_rng_state(states["torch"])
    if device.type == "cuda" and states["cuda"] is not None:
        torch.cuda.set_rng_state(states["cuda"], device)
