"""Learning curves in ``propagate plot``: the figure ``curves.png``.

Every evaluation that reported (``trial.report(step, value)``) is a line of its values over
its steps: completed ones in blue, pruned ones in grey, paused ones in orange, failed ones
in red, each kind with its count in the legend; the best evaluation's curve is drawn over
them in crimson. Lines are blended (the more curves, the fainter each: their density shows
where most trainings went), and each kind is thinned to at most ``_MAX_CURVES`` curves, spread
evenly over the ids, so that a run of a hundred thousand evaluations draws as fast as one of
a few thousand; the legend says how many were drawn. A run without reports has no figure.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..engine.records import Record
from ..errors import PropagateError
from .plots import _VALUE_DECADES, _finish, not_complete_note
from .result import Result

_MAX_CURVES = 2000  # per kind of evaluation
_KINDS = {  # status -> (colour, legend name); drawn in this order, so completed ones on top
    "failed": ("tab:red", "failed"),
    "pruned": ("0.45", "pruned"),
    "paused": ("darkorange", "paused"),
    "ok": ("tab:blue", "completed"),
}
_BEST = "crimson"


def draw_curves(fig: Any, result: Result) -> None:
    """Every reported curve, by the evaluation's status, with the best one highlighted."""
    from matplotlib.collections import LineCollection

    ax = fig.add_subplot()
    reported = [r for r in result.records if r.intermediate]
    for status, (color, name) in _KINDS.items():
        curves = [r for r in reported if r.status == status]
        if not curves:
            continue
        drawn = _thinned(curves)
        segments = [np.asarray(r.intermediate, dtype=np.float64) for r in drawn]
        alpha = _alpha(len(drawn))
        ax.add_collection(LineCollection(segments, colors=color, alpha=alpha, lw=0.9))
        single = np.array([s[0] for s in segments if len(s) == 1]).reshape(-1, 2)
        if len(single):  # one report makes no line: a dot
            ax.scatter(single[:, 0], single[:, 1], s=6, color=color, alpha=alpha)
        thinned = f", {len(drawn)} drawn" if len(drawn) < len(curves) else ""
        label = f"{name} ({len(curves)}{thinned})"
        ax.plot([], [], color=color, lw=1.5, label=label)  # the collection's legend entry
    best = _best(result)
    if best is not None and best.intermediate:
        steps, values = np.asarray(best.intermediate, dtype=np.float64).T
        ax.plot(steps, values, color=_BEST, lw=2.4, zorder=4, label=_best_label(result, best))
    ax.autoscale_view()
    unreported = len(result) - len(reported)
    if unreported:
        ax.plot([], [], " ", label=f"{unreported} evaluations reported nothing")
    ax.set_xlabel("step (trial.report)")
    ax.set_ylabel(f"reported value ({result.metric} is optimized, {result.direction})")
    note = not_complete_note(result)
    stopped = f"; {note}" if note else ""
    ax.set_title(f"Learning curves of {len(reported)} evaluations{stopped}")
    values = np.concatenate([np.asarray(r.intermediate)[:, 1] for r in reported])
    _finish(ax, values, _VALUE_DECADES, outside=True)


def _thinned(curves: list[Record]) -> list[Record]:
    """At most ``_MAX_CURVES`` of ``curves`` (in id order), spread evenly over them."""
    if len(curves) <= _MAX_CURVES:
        return curves
    keep = np.unique(np.linspace(0, len(curves) - 1, _MAX_CURVES).round().astype(int))
    return [curves[i] for i in keep]


def _alpha(n: int) -> float:
    """Opacity of each of ``n`` overlaid curves: opaque for a few, fainter for many (a
    hundred curves at 0.16 each still darken where they bunch)."""
    return float(np.clip(1.6 / np.sqrt(n), 0.03, 0.8))


def _best(result: Result) -> Record | None:
    """The evaluation to highlight (:attr:`Result.best`); ``None`` for several objectives or
    when nothing succeeded."""
    if result.multi:
        return None
    try:
        return result.best
    except PropagateError:
        return None


def _best_label(result: Result, best: Record) -> str:
    winner = result.winner
    if winner is not None:
        return f"best, confirmed over {len(winner.values)} seeds (id {best.id})"
    return f"best {best.value:.6g} (id {best.id})"
