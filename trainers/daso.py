"""``daso``: Distributed, Asynchronous and Selective Optimization (Coquelin's thesis, Ch. 3;
see ``reference/methods/daso_oialr_ab_propulate.md`` §1).

The worker's ranks form "nodes" of ``node_size`` ranks. Two levels of communication:

* node-local: the gradients are averaged over the node after every backward pass;
* global: every ``B`` steps one *global group* (the ranks with the same index on every node,
  chosen round-robin from one sync to the next) averages its **parameters**. The sum is
  started non-blocking on a copy and received ``S`` steps later, merged with the parameters
  the rank has reached by then by the stale-state merge of Eq. 3.2
  (:func:`stale_merge`), and the merged parameters are broadcast from that group's member to
  the rest of its node.

Training runs in three phases: warm-up and cool-down epochs sync globally and blocking after
every step (B = 1, S = 0); the epochs between are the cycling phase, with B and S adapted
when the training loss plateaus (``adapt_sync``).

Params (:data:`DASO`, with defaults and ranges in the README):

* ``node_size`` [the real node: ranks sharing memory]: ranks per node; must divide the
  worker's ranks, so every global group has one rank per node. Set it to simulate nodes when
  all ranks run on one machine (nodes are then blocks of consecutive ranks).
* ``global_sync_period`` B and ``stale_steps`` S: steps between global syncs and steps
  between sending and receiving one (0 <= S <= B); B = 4, S = 1 is the thesis's production
  setting (§1.2).
* ``warmup_epochs``, ``cooldown_epochs``: blocking epochs at the start and the end (Heat uses
  4 and 4 for 90 ImageNet epochs; one each suits runs of a few epochs). If they cover every
  epoch, all syncs are blocking.
* ``adapt_sync``: adapt B and S in the cycling phase; false keeps them constant, as in the
  thesis's B/S study (Table 3.1).
* ``stability_level`` and ``patience``: the loss has plateaued when ``patience`` cycling
  epochs in a row fail to improve on the best worker-mean training loss by more than this
  fraction.
* ``max_sync_period``: B after a plateau at B = 1.
* ``sixteen_bit``: send the parameters as bfloat16 (2 bytes each) instead of float32.
* the baseline's (data, model, optimizer, schedule, loop, runtime).

Metrics: the baseline's, plus ``bytes_local`` (gradient all-reduces and the broadcasts after
global syncs), ``bytes_global`` (parameters sent in global syncs) and ``global_syncs`` (syncs
of the worker). ``bytes_sent`` = ``bytes_local`` + ``bytes_global`` + rank 0's initial
broadcast of the weights, all for the worker's rank 0. Like the rest of the framework, the
scalars that keep ranks in step (the step count, one loss per cycling epoch) are not counted.

Choices where the reference is ambiguous or silent, and why:

* P in Eq. 3.2 is the size of the sending global group (the number of nodes), not the number
  of all GPUs: the sum runs over the P parameter sets that group sends, and only with that P
  do the weights 2S/(2S+P) and P x 1/(2S+P) add up to one (Heat does the same).
* The parameters "after S - 1 steps" that are merged are those the rank holds when the sum
  arrives, S local steps after the send; the merge completes step t + S. A sync still in
  flight when a blocking phase begins (or training ends) is received then, with S the steps
  actually taken since it was sent.
* bfloat16, not float16: the thesis's DASO used BF16; it keeps float32's exponent range, so
  parameters cannot overflow and need no scaling. MPI has no bfloat16 type to sum, so the 16-bit
  words are all-gathered (``Iallgather``) and summed in float32 by every member, identically
  and without rounding the partial sums; the payload a rank sends is still 2 bytes a
  parameter. float32 transfers use ``Iallreduce``.
* Adaptation follows Heat's DASO (the thesis says only "dynamically adjusted"): on a plateau,
  B halves and S drops by one (to no less than 1, unless it is 0) while B > 1; a plateau at
  B = 1 resets B to ``max_sync_period`` and S to a quarter of it (at least 1). S never exceeds
  B. The global group that syncs rotates round-robin from one sync to the next, as in Heat. Heat's
  skipping of node-local syncs is left out: the thesis syncs locally after every step.
* Node-local and global traffic go through mpi4py sub-communicators of ``trial.comm`` on host
  memory; only the initial broadcast uses the ``backend`` collectives.
* With one node there is no one to sync with globally, so there are no global syncs (Eq. 3.2
  with P = 1 would only pull the parameters back to their own stale copy). Buffers (batch-norm
  statistics) and optimizer state (momentum) stay per rank: the thesis averages parameters
  only.
* Each rank trains on its shard; the model evaluated is rank 0's, identical on every node
  after a cool-down epoch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from propagator import ConfigError, Trial

from .checkpointing import Attributes, Epochs, TrainerState
from .collectives import MPICollectives
from .data import load_data
from .framework import (
    DATA_PARALLEL,
    METRICS,
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

DASO = Table(
    "daso",
    (
        integer(
            "node_size",
            None,
            "ranks per node (simulated nodes: blocks of consecutive ranks)",
            ">= 1",
            derived="the real nodes (ranks sharing memory)",
        ),
        integer("global_sync_period", 4, "B: steps between global syncs", ">= 1"),
        integer(
            "stale_steps", 1, "S: steps from sending a global sync to merging it (<= B)", ">= 0"
        ),
        integer("warmup_epochs", 1, "blocking epochs at the start (B = 1, S = 0)", ">= 0"),
        integer("cooldown_epochs", 1, "blocking epochs at the end", ">= 0"),
        flag("adapt_sync", True, "adapt B and S when the training loss plateaus"),
        real(
            "stability_level", 0.05, "relative improvement below which the loss plateaus", "(0, 1)"
        ),
        integer("patience", 2, "cycling epochs without improvement that make a plateau", ">= 1"),
        integer("max_sync_period", 8, "B after a plateau at B = 1", ">= 1"),
        flag("sixteen_bit", True, "send parameters as bfloat16 instead of float32"),
    ),
).mark_structural("node_size")


def stale_merge(
    local: torch.Tensor, global_sum: torch.Tensor, stale_steps: int, senders: int
) -> torch.Tensor:
    """Eq. 3.2: ``(2S w_local + sum_i w_i) / (2S + P)``.

    Args:
        local: the rank's current parameters, S steps after it sent its copy.
        global_sum: the sum of the P parameter sets the global group sent.
        stale_steps: S, the steps between sending and receiving.
        senders: P, the size of the global group.
    """
    weight = 2 * stale_steps
    return (weight * local + global_sum) / (weight + senders)


@dataclass(frozen=True)
class Settings:
    node_size: int | None
    period: int
    stale: int
    warmup_epochs: int
    cooldown_epochs: int
    adapt: bool
    stability_level: float
    patience: int
    max_period: int
    sixteen_bit: bool


def settings(params: Mapping[str, Any], ranks: int) -> Settings:
    """:data:`DASO`'s params, checked; ``ranks`` is the worker's size."""
    p = DASO.read(params)
    node_size, period, stale = p["node_size"], p["global_sync_period"], p["stale_steps"]
    if node_size is not None and ranks % node_size:
        raise ConfigError(f"node_size must divide the worker's {ranks} ranks, got {node_size}")
    if stale > period:
        raise ConfigError(f"stale_steps must be at most global_sync_period ({period}), got {stale}")
    return Settings(
        node_size=node_size,
        period=period,
        stale=stale,
        warmup_epochs=p["warmup_epochs"],
        cooldown_epochs=p["cooldown_epochs"],
        adapt=p["adapt_sync"],
        stability_level=p["stability_level"],
        patience=p["patience"],
        max_period=p["max_sync_period"],
        sixteen_bit=p["sixteen_bit"],
    )


def split_nodes(comm: MPI.Comm, node_size: int | None) -> tuple[MPI.Comm, MPI.Comm]:
    """(node-local, global) communicators: ranks of one node, and the ranks with this rank's
    index on every node. ``node_size`` None: the real nodes, which must be of equal size."""
    from mpi4py import MPI

    if node_size is None:
        local = comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.rank)
        if comm.allreduce(local.size, op=MPI.MIN) != comm.allreduce(local.size, op=MPI.MAX):
            local.Free()
            raise ConfigError("DASO needs nodes with equal numbers of ranks; set node_size")
    else:
        local = comm.Split(comm.rank // node_size, key=comm.rank)
    return local, comm.Split(local.rank, key=comm.rank)


@dataclass
class _InFlight:
    """One global sync between send and receive; request and buffers only on the senders
    (no request: it has completed, e.g. before a checkpoint, and the buffers hold the sum)."""

    sent_at: int
    due: int
    root: int
    sixteen_bit: bool  # how it was sent, which a resumed training's sixteen_bit may not be
    request: MPI.Request | None = None
    buffers: tuple[np.ndarray, ...] = ()


class GlobalSync:
    """Parameter averaging over one global group at a time, merged by Eq. 3.2 and broadcast
    to the node.

    Args:
        local: the node's collectives (counts the broadcasts as node-local bytes).
        group: the global group of this rank.
        sixteen_bit: send bfloat16 instead of float32.
    """

    def __init__(self, local: MPICollectives, group: MPI.Comm, sixteen_bit: bool) -> None:
        self.local, self.group, self.sixteen_bit = local, group, sixteen_bit
        self.bytes_sent = 0
        self.count = 0
        self.pending: _InFlight | None = None

    @property
    def enabled(self) -> bool:
        return self.group.size > 1

    def send(self, weights: torch.Tensor, done: int, stale: int) -> None:
        """Start a sync of ``weights`` (the parameters after ``done`` steps), due ``stale``
        steps later."""
        flight = _InFlight(done, done + stale, self.count % self.local.size, self.sixteen_bit)
        self.count += 1
        if self.local.rank == flight.root:
            self._start(flight, weights.detach().cpu())
        self.pending = flight

    def _start(self, flight: _InFlight, weights: torch.Tensor) -> None:
        from mpi4py import MPI

        if flight.sixteen_bit:
            words = weights.to(torch.bfloat16).view(torch.int16).numpy()
            gathered = np.empty((self.group.size, words.size), dtype=np.int16)
            flight.request = self.group.Iallgather(words, gathered)
            flight.buffers = (words, gathered)  # both must live until the request completes
        else:
            words = weights.clone().numpy()
            flight.request = self.group.Iallreduce(MPI.IN_PLACE, words, op=MPI.SUM)
            flight.buffers = (words,)
        self.bytes_sent += words.nbytes

    def _sum(self, flight: _InFlight) -> torch.Tensor:
        if flight.request is not None:
            flight.request.Wait()
        received = torch.from_numpy(flight.buffers[-1])
        return received.view(torch.bfloat16).float().sum(0) if flight.sixteen_bit else received

    def receive(self, weights: torch.Tensor, done: int) -> torch.Tensor:
        """The node's parameters after the pending sync: merged on its sender, broadcast."""
        flight, self.pending = self.pending, None
        merged = weights.detach().cpu().contiguous()
        if self.local.rank == flight.root:
            stale = done - flight.sent_at
            merged = stale_merge(merged, self._sum(flight), stale, self.group.size)
        return self.local.broadcast_(merged, root=flight.root)

    def state_dict(self) -> dict[str, Any]:
        """The syncs and bytes so far and the pending sync, completed: every member of its
        group has started it (they pause after the same step), and what it received is saved,
        so a resumed training merges it when it falls due, as if never paused."""
        flight, pending = self.pending, None
        if flight is not None:
            if flight.request is not None:
                flight.request.Wait()
                flight.request = None
            pending = {
                "sent_at": flight.sent_at,
                "due": flight.due,
                "root": flight.root,
                "sixteen_bit": flight.sixteen_bit,
                "received": flight.buffers[-1] if flight.buffers else None,
            }
        return {"count": self.count, "bytes_sent": self.bytes_sent, "pending": pending}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.count, self.bytes_sent = state["count"], state["bytes_sent"]
        p = state["pending"]
        self.pending = None
        if p is not None:
            buffers = () if p["received"] is None else (p["received"],)
            bits = p.get("sixteen_bit", self.sixteen_bit)
            self.pending = _InFlight(p["sent_at"], p["due"], p["root"], bits, None, buffers)


