"""The loop the ``ddg`` and ``fr`` trainers share: a model cut into K modules on a chain of the
worker's ranks (:mod:`trainers.layer_parallel`), a sequential forward pass each iteration, and
a backward pass in which module ``k`` (0-based) learns from the sample of ``D_k = K - 1 - k``
iterations ago with the error gradient module ``k + 1`` sent one iteration earlier.

A method (:class:`Method`) decides only what a module keeps from its forward pass and which
graph it backpropagates through: DDG keeps the graph built with a snapshot of the weights
(:mod:`trainers.ddg`), FR keeps the input and replays it with the current weights
(:mod:`trainers.fr`). Everything else lives here once:

* Iteration ``t`` (global over epochs, ``T`` in all): for each held stage in chain order, take
  the input (the batch for stage 0, else the activation stage ``s - 1`` sent on channel
  ``act``), run the method's forward, send the output on; the last stage computes the loss.
  Then for each held stage: the last backpropagates the loss of the current sample; stage
  ``s < K - 1`` receives on channel ``grad`` the error gradient stage ``s + 1`` sent at
  iteration ``t - 1`` (there is one from ``t = D_s`` on; before that the stage skips its update,
  the thesis's zero gradient of Eq. 5.8), backpropagates it, steps its optimizer, and sends
  the gradient w.r.t. its input to stage ``s - 1``, except at ``t = T - 1``, whose gradient
  nobody would receive (an unmatched send would never complete).
* Every receive waits for a send that comes earlier in the sequential order (an activation of
  this iteration from the stage before, an error gradient of the previous iteration from the
  stage after), so the chain cannot deadlock, and the FIFO channels make one rank compute the
  same numbers as many. The pipeline runs on across epochs; the error gradients in flight at
  an epoch's end are received before the ranks meet for the evaluation (and used in the next
  iteration as always), so that no send is pending then.
* One optimizer and schedule per module (``make_optimizer`` / ``make_schedule``). The schedule
  steps every iteration, also when the module skips its update, so module ``k`` applies
  ``γ_t`` at iteration ``t`` as in Alg. 9. Weight decay is the optimizer's: it acts on the
  current weights, not the delayed ones (as a PyTorch implementation of the thesis would).
* Dropout draws from one random stream per stage (stage 0 continues the stream left after
  building the model, as the ``baseline`` trainer does), so the placement of stages on ranks
  does not change the numbers.
* Every rank loads the whole training set and iterates the same batches (every stage works on
  every sample); ``steps = len(x_train) // batch_size`` per epoch, so K = 1 is the
  ``baseline`` trainer on one rank.

Params shared by both trainers: :data:`PARTS` (the model, ``mlp`` or ``resnet``, which
:mod:`trainers.partition` cuts into ``modules`` or at ``split``; ``optimizer`` ``adam`` gives
Adam-DDG; ``batch_size`` is samples per iteration, every stage sees the whole batch; defaults
and ranges in the README).

Metrics besides :func:`trainers.layer_parallel.finish`'s (the same on every rank of the
worker, idle ranks included):

* ``epoch_time`` [s]: wall time of an epoch's iterations (evaluation excluded) on the chain's
  slowest rank, averaged over the epochs; the ranks start each epoch together (they meet
  before every evaluation). ``train_time`` is likewise the slowest rank's, from a common start.
* ``stored_activations`` [bytes]: peak, over the run, of the activations a rank keeps for a
  later backward pass (module inputs and the tensors autograd saved inside the modules, weights
  excluded), the largest over the worker's ranks (Table 6's quantity: DDG O(LK + K²), FR
  O(L + K²)).
* ``stored_weights`` [bytes]: peak size of the weight snapshots a rank keeps (DDG only).
* ``pipeline_bytes`` [bytes]: activations and error gradients all ranks of the worker sent
  during training (``bytes_sent`` is rank 0's and includes the evaluations).

Diagnostics and the barriers are plain MPI calls on ``trial.comm``, outside ``bytes_sent``.
"""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from torch import nn

from propagator import ConfigError, Trial

from .checkpointing import Epochs
from .collectives import wait
from .data import DATA, Data, load_data
from .framework import (
    LOOP,
    OPTIMIZER,
    RUNTIME,
    SCHEDULE,
    Context,
    batches,
    loss_function,
    make_optimizer,
    make_schedule,
    setup,
)
from .layer_parallel import (
    LAYER_METRICS,
    RankState,
    Split,
    Stateful,
    Streams,
    evaluate,
    finish,
    split_model,
)
from .params import join
from .partition import LAYERED_MODEL, PARTITION

if TYPE_CHECKING:
    from mpi4py import MPI

