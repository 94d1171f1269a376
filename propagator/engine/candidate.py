"""One candidate on one rank: decoded, evaluated ``repeats`` times with the worker's other
ranks (see :mod:`.crew`), and combined into the outcome its record holds."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from ..pruners import rung_values
from .context import RunContext
from .crew import Crew
from .evaluation import Outcome, Stopping, Trial, evaluate
from .records import Kind, Status

_EVALUATED = int(Kind.EVALUATED)
_ALONE = (Status.FAILED, Status.PAUSED)  # a candidate's outcome is its repeat's


@dataclass(frozen=True)
class Evaluated:
    """A candidate's evaluation on this rank, the same in status on every rank of its worker.

    Attributes:
        outcome: the worker's outcome (on a follower only its status and ``stop`` mean
            anything).
        start, end: seconds since the search started.
        reports: every ``trial.report`` of every repeat, in turn (each spent a step).
        judged: the first repeat's reports, which the pruner judged (the record's rungs).
    """

    outcome: Outcome
    start: float
    end: float
    reports: list[tuple[int, float]]
    judged: list[tuple[int, float]]

    @property
    def times(self) -> tuple[float, float]:
        return self.start, self.end


def run_candidate(
    ctx: RunContext,
    crew: Crew,
    record_id: int,
    genes: np.ndarray,
    stopping: Stopping | None = None,
    paused: Evaluated | None = None,
) -> Evaluated | None:
    """Evaluate a candidate ``repeats`` times (collective over the worker's ranks).

    Repeats stop at the first that does not succeed: a failure fails the candidate; one
    stopped early (the pruner judges only the first repeat; the step budget or the time limit
    any) makes it pruned, with the mean of the repeats that completed. The first repeat may
    be paused instead (its training saved by every rank): the candidate is then paused.

    ``paused``: the candidate is a paused training, resumed: its first repeat continues from
    its checkpoint, after the reports ``paused`` holds (none on a follower).

    Returns:
        ``None`` when the step budget was spent before the first repeat could start: nothing
        ran, so there is nothing to record.
    """
    params = ctx.settings.params_of(ctx.space, genes)
    start = time.time() - ctx.t0 if paused is None else paused.start
    repeats, limit = ctx.settings.repeats, ctx.settings.trial_timeout
    outcomes: list[Outcome] = []
    reports: list[tuple[int, float]] = []
    judged: list[tuple[int, float]] = []
    cut: str | None = None
    for repeat in range(repeats):
        if stopping is not None and (cut := stopping.start(repeat)) is not None:
            if repeat == 0:
                return None
            break
        prior = paused.judged if paused is not None and repeat == 0 else None
        trial = Trial(
            record_id,
            ctx.comms.trial,
            ctx.worker,
            ctx.island,
            ctx.run_seed,
            stopping,
            repeat,
            ctx.checkpoints,
            prior,
            ctx.report_watch if crew.leads else None,
        )
        began = time.time()
        outcome = evaluate(
            ctx.objective, params, trial, ctx.settings.metric, ctx.pass_trial, crew.leads
        )
        if stopping is not None:
            stopping.finish()
        if crew.leads:  # the leader's clock decides
            outcome = _in_time(outcome, time.time() - began, limit)
        outcome = crew.settle(outcome, record_id, genes, start)
        if trial.paused and crew.leads:  # every rank has saved its shard, or never will
            outcome = _paused(outcome, ctx, record_id, trial.stopped)
        outcomes.append(outcome)
        reports += trial.reports
        judged = judged if repeat else trial.reports
        if outcome.status != Status.OK or outcome.stop:
            break
    # A follower's values never count: only its status, the worker's, does.
    combined = _combined(outcomes, repeats, ctx.settings.metric, cut) if crew.leads else outcome
    return Evaluated(combined, start, time.time() - ctx.t0, reports, judged)


def _paused(outcome: Outcome, ctx: RunContext, record_id: int, why: str) -> Outcome:
    """A paused repeat: paused if every rank saved its training, else pruned (it cannot be
    resumed)."""
    if outcome.status != Status.PRUNED:
        return outcome
    if ctx.checkpoints.complete(record_id, ctx.layout.ranks_per_worker):
        return replace(outcome, status=Status.PAUSED, error=why)
    return replace(
        outcome,
        error=f"stopped early: {why}; but it saved no checkpoint (trial.save), so it cannot "
        "be resumed",
    )


def _in_time(outcome: Outcome, seconds: float, limit: float | None) -> Outcome:
    """A failure, if the evaluation ran past its time limit without stopping (one told to
    stop, by the limit or a pruner, and that did is recorded as it stopped)."""
    if limit is None or seconds <= limit or outcome.status != Status.OK:
        return outcome
    return Outcome(
        Status.FAILED,
        float("nan"),
        outcome.metrics,
        f"timed out: it ran {seconds:.1f} s, longer than trial_timeout = {limit:g} s "
        "(check trial.should_stop() after each step to stop in time)",
    )


def _combined(
    outcomes: list[Outcome], repeats: int, metric: str | tuple[str, ...] | None, cut: str | None
) -> Outcome:
    """The candidate's outcome from its repeats' (see :func:`run_candidate`); ``cut``: why a
    repeat after the last of ``outcomes`` could not start."""
    last = outcomes[-1]
    if repeats == 1 or last.status in _ALONE or last.stop or last.mistake:
        return last
    complete = [o for o in outcomes if o.status == Status.OK]
    if len(complete) == repeats:
        return _averaged(complete, metric)
    where = f"before repeat {len(outcomes) + 1}" if cut else f"in repeat {len(outcomes)}"
    why = f"stopped early: {cut}" if cut else last.error
    note = f"{why} ({where} of {repeats})"
    if not complete:
        return replace(last, error=note)
    return replace(_averaged(complete, metric), status=Status.PRUNED, error=note)


def _averaged(outcomes: list[Outcome], metric: str | tuple[str, ...] | None) -> Outcome:
    """The successful repeats as one outcome: the mean of every numeric metric, with each
    optimized one's spread as ``<metric>_std``, and ``repeats``, how many there were."""
    values = np.array([np.atleast_1d(o.row_values) for o in outcomes])  # repeats × objectives
    names = metric if isinstance(metric, tuple) else (metric or "value",)
    mean, std = values.mean(axis=0), values.std(axis=0)
    metrics: dict = dict(zip(names, mean.tolist(), strict=True))
    if all(o.metrics is not None for o in outcomes):
        for key, first in outcomes[0].metrics.items():
            column = [o.metrics.get(key) for o in outcomes]
            if isinstance(first, float) and all(isinstance(v, float) for v in column):
                metrics[key] = float(np.mean(column))
    metrics |= {f"{n}_std": float(s) for n, s in zip(names, std, strict=True)}
    metrics["repeats"] = len(outcomes)
    several = tuple(mean.tolist()) if len(names) > 1 else None
    return Outcome(Status.OK, float(mean[0]), metrics, None, values=several)


def wire_row(
    ctx: RunContext,
    record_id: int,
    generation: int,
    status: int,
    times: tuple[float, float],
    value: float | tuple[float, ...],
    genes: np.ndarray,
    reports: list[tuple[int, float]] | tuple = (),
    judged: list[tuple[int, float]] | None = None,
    lineage: tuple[int, int] = (-1, -1),
) -> tuple:
    """This worker's record of an evaluation, as a tuple in wire-field order: ``step`` is the
    last reported one, the rung values those of ``judged`` (default: ``reports``), and with
    PBT the ``lineage`` (parent, member)."""
    w, step = ctx.worker, reports[-1][0] if reports else -1
    row = (record_id, generation, ctx.island, w, w, status, _EVALUATED, step, *times, value, genes)
    settings = ctx.settings
    if settings.pruner is not None:
        judged = reports if judged is None else judged
        row = (*row, rung_values(judged, settings.pruner.steps()))
    if settings.pbt is not None:
        row = (*row, *lineage)
    return row
