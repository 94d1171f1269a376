"""Calling the objective: the trial handle it gets and how its result is classified."""

from __future__ import annotations

import difflib
import inspect
import math
import numbers
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..errors import ConfigError
from ..space import Space
from .records import Status

if TYPE_CHECKING:  # the store's package loads h5py: not for every objective's import
    from ..store.checkpoints import Checkpoints
    from .report_watch import ReportWatch

Objective = Callable[..., Any]
_MAX_ERROR_CHARS = 8000
PAUSED_PREFIX = "paused"  # a stop reason that pauses the training (see Trial.paused)
TIME_LIMIT_PREFIX = "its time limit"  # how the stop reason of trial_timeout begins


class Pruned(Exception):
    """Raise from the objective to stop an evaluation early: it is recorded as pruned, with
    its last reported value (as when :meth:`Trial.should_stop` said so and it returned)."""


class Stopping(Protocol):
    """How a trial learns that it should stop early (see :mod:`.stopping`)."""

    def start(self, repeat: int) -> str | None: ...

    def reported(self, trial: Trial, step: int, value: float) -> None: ...

    def decide(self, trial: Trial) -> str | None: ...

    def finish(self) -> None: ...


class Trial:
    """Handle passed to the objective with its params.

    Attributes:
        id: the evaluation id, unique in the run.
        comm: this worker's ranks (an mpi4py communicator; ``COMM_SELF`` for one rank per
            worker). Every rank of the worker gets the same params; the value returned on the
            worker's first rank counts.
        worker: worker index.
        island: island index.
        rank: this rank's index within the worker (``comm.rank``).
        stopped: why :meth:`should_stop` said stop (``None`` until it did).
        repeat: which of the search's ``repeats`` evaluations of these params this is
            (0, 1, ...; always 0 without repeats).
        resumed: this trial continues a paused training: :meth:`restore` gives the state it
            saved, and :attr:`reports` already holds what it reported before the pause.
    """

    __slots__ = (
        "_checkpoints",
        "_reports",
        "_run_seed",
        "_stopping",
        "_watch",
        "comm",
        "id",
        "island",
        "rank",
        "repeat",
        "resumed",
        "stopped",
        "worker",
    )

    def __init__(
        self,
        id: int,
        comm: Any,
        worker: int,
        island: int,
        run_seed: int,
        stopping: Stopping | None = None,
        repeat: int = 0,
        checkpoints: Checkpoints | None = None,
        resumed: Sequence[tuple[int, float]] | None = None,
        watch: ReportWatch | None = None,
    ) -> None:
        self.id = id
        self.repeat = repeat
        self.comm = comm
        self.worker = worker
        self.island = island
        self.rank = comm.rank
        self.stopped: str | None = None
        self.resumed = resumed is not None
        self._run_seed = run_seed
        self._reports: list[tuple[int, float]] = list(resumed or ())
        self._stopping = stopping
        self._checkpoints = checkpoints
        self._watch = watch  # the worker's first rank's: it warns about odd reports

    @property
    def seed(self) -> int:
        """A 32-bit seed for this evaluation, derived from the run seed, :attr:`id` and
        :attr:`repeat` (the same on every rank of the worker, different for every evaluation
        and every repeat)."""
        key = [self._run_seed, self.id] + ([self.repeat] if self.repeat else [])
        return int(np.random.SeedSequence(key).generate_state(1)[0])

    def report(self, step: int, value: float) -> None:
        """Record an intermediate value of the optimized metric, e.g. the validation loss
        after epoch ``step`` (steps count from 1; with ``budget.steps`` each report spends
        one step). A pruner compares it with other evaluations' reports at the same step,
        as a value of the metric: report the metric itself, in its units (a search that
        minimizes the loss and is reported the accuracy would stop its best trainings).

        Steps must increase within an evaluation: a step reported again, or one before the
        last, is ignored (the value first reported for a step stands; it spends no step),
        with a ``ReportWarning`` once per run. So are reports that run against the metric
        (see :mod:`propagator.engine.report_watch`)."""
        step, value = int(step), float(value)
        if self._reports and step <= self._reports[-1][0]:
            if self._watch is not None:
                self._watch.misstep(self.id, step, self._reports[-1][0])
            return
        self._reports.append((step, value))
        if self._stopping is not None:
            self._stopping.reported(self, step, value)

    def should_stop(self) -> bool:
        """Whether the evaluation should stop now and return what it has: the pruner found it
        hopeless at its last reported step (or pauses it: :attr:`paused`), the search's step
        budget is spent, or its time limit passed. Call it on every rank of the worker at the
        same points, after each :meth:`report` but the last (a training told to stop after its
        last step is recorded as stopped early): the decision is taken once, by the worker's
        first rank, and is the same on every rank, so ranks inside collectives stop together.
        Always ``False`` when the search sets no pruner, step budget or trial time limit."""
        if self.stopped is None and self._stopping is not None:
            self.stopped = self._stopping.decide(self)
        return self.stopped is not None

    @property
    def paused(self) -> bool:
        """:meth:`should_stop` said stop to *pause* this training (ASHA with promotion): it may
        be resumed later, from the state given to :meth:`save` before returning. Without a
        saved state a paused training cannot be resumed and is recorded as pruned."""
        return self.stopped is not None and self.stopped.startswith(PAUSED_PREFIX)

    def save(self, state: Any) -> None:
        """Save this rank's checkpoint of the training: a picklable object, e.g. a dict of
        tensors (on the CPU, to be restorable on another device) and plain values.

        Written atomically under the run directory (one file per rank of the worker; the last
        save counts), and removed once the evaluation is over unless it was paused. Call it
        when :attr:`paused` is set, before returning; saving more often costs only disk time.

        Raises:
            RuntimeError: the trial has no checkpoint store (a trial made outside a search).
        """
        if self._checkpoints is None:
            raise RuntimeError("this trial has no checkpoint store: it was not made by a search")
        self._checkpoints.save(self.id, self.rank, state)

    def restore(self) -> Any | None:
        """The state this rank saved before the training was paused, when this trial resumes
        it (:attr:`resumed`); ``None`` for a training that starts afresh. Continue from it
        and report the steps after the last one in :attr:`reports`."""
        if not self.resumed or self._checkpoints is None:
            return None
        return self._checkpoints.load(self.id, self.rank)

    @property
    def reports(self) -> list[tuple[int, float]]:
        """The ``(step, value)`` pairs reported so far (before a pause too)."""
        return list(self._reports)