PARTS = (
    DATA,
    LAYERED_MODEL,
    OPTIMIZER,
    SCHEDULE,
    LOOP.replace("batch_size", doc="samples per iteration (every stage sees the whole batch)"),
    RUNTIME,
    PARTITION,
)
TABLE = join("decoupled", *PARTS)
METRICS = (
    *LAYER_METRICS,
    "epoch_time",
    "stored_activations",
    "stored_weights",
    "pipeline_bytes",
)

ACT, GRAD = "act", "grad"  # the chain's channels: activations forwards, error gradients back


@dataclass
class Stage:
    """One module held on this rank, with its optimizer.

    Attributes:
        index: the stage's place k in the chain (0-based).
        delay: D_k = K - 1 - k, the iterations between its forward and backward of a sample.
    """

    index: int
    delay: int
    group: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    names: list[str]
    weights: list[nn.Parameter]


@dataclass
class Graph:
    """One forward pass of a module, kept for its backward.

    Attributes:
        inputs: the module's input (a leaf; requires grad unless the module is the first).
        output: the module's output, with its graph.
        leaves: the weights the graph was built with: the live parameters or a snapshot.
        saved: bytes autograd saved inside the module, besides ``inputs`` and ``leaves``.
        snapshot: whether ``leaves`` are copies.
    """

    inputs: torch.Tensor
    output: torch.Tensor
    leaves: list[torch.Tensor]
    saved: int
    snapshot: bool

    @property
    def activation_bytes(self) -> int:
        return _nbytes(self.inputs) + self.saved

    @property
    def weight_bytes(self) -> int:
        return sum(_nbytes(w) for w in self.leaves) if self.snapshot else 0


class Method(Protocol):
    """What DDG and FR do differently."""

    def forward(self, stage: Stage, h: torch.Tensor) -> torch.Tensor:
        """The stage's output for this iteration's input ``h`` (with its graph on the last
        stage, whose loss is backpropagated at once); keeps what the backward needs."""
        ...

    def graph(self, stage: Stage) -> Graph:
        """The graph the stage learns from now: that of the sample of ``stage.delay``
        iterations ago."""
        ...

    def stored(self) -> tuple[int, int]:
        """(activation bytes, weight-snapshot bytes) kept for later backward passes."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """What the method keeps for later iterations, to pause at the end of an epoch."""
        ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Take back what :meth:`state_dict` gave, as tensors on the CPU."""
        ...


def record(
    stage: Stage, h: torch.Tensor, snapshot: bool, leaves: list[torch.Tensor] | None = None
) -> Graph:
    """A forward pass of ``stage`` on ``h`` with its graph, through a detached copy of the
    weights if ``snapshot`` (the live ones are updated in place before the backward comes):
    ``leaves`` if given (a snapshot taken before a pause), else a copy of the weights now."""
    h = h.detach().requires_grad_(stage.index > 0)
    if leaves is not None:
        pairs = zip(leaves, stage.weights, strict=True)
        leaves = [x.to(w.device).requires_grad_(w.requires_grad) for x, w in pairs]
    elif snapshot:
        leaves = [w.detach().clone().requires_grad_(w.requires_grad) for w in stage.weights]
    else:
        leaves = list(stage.weights)
    known = {_storage(t) for t in (h, *leaves)}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if _storage(t) not in known:
            saved[_storage(t)] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, _unpack):
        if snapshot:
            weights = dict(zip(stage.names, leaves, strict=True))
            out = torch.func.functional_call(stage.group, weights, (h,))
        else:
            out = stage.group(h)
    return Graph(h, out, leaves, sum(saved.values()), snapshot)


def _unpack(t: torch.Tensor) -> torch.Tensor:
    return t


