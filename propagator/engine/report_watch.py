"""Warnings about what an objective reports with ``trial.report``: mistakes that would
silently mislead early stopping and the learning curves.

Three kinds, each warned once per run on each worker (a :class:`ReportWarning`; every
message starts with ``trial.report``, so
``warnings.filterwarnings("ignore", message="trial.report")`` silences them all):

- ``repeated``: a step reported again within one evaluation;
- ``backwards``: a step before the last one reported (both are ignored, see
  :meth:`~.evaluation.Trial.report`);
- ``against``: reports that run against the optimized metric, e.g. a search that minimizes
  ``loss`` while the objective reports its accuracy. A pruner reads reports as values of
  the metric, so it would stop the best trainings first.

The third is judged from completed evaluations with at least two reports each, at 10, 20,
40, ... up to ``_SAMPLE`` of them (a few looks, so that noise gets few chances to fire it):

- *direction*: in at least ``_AGAINST`` (3/4) of them the curve ends worse than it began,
  in the metric's direction, AND across them the last report and the returned value are
  ranked against each other (Spearman's rank correlation at most ``_ANTI``, -0.3). A
  training's curve improves, and ends near what it returns: reports of the metric give a
  strongly positive correlation however noisy the curves are; reports that run against it
  give a negative one. Either condition alone happens legitimately (a region of diverging
  trainings; an objective whose returned value is pure noise), both together hardly;
- *scale*: in at least ``_APART`` (9/10) of them the last report and the returned value
  differ by more than a factor of ``_FACTOR`` (10): e.g. an accuracy in percent reported,
  a loss returned. A curve-extrapolating pruner compares predicted final reports with the
  returned values of the best evaluations, so they must share their units.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np

_FIRST_LOOK, _SAMPLE = 10, 320  # completed evaluations at the first and the last look
_AGAINST = 0.75  # share of curves that end worse than they began
_ANTI = -0.3  # rank correlation of last reports and returned values at most
_APART = 0.9  # share of evaluations whose last report and returned value are far apart
_FACTOR = 10.0
_TINY = 1e-12  # values this close to 0 have no scale to compare
_SILENCE = "warnings.filterwarnings('ignore', message='trial.report') silences this"


class ReportWarning(UserWarning):
    """What the objective reports with ``trial.report`` looks wrong (see the module)."""


class ReportWatch:
    """One worker's look at the reports of one search (a session of a run).

    Args:
        metric: the optimized metric's name (the first, with several).
        direction: ``"minimize"`` or ``"maximize"`` (the first metric's).
    """

    def __init__(self, metric: str, direction: str) -> None:
        self._metric = metric
        self._direction = direction
        self._sign = 1.0 if direction == "minimize" else -1.0
        self._warned: set[str] = set()
        self._curves: list[tuple[float, float, float, int]] = []  # first, last, returned, id
        self._next_look = _FIRST_LOOK

    def misstep(self, record_id: int, step: int, last: int) -> None:
        """Evaluation ``record_id`` reported ``step`` after ``last`` (``step <= last``)."""
        kind = "repeated" if step == last else "backwards"
        said = "again" if step == last else f"after step {last}"
        self._warn(
            kind,
            f"trial.report: evaluation {record_id} reported step {step} {said}; its value is "
            "ignored (steps must increase within an evaluation: report each step once, "
            f"numbered from 1, e.g. the epoch). Said once per run; {_SILENCE}",
        )

    def finished(self, record_id: int, reports: Sequence[tuple[int, float]], value: float) -> None:
        """Evaluation ``record_id`` completed and returned ``value`` after ``reports``."""
        if len(self._curves) >= _SAMPLE or not math.isfinite(value) or len(reports) < 2:
            return
        self._curves.append((reports[0][1], reports[-1][1], value, record_id))
        if len(self._curves) == self._next_look:
            self._next_look *= 2
            self._look()

    def _look(self) -> None:
        first, last, returned, ids = (np.array(c) for c in zip(*self._curves, strict=True))
        finite = np.isfinite(first) & np.isfinite(last)
        first, last, returned, ids = first[finite], last[finite], returned[finite], ids[finite]
        n = len(last)
        if n < _FIRST_LOOK:
            return
        worse = np.count_nonzero(self._sign * (last - first) > 0)
        rho = rank_correlation(last, returned)
        if worse >= _AGAINST * n and rho <= _ANTI:
            self._warn("against", self._against(int(worse), n, rho))
        magnitudes = np.abs(np.stack([last, returned]))
        sized = (magnitudes > _TINY).all(axis=0)
        ratio = np.abs(np.log10(magnitudes[0, sized] / magnitudes[1, sized]))
        apart = ratio > math.log10(_FACTOR)
        if len(ratio) >= _FIRST_LOOK and np.count_nonzero(apart) >= _APART * n:
            k = int(np.flatnonzero(sized)[np.flatnonzero(apart)[0]])  # the first far apart
            example = (int(ids[k]), float(last[k]), float(returned[k]))
            self._warn("scale", self._scale(int(np.count_nonzero(apart)), n, example))

    def _against(self, worse: int, n: int, rho: float) -> str:
        return (
            f"trial.report: the reports run against the optimized metric {self._metric!r} "
            f"({self._direction}): in {worse} of {n} completed evaluations the reported curve "
            f"ended worse than it began, and the last reports rank against the returned "
            f"values (rank correlation {rho:+.2f}). Early stopping reads reports as values "
            f"of {self._metric!r} (lower is better when minimizing): report {self._metric!r} "
            f"itself (e.g. the loss, not the accuracy), or optimize what is reported. Said "
            f"once per run; {_SILENCE}"
        )

    def _scale(self, apart: int, n: int, example: tuple[int, float, float]) -> str:
        record_id, reported, returned = example
        return (
            f"trial.report: in {apart} of {n} completed evaluations the last report and the "
            f"returned {self._metric!r} differ by more than a factor of {_FACTOR:g} (e.g. "
            f"evaluation {record_id} reported {reported:.4g} and returned "
            f"{returned:.4g}). Early stopping compares reports with the returned values: "
            f"report {self._metric!r} in the same units. Said once per run; {_SILENCE}"
        )

    def _warn(self, kind: str, message: str) -> None:
        if kind in self._warned:
            return
        self._warned.add(kind)
        # stacklevel: past this module and Trial.report, at the objective's call (if any)
        warnings.warn(message, ReportWarning, stacklevel=4)


def rank_correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation of ``x`` and ``y`` (ties get their mean rank); NaN when
    either is constant."""
    rx, ry = _ranks(x), _ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    norm = math.sqrt(float((rx * rx).sum() * (ry * ry).sum()))
    return float((rx * ry).sum() / norm) if norm > 0 else math.nan


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks from 0, ties sharing their mean rank."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - (counts + 1) / 2.0)[inverse]