class SyncSchedule:
    """B and S of the cycling phase, adapted when the loss plateaus (see the module
    docstring).

    A paused training keeps its adapted B and S when it resumes with the
    ``global_sync_period`` and ``stale_steps`` it was paused with; other values (a PBT
    segment's) replace them, and adaptation goes on from there.
    """

    STATE = ("period", "stale", "_since_sync", "_best", "_bad_epochs")  # what a pause saves

    def __init__(self, s: Settings) -> None:
        self.s = s
        self.period, self.stale = s.period, s.stale
        self._since_sync = 0
        self._best, self._bad_epochs = math.inf, 0

    def state_dict(self) -> dict[str, Any]:
        given = (self.s.period, self.s.stale)
        return {name: getattr(self, name) for name in self.STATE} | {"given": given}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for name in self.STATE:
            setattr(self, name, state[name])
        given = (self.s.period, self.s.stale)
        if tuple(state.get("given", given)) != given:
            self.period, self.stale = given

    def tick(self) -> bool:
        """One cycling step done; True when a global sync is due."""
        self._since_sync += 1
        if self._since_sync < self.period:
            return False
        self._since_sync = 0
        return True

    def epoch_end(self, loss: float) -> None:
        if not self.s.adapt:
            return
        if loss < self._best * (1 - self.s.stability_level):
            self._best, self._bad_epochs = loss, 0
            return
        self._best = min(self._best, loss)
        self._bad_epochs += 1
        if self._bad_epochs >= self.s.patience:
            self._bad_epochs = 0
            self._on_plateau()

    def _on_plateau(self) -> None:
        if self.period > 1:
            self.period //= 2
            self.stale = min(self.period, self.stale - 1 if self.stale > 1 else self.stale)
        else:
            self.period = self.s.max_period
            self.stale = max(1, self.s.max_period // 4)
        self._since_sync = 0


def _global_step(
    model: nn.Module, sync: GlobalSync, schedule: SyncSchedule, done: int, blocking: bool
) -> None:
    """The global part of a step, after the local update (``done`` steps so far)."""
    if not sync.enabled:
        return
    if sync.pending is not None and (blocking or done >= sync.pending.due):
        _receive(model, sync, done)
    if blocking or schedule.tick():
        stale = 0 if blocking else schedule.stale
        sync.send(parameters_to_vector(model.parameters()), done, stale)
        if stale == 0:
            _receive(model, sync, done)


def _receive(model: nn.Module, sync: GlobalSync, done: int) -> None:
    with torch.no_grad():
        weights = parameters_to_vector(model.parameters())
        merged = sync.receive(weights, done).to(weights.device)
        vector_to_parameters(merged, model.parameters())


def _train(params: Values, trial: Trial) -> dict[str, float]:
    ctx = setup(params, trial)
    s = settings(params, ctx.size)
    data = load_data(params, ctx.rank, ctx.size)
    model = build_model(params, data.input_shape, data.n_outputs).to(ctx.device)
    sync_parameters(model, ctx.comm)
    epochs = params["epochs"]
    local_comm, global_comm = split_nodes(trial.comm, s.node_size)
    local = MPICollectives(local_comm)
    sync = GlobalSync(local, global_comm, s.sixteen_bit)
    schedule = SyncSchedule(s)
    steps, per_rank = steps_per_epoch(ctx, data, params["batch_size"])
    optimizer = make_optimizer(params, model.parameters())
    lr_schedule = make_schedule(params, optimizer, epochs * steps)
    loss_of = loss_function(data.task)
    state = TrainerState(
        ctx,
        model,
        optimizer,
        lr_schedule,
        sync=sync,
        sync_schedule=schedule,
        local=Attributes(local, "bytes_sent"),
    )
    start = time.perf_counter()
    loop = Epochs(ctx, epochs, state)
    for epoch in loop:
        blocking = epoch < s.warmup_epochs or epoch >= epochs - s.cooldown_epochs
        total = 0.0
        for x, y in batches(data, per_rank, steps, epoch, ctx.seed, params["shuffle"]):
            optimizer.zero_grad()
            loss = loss_of(model(x.to(ctx.device)), y.to(ctx.device))
            loss.backward()
            average_gradients_on_host(model, local)
            optimizer.step()
            lr_schedule.step()
            state.t += 1
            _global_step(model, sync, schedule, state.t, blocking)
            total += loss.item()
        state.train_loss = total / steps
        if not blocking:
            schedule.epoch_end(trial.comm.allreduce(state.train_loss) / ctx.size)
        loop.end(epoch, evaluate(model, data, ctx.device)[0])
    if sync.pending is not None:
        _receive(model, sync, state.t)
    local_comm.Free()
    global_comm.Free()
    ctx.comm.bytes_sent += local.bytes_sent + sync.bytes_sent
    return finish(
        ctx,
        model,
        data,
        state.train_loss,
        time.perf_counter() - start,
        bytes_local=float(local.bytes_sent),
        bytes_global=float(sync.bytes_sent),
        global_syncs=float(sync.count),
    )


train = Trainer(
    "daso",
    (*DATA_PARALLEL, DASO),
    (*METRICS, "bytes_local", "bytes_global", "global_syncs"),
    _train,
)