def _storage(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def backprop(
    stage: Stage, graph: Graph, seed: torch.Tensor, grad: torch.Tensor | None, want_input: bool
) -> torch.Tensor | None:
    """Set the stage's weight gradients from ``seed`` (the loss, or the module output with
    the error gradient ``grad``); the gradient w.r.t. the module input if ``want_input``."""
    pairs = [(w, leaf) for w, leaf in zip(stage.weights, graph.leaves, strict=True)]
    pairs = [(w, leaf) for w, leaf in pairs if leaf.requires_grad]
    wanted = [leaf for _, leaf in pairs] + ([graph.inputs] if want_input else [])
    grads = torch.autograd.grad(seed, wanted, grad, allow_unused=True)
    for (w, _), g in zip(pairs, grads, strict=False):
        w.grad = g
    return grads[-1] if want_input else None


@contextmanager
def kept_buffers(module: nn.Module) -> Iterator[None]:
    """Restore the module's buffers (BatchNorm's running statistics) on exit."""
    saved = [(b, b.clone()) for b in module.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for b, copy in saved:
                b.copy_(copy)


@dataclass
class Fitted:
    """A finished (or stopped) run on this rank; :meth:`metrics` completes it."""

    ctx: Context
    data: Data
    split: Split
    train_loss: float
    seconds: float
    epoch_times: list[float]
    peaks: tuple[int, int]
    pipeline_bytes: int

    def state(self) -> list[dict[str, torch.Tensor] | None]:
        """Each stage's state dict where this rank holds it, else ``None``."""
        return [None if g is None else g.state_dict() for g in self.split.groups]

    def metrics(self) -> dict[str, float]:
        """The trainer's metrics, the same on every rank of the worker."""
        from mpi4py import MPI

        comm, chain = self.ctx.trial.comm, self.split.chain
        train_loss = comm.bcast(self.train_loss, root=chain.owner[chain.last])
        largest = np.array([self.seconds, *self.peaks, *self.epoch_times], dtype=np.float64)
        comm.Allreduce(MPI.IN_PLACE, largest, op=MPI.MAX)  # the chain's: its slowest rank's
        seconds, activations, weights = largest[:3]
        epoch_time = largest[3:].mean() if len(largest) > 3 else 0.0
        pipeline = comm.allreduce(self.pipeline_bytes, op=MPI.SUM)
        return finish(
            self.ctx,
            self.split,
            self.data,
            train_loss,
            float(seconds),
            epoch_time=float(epoch_time),
            stored_activations=float(activations),
            stored_weights=float(weights),
            pipeline_bytes=float(pipeline),
        )


@dataclass
class _Run:
    ctx: Context
    data: Data
    split: Split
    stages: list[Stage]
    method: Method
    streams: Streams
    total: int  # T, the iterations of the whole run
    loss_of: nn.Module
    loss: torch.Tensor | None = None
    peaks: list[int] = field(default_factory=lambda: [0, 0])
    inbox: dict[int, torch.Tensor] = field(default_factory=dict)  # error gradients received early
    t: int = 0  # iterations run
    epoch_times: list[float] = field(default_factory=list)
    sent: int = 0  # bytes of the pipeline's messages
    train_loss: float = float("nan")  # the last whole epoch's mean, where the last stage is

    def observe(self, extra: Graph | None = None) -> None:
        activations, weights = self.method.stored()
        if extra is not None:
            activations += extra.activation_bytes
            weights += extra.weight_bytes
        self.peaks = [max(self.peaks[0], activations), max(self.peaks[1], weights)]

    def checkpoint(self) -> RankState:
        """This rank's state for a pause at the end of an epoch: its modules, optimizers and
        schedules, the stages' random streams, the method's kept forward passes, the error
        gradients received early and the counters."""
        keys = ("t", "epoch_times", "sent", "train_loss", "peaks")
        parts: dict[str, Stateful] = {"streams": self.streams}
        for st in self.stages:
            parts |= {f"optimizer{st.index}": st.optimizer, f"schedule{st.index}": st.schedule}

        def get() -> dict[str, Any]:
            values = {key: getattr(self, key) for key in keys}
            return values | {"inbox": self.inbox, "method": self.method.state_dict()}

        def put(values: Mapping[str, Any]) -> None:
            for key in keys:
                setattr(self, key, values[key])
            self.inbox = {s: g.to(self.ctx.device) for s, g in values["inbox"].items()}
            self.method.load_state_dict(values["method"])

        return RankState(self.ctx, self.split, parts, get, put)


def fit(
    params: Mapping[str, Any],
    trial: Trial,
    method: Callable[[list[Stage]], Method],
    iterations: int | None = None,
) -> Fitted:
    """Train with ``method`` for the params' epochs (or only the first ``iterations``
    iterations), reporting the validation loss after each whole epoch, and stopping there
    when the search says so: the error gradients in flight are received by then
    (:func:`_collect`), so every stage leaves together and no send is left pending, and a
    paused run saves each rank's state then (:meth:`_Run.checkpoint`)."""
    params = TABLE.read(params)
    ctx = setup(params, trial)
    data = load_data(params)
    epochs, batch = params["epochs"], params["batch_size"]
    steps = len(data.x_train) // batch
    if steps == 0:
        raise ConfigError(f"batch_size={batch} exceeds the {len(data.x_train)} training samples")
    split = split_model(ctx, params, data, (ACT, GRAD))
    total = epochs * steps if iterations is None else min(iterations, epochs * steps)
    stages = _stages(params, split, epochs * steps)
    streams = Streams([s.index for s in stages], ctx.seed, ctx.device)
    run = _Run(ctx, data, split, stages, method(stages), streams, total, loss_function(data.task))
    shuffle = params["shuffle"]
    _wait_all(trial.comm)
    start = time.perf_counter()
    loop = Epochs(ctx, epochs, run.checkpoint())
    for epoch in loop:
        if run.t == total:
            break
        began, before = time.perf_counter(), ctx.comm.bytes_sent
        samples = batches(data, batch, min(steps, total - run.t), epoch, ctx.seed, shuffle)
        losses = [_iteration(run, run.t + i, x, y) for i, (x, y) in enumerate(samples)]
        run.t += len(losses)
        _collect(run, run.t - 1, batch)
        split.chain.flush()
        run.epoch_times.append(time.perf_counter() - began)
        run.sent += ctx.comm.bytes_sent - before
        if losses[0] is not None:
            run.train_loss = sum(losses) / len(losses)
        _wait_all(trial.comm)
        if len(losses) == steps:  # a stopped run reports no partial epoch
            loop.end(epoch, evaluate(split, data.x_val, data.y_val, data.task, ctx.device)[0])
    seconds = time.perf_counter() - start
    peaks = tuple(run.peaks)
    return Fitted(ctx, data, split, run.train_loss, seconds, run.epoch_times, peaks, run.sent)


def _wait_all(comm: MPI.Comm) -> None:
    """A barrier that sleeps instead of spinning (:func:`trainers.collectives.wait`): idle
    ranks (K < ranks) must not take the cores from the busy ones while they wait. It also
    starts the ranks' clocks together."""
    wait(comm.Ibarrier())


def _stages(params: Mapping[str, Any], split: Split, total_steps: int) -> list[Stage]:
    stages = []
    for s, group in split.held():
        named = list(group.named_parameters())
        optimizer = make_optimizer(params, [w for _, w in named])
        schedule = make_schedule(params, optimizer, total_steps)
        names, weights = [n for n, _ in named], [w for _, w in named]
        delay = split.chain.last - s
        stages.append(Stage(s, delay, group, optimizer, schedule, names, weights))
    return stages


def _iteration(run: _Run, t: int, x: torch.Tensor, y: torch.Tensor) -> float | None:
    """Iteration ``t`` on this rank's stages; the loss where this rank holds the last."""
    chain, loss = run.split.chain, None
    x, y = x.to(run.ctx.device), y.to(run.ctx.device)
    for stage in run.stages:
        s = stage.index
        h = x if s == 0 else chain.recv(ACT, s - 1, s, _shape(run, s, x), device=x.device)
        with run.streams.of(s):
            out = run.method.forward(stage, h)
        if s < chain.last:
            chain.send(ACT, s, s + 1, out)
        else:
            run.loss = run.loss_of(out, y)
            loss = run.loss.item()
    run.observe()
    for stage in run.stages:
        _learn(run, stage, t, x)
    return loss


def _learn(run: _Run, stage: Stage, t: int, x: torch.Tensor) -> None:
    chain, s = run.split.chain, stage.index
    if t < stage.delay:  # no error gradient has arrived yet: no update (Eq. 5.8's zero)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", re.escape("Detected call of `lr_scheduler.step()`"))
            stage.schedule.step()
        return
    delta = None
    if s < chain.last:
        delta = run.inbox.pop(s, None)
        if delta is None:
            delta = chain.recv(GRAD, s + 1, s, _shape(run, s + 1, x), device=x.device)
    with run.streams.of(s):
        graph = run.method.graph(stage)
    run.observe(graph)
    seed = run.loss if delta is None else graph.output  # the last stage's loss is its own
    grad_in = backprop(stage, graph, seed, delta, want_input=s > 0 and t < run.total - 1)
    stage.optimizer.step()
    stage.schedule.step()
    if grad_in is not None:
        chain.send(GRAD, s, s - 1, grad_in)


def _collect(run: _Run, t: int, n: int) -> None:
    """Receive now the error gradients the stages after this rank's sent at iteration ``t``
    for iteration ``t + 1``. At the end of an epoch they would otherwise still be in flight
    when the ranks meet for the evaluation, and a send large enough for MPI's rendezvous
    protocol would never complete (the receiver waits in the barrier, the sender in its
    flush). Receiving them early changes no number."""
    chain = run.split.chain
    for stage in run.stages:
        s = stage.index
        sent = s < chain.last and t >= stage.delay - 1 and t < run.total - 1  # see _learn
        if sent and s not in run.inbox:
            shape = run.split.batch_shape(s + 1, n)
            run.inbox[s] = chain.recv(GRAD, s + 1, s, shape, device=run.ctx.device)


def _shape(run: _Run, stage: int, x: torch.Tensor) -> tuple[int, ...]:
    return run.split.batch_shape(stage, len(x))