@dataclass(frozen=True)
class Outcome:
    """What one evaluation on one rank came to.

    Attributes:
        status: ok or failed.
        value: the optimized metric (NaN when failed).
        metrics: everything the objective returned (``None``: it returned a bare number).
        error: the failure message (with traceback) when failed.
        stop: the objective was interrupted (``KeyboardInterrupt``): the search must stop, and
            this evaluation is not recorded (it neither succeeded nor failed on its own).
        mistake: the search is set up wrong for what the objective returns (a dict but no
            metric): it must stop at once with ``error``, before any budget is spent.
        values: with several objectives, each one's value (``value`` is the first).
    """

    status: Status
    value: float
    metrics: dict[str, Any] | None
    error: str | None
    stop: bool = False
    mistake: bool = False
    values: tuple[float, ...] | None = None  # every objective's, with several (else value)

    @property
    def row_values(self) -> float | tuple[float, ...]:
        """What the record's ``values`` field holds (a failure's NaN fills every objective)."""
        return self.value if self.values is None else self.values


def check_objective(
    objective: Objective,
    space: Space,
    metric: str | tuple[str, ...] | None,
    mutable: Sequence[str] = (),
) -> None:
    """Let an objective that declares what it takes and returns check a search before any work.

    An objective may carry ``check_space(space)``, which raises :class:`ConfigError` for
    params it does not know (or values it cannot take), ``metrics``, the names of the
    values it returns, and ``structural``, the params a training cannot change midway (PBT's
    ``mutable`` may not name them); the trainers declare all three. Plain functions declare
    none.

    Raises:
        ConfigError: naming the parameter or metric, with the closest known name.
    """
    check = getattr(objective, "check_space", None)
    if callable(check):
        check(space)
    fixed = getattr(objective, "structural", ())
    for name in mutable:
        if name in fixed:
            raise ConfigError(
                f"pbt.mutable names {name!r}, which the objective cannot change during a "
                "training (its saved state depends on it)"
            )
    known = getattr(objective, "metrics", None)
    if not known:
        return
    if metric is None:
        raise ConfigError(
            f"the objective returns several values ({', '.join(known)}); set metric to the one "
            "to optimize"
        )
    for name in metric if isinstance(metric, tuple) else (metric,):
        if name not in known:
            close = difflib.get_close_matches(name, list(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"metric {name!r} is not a value the objective returns{hint} "
                f"(it returns {', '.join(known)})"
            )


def wants_trial(objective: Objective) -> bool:
    """Whether ``objective`` takes ``(params, trial)`` rather than just ``(params)``."""
    try:
        sig = inspect.signature(objective)
    except (TypeError, ValueError):
        return True
    positional = [
        p for p in sig.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    varargs = any(p.kind == p.VAR_POSITIONAL for p in sig.parameters.values())
    return varargs or len(positional) >= 2


def evaluate(
    objective: Objective,
    params: dict[str, Any],
    trial: Trial,
    metric: str | tuple[str, ...] | None,
    pass_trial: bool,
    counts: bool = True,
) -> Outcome:
    """Run the objective once and classify what came back. Never raises for its errors.

    ``SystemExit`` (``sys.exit`` or argparse inside the objective) and other exceptions are
    failed evaluations; ``KeyboardInterrupt`` (raised by the objective, or Ctrl-C where
    propagate does not handle signals) asks the search to stop. ``counts=False`` (a
    follower rank of a multi-rank worker, whose value does not count): whatever it returns is
    a success.
    """
    nothing = Outcome(Status.OK, math.nan, None, None)
    began = time.monotonic()
    try:
        returned = objective(params, trial) if pass_trial else objective(params)
    except Pruned:
        return _stopped(nothing, trial, "it raised pg.Pruned", time.monotonic() - began)
    except KeyboardInterrupt:
        return Outcome(Status.FAILED, math.nan, None, _trimmed(traceback.format_exc()), stop=True)
    except SystemExit as exc:
        return _failed(
            f"{traceback.format_exc()}the objective raised SystemExit({exc.code!r}) "
            "(sys.exit, or argparse parsing the command line inside the objective?); "
            "an objective must return or raise an exception"
        )
    except BaseException:
        return _failed(traceback.format_exc())
    if not counts:
        return nothing
    seconds = time.monotonic() - began
    if trial.stopped is None:
        outcome = classify(returned, metric)
        if trial._watch is not None and outcome.status == Status.OK:
            trial._watch.finished(trial.id, trial.reports, outcome.value)
        return outcome
    # A stopped evaluation may return nothing (its last report counts), but what it does
    # return must hold the metric: a pruned record must not hide a mistyped one.
    outcome = nothing if returned is None else classify(returned, metric)
    return _stopped(outcome, trial, trial.stopped, seconds)


def _stopped(outcome: Outcome, trial: Trial, why: str, seconds: float) -> Outcome:
    """An evaluation stopped early, after ``seconds``: pruned with what it returned (its
    last reported value if it returned nothing), or failed if what it returned is not a
    value. One its time limit stopped is pruned only with a value it returned (as a trial
    stopped by Ray Tune keeps its last result), and failed if it returned nothing."""
    if outcome.mistake or outcome.stop or outcome.status == Status.FAILED:
        return outcome
    if why.startswith(TIME_LIMIT_PREFIX):
        note = f"timed out after {seconds:.1f} s: {why}"
        if not math.isfinite(outcome.value):
            return _failed(f"{note}, and it returned no value", outcome.metrics)
        return replace(outcome, status=Status.PRUNED, error=f"{note}; it returned its value")
    value = outcome.value
    if not math.isfinite(value) and trial.reports:
        value = trial.reports[-1][1]
    if not math.isfinite(value):
        return _failed(f"stopped early ({why}) before reporting a value", outcome.metrics)
    return Outcome(Status.PRUNED, value, outcome.metrics, f"stopped early: {why}")


def classify(returned: Any, metric: str | tuple[str, ...] | None) -> Outcome:
    """A float, or a dict of values that holds ``metric``; with several metrics (a tuple), a
    dict that holds them all or a sequence of their values in order. Anything else is a
    failure."""
    if isinstance(metric, tuple):
        return _several(returned, metric)
    if type(returned) is float and math.isfinite(returned):
        return Outcome(Status.OK, returned, None, None)
    if isinstance(returned, Mapping):
        metrics = {str(k): _plain(v) for k, v in returned.items()}
        if metric is None:
            message = (
                f"the objective returns a dict (keys {list(metrics)}) but no metric is set: set "
                "metric to the name of the value to optimize (metric: in the search file, "
                "metric= in pg.search)"
            )
            return Outcome(Status.FAILED, math.nan, metrics, message, mistake=True)
        if metric not in metrics:
            close = difflib.get_close_matches(metric, list(metrics), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            return _failed(
                f"the objective returned no {metric!r} (it returned {list(metrics)}){hint}",
                metrics,
            )
        raw, value = returned.get(metric, metrics[metric]), metrics[metric]
    else:
        metrics, raw, value = None, returned, _plain(returned)
    if not isinstance(value, float):
        what = f"{metric!r} is" if metrics is not None else "the objective returned"
        return _failed(f"{what} {raw!r}, not a number; return a float or a dict of floats", metrics)
    if not math.isfinite(value):
        what = f"for {metric!r}" if metrics is not None else ""
        return _failed(f"the objective returned {value} {what}".rstrip(), metrics)
    return Outcome(Status.OK, value, metrics, None)


def _several(returned: Any, names: tuple[str, ...]) -> Outcome:
    if isinstance(returned, Sequence) and not isinstance(returned, str):
        if len(returned) != len(names):  # the search, not this evaluation, is wrong
            message = (
                f"the objective returned {len(returned)} values for the {len(names)} metrics "
                f"{list(names)}: return one value per metric, in the order of metric"
            )
            return Outcome(Status.FAILED, math.nan, None, message, mistake=True)
        returned = dict(zip(names, returned, strict=True))
    if not isinstance(returned, Mapping):
        return _failed(
            f"the objective returned {returned!r}; with several metrics {list(names)} return a "
            "dict that holds them, or a list of their values in that order"
        )
    values = []
    for name in names:
        one = classify(returned, name)
        if one.status != Status.OK:
            return one
        values.append(one.value)
    metrics = {str(k): _plain(v) for k, v in returned.items()}
    return Outcome(Status.OK, values[0], metrics, None, values=tuple(values))


def _plain(v: Any) -> Any:
    """Numbers (Python, numpy, 0-d arrays, torch scalars via ``item``) as float; other JSON
    scalars as they are; anything else as its ``repr``."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, numbers.Real):
        return float(v)
    if getattr(v, "ndim", None) == 0 and callable(getattr(v, "item", None)):
        return _plain(v.item())
    return repr(v)


def _failed(message: str, metrics: dict[str, Any] | None = None) -> Outcome:
    return Outcome(Status.FAILED, math.nan, metrics, _trimmed(message))


def _trimmed(message: str) -> str:
    if len(message) > _MAX_ERROR_CHARS:
        message = "...\n" + message[-_MAX_ERROR_CHARS:]
    return message.rstrip()


def error_headline(error: str | None) -> str:
    """The line of a failure message that says what went wrong.

    For a traceback that is the exception line after the last stack frame (its first line,
    ``Traceback (most recent call last):``, is the same for every failure); for any other
    message it is the first non-empty line.
    """
    if not error:
        return ""
    lines = error.splitlines()
    frames = [i for i, line in enumerate(lines) if line.startswith("  File ")]
    if frames:
        after = (line for line in lines[frames[-1] + 1 :] if line and not line[0].isspace())
        headline = next(after, None)
        if headline is not None:
            return headline
    return next((line for line in lines if line.strip()), "")
