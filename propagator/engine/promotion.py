"""A worker's paused trainings, and which of them to resume (ASHA's promotion).

A training that the pruner pauses at a rung saves its state (``trial.save``) and is recorded
as paused. The worker that paused it keeps it in its :class:`PausedTrainings` and alone may
resume it: no two workers can resume the same training, and no message is needed to settle
that. Each time the worker is free, before it starts a new configuration, it resumes the
paused training that now passes its rung (by rank, :meth:`PrunerSpec.cutoff` of the rung's
values the worker knows of now, or by the pruner's second opinion, its curve), from the
highest rung down and the best loss first (Li et al., 2020). A resumed training is judged
again at the following rungs, and its record replaces the paused one (the same id;
:func:`..records.latest`).

Checkpoints take disk: each worker keeps its paused trainings' within its share of
``checkpoint_disk``, deleting the longest-paused ones first; those are recorded as pruned.
On resume of the run each worker takes over the paused trainings of its island that it
evaluated (or, when that worker is gone, one in turn), whose checkpoints are complete.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from ..pruners import RungView
from .candidate import Evaluated
from .context import RunContext
from .evaluation import Outcome
from .records import Status
from .stopping import Rungs

_log = logging.getLogger("propagate")
_META = "paused.json"  # what resuming needs besides the shards: the reports and the rung


@dataclass
class Paused:
    """One paused training.

    Attributes:
        record_id: its evaluation id.
        genes: its configuration.
        evaluated: its evaluation up to the pause (the reports, the outcome recorded).
        bracket, rung: where it was paused.
        loss: its loss at that rung.
        size: bytes its checkpoint takes.
        opinion: the pruner's second opinion (its curve) and the best complete loss and last
            step it was given for (asked again only when they change).
        ranked: whether its rank may promote it (:meth:`PrunerSpec.ranked`; asked once).
    """

    record_id: int
    genes: np.ndarray
    evaluated: Evaluated
    bracket: int
    rung: int
    loss: float
    size: int
    opinion: tuple[float | None, int | None, bool] | None = None
    ranked: bool | None = None


# records what became of a paused training that will not be resumed (it replaces the paused one)
Replace = Callable[[int, np.ndarray, Evaluated], None]


class PausedTrainings:
    """A worker's paused trainings, in the order they were paused.

    Args:
        ctx: the rank's context (the pruner, the checkpoints, the disk limit).
        rungs: the island's rung values.
        record: records a paused training's end when it is not resumed after all.
    """

    def __init__(self, ctx: RunContext, rungs: Rungs, record: Replace) -> None:
        self._ctx = ctx
        self._pruner = ctx.settings.pruner
        self._rungs = rungs
        self._checkpoints = ctx.checkpoints
        self._limit = ctx.settings.checkpoint_disk * 2.0**30 / ctx.layout.n_workers
        self._replace = record
        self._paused: dict[int, Paused] = {}

    def __len__(self) -> int:
        return len(self._paused)

    def keep(
        self,
        record_id: int,
        genes: np.ndarray,
        evaluated: Evaluated,
        where: tuple[int, int, float],
    ) -> None:
        """Keep a training paused at ``where`` (bracket, rung, loss); deletes the oldest
        checkpoints past the disk limit, those trainings becoming pruned."""
        size = self._checkpoints.size(record_id)
        self._add(Paused(record_id, genes, evaluated, *where, size))
        while sum(p.size for p in self._paused.values()) > self._limit and len(self._paused) > 1:
            oldest = self._paused.pop(next(iter(self._paused)))
            self._checkpoints.remove(oldest.record_id)
            _log.warning(
                "evaluation %d: its checkpoint (%.3g MB) is deleted to keep paused trainings "
                "within checkpoint_disk; it is recorded as pruned and will not be resumed",
                oldest.record_id,
                oldest.size / 1e6,
            )
            end = time.time() - self._ctx.t0
            self._replace(oldest.record_id, oldest.genes, pruned_for_disk(oldest, end))

    def next(self) -> Paused | None:
        """The paused training to resume now (removed from the list), or ``None``: the first,
        from the highest rung down and the best loss first, that passes its rung by rank
        (:meth:`PrunerSpec.cutoff`) or by the pruner's second opinion."""
        ranked = sorted(self._paused.values(), key=lambda p: (-p.rung, p.bracket, p.loss))
        cutoffs: dict[tuple[int, int], float] = {}
        for paused in ranked:
            where = (paused.bracket, paused.rung)
            if where not in cutoffs:
                cutoffs[where] = self._pruner.cutoff(self._rungs.sorted_at(*where))
            by_rank = paused.loss <= cutoffs[where] and self._ranked(paused)
            if by_rank or self._second_opinion(paused):
                return self._paused.pop(paused.record_id)
        return None

    def _ranked(self, paused: Paused) -> bool:
        if paused.ranked is None:
            paused.ranked = self._pruner.ranked(self.view(paused))
        return paused.ranked

    def _second_opinion(self, paused: Paused) -> bool:
        """The pruner's second opinion, asked again only when what it rests on changed."""
        key = (self._rungs.incumbent, self._rungs.horizon)
        if paused.opinion is None or paused.opinion[:2] != key:
            paused.opinion = (*key, self._pruner.second_opinion(self.view(paused)))
        return paused.opinion[2]

    def view(self, paused: Paused) -> RungView:
        """What the pruner judges a paused training by now: its rung against the values known
        there, less its own."""
        return self._rungs.view(
            paused.loss, paused.bracket, paused.rung, paused.evaluated.judged, counted=True
        )

    def take_over(self, stored: np.ndarray | None) -> None:
        """On resume of the run: take over this worker's paused trainings among its island's
        ``stored`` records; those that cannot be resumed are recorded as pruned."""
        if stored is None or not len(stored):
            return
        ctx = self._ctx
        mine, lost = taken_over(stored, ctx)
        for paused in mine:
            self._add(paused)
        for record_id, genes, why in lost:
            _log.warning("evaluation %d was paused, but %s: recorded as pruned", record_id, why)
            now = time.time() - ctx.t0
            outcome = Outcome(Status.PRUNED, np.nan, None, f"stopped early: paused, but {why}")
            self._replace(record_id, genes, Evaluated(outcome, now, now, [], []))

    def leave(self) -> None:
        """The search ends: paused trainings stay resumable with a run directory (a later
        session may resume them); without one their checkpoints are deleted."""
        left = list(self._paused.values())
        self._paused.clear()
        if self._ctx.run_dir is None:
            for paused in left:
                self._checkpoints.remove(paused.record_id)
        elif left:
            _log.info(
                "worker %d: %d paused training(s) stay resumable in a later session",
                self._ctx.worker,
                len(left),
            )

    def _add(self, paused: Paused) -> None:
        """Keep a paused training, what resuming it needs written next to its shards."""
        meta = {
            "reports": paused.evaluated.judged,
            "bracket": paused.bracket,
            "rung": paused.rung,
            "loss": paused.loss,
        }
        path = self._checkpoints.root / str(paused.record_id) / _META
        scratch = path.with_suffix(".tmp")
        scratch.write_text(json.dumps(meta))
        scratch.replace(path)
        self._paused[paused.record_id] = paused


def pruned_for_disk(paused: Paused, end: float) -> Evaluated:
    """A paused training whose checkpoint was deleted, as the pruned evaluation it becomes."""
    outcome = replace(
        paused.evaluated.outcome,
        status=Status.PRUNED,
        error="stopped early: paused, and its checkpoint was deleted to keep paused trainings "
        "within checkpoint_disk",
    )
    return replace(paused.evaluated, outcome=outcome, end=end)


def taken_over(
    rows: np.ndarray, ctx: RunContext
) -> tuple[list[Paused], list[tuple[int, np.ndarray, str]]]:
    """On resume of the run: the paused trainings among an island's stored ``rows`` (times in
    epoch seconds) that this worker takes over (those it evaluated or, when their worker is
    gone, one in turn), and those it can no longer resume (id, genes, why)."""
    workers = list(ctx.layout.island_workers(ctx.island))
    checkpoints, ranks = ctx.checkpoints, ctx.layout.ranks_per_worker
    mine, lost = [], []
    for row in rows[rows["status"] == int(Status.PAUSED)]:
        record_id, evaluated_by = int(row["id"]), int(row["worker"])
        owner = evaluated_by if evaluated_by in workers else workers[record_id % len(workers)]
        if owner != ctx.worker:
            continue
        genes = row["genes"].copy()
        meta_path = checkpoints.root / str(record_id) / _META
        if not meta_path.is_file() or not checkpoints.complete(record_id, ranks):
            lost.append((record_id, genes, "its checkpoint is missing or incomplete"))
            continue
        meta = json.loads(meta_path.read_text())
        reports = [(int(s), float(v)) for s, v in meta["reports"]]
        outcome = Outcome(Status.PAUSED, float(row["values"][0]), None, "paused")
        times = float(row["start"]) - ctx.t0, float(row["end"]) - ctx.t0
        where = int(meta["bracket"]), int(meta["rung"]), float(meta["loss"])
        evaluated = Evaluated(outcome, *times, reports, reports)
        mine.append(Paused(record_id, genes, evaluated, *where, checkpoints.size(record_id)))
    return mine, lost
