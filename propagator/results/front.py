"""The Pareto front of a search of several objectives: its table and hypervolume in the
report, and its figures.

The hypervolume needs a reference point worse than the front on every objective. Runs seldom
come with one, so the report takes the worst successful value of each objective over the
whole run, moved out by a tenth of the objective's range (as is common in the literature):
every successful evaluation then counts, and hypervolumes at different points of the same run
compare. Across runs, pass one reference to :meth:`Result.hypervolume`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..engine.records import Kind
from ..space import Constant
from ..strategies.pareto import hypervolume, nsga2_order
from .format import format_param, format_value, table
from .result import Result

_CHECKPOINTS = (0.1, 0.25, 0.5, 0.75, 1.0)  # fractions of the evaluations in the report
_LOG_SPAN = 30.0  # a log axis for positive values spread over more than this factor


def reference_point(result: Result) -> np.ndarray:
    """Per objective, in its own units: the worst successful value, a tenth of its range
    further out (1 where every value is the same)."""
    losses = result.losses[result.ok]
    worst, best = losses.max(axis=0), losses.min(axis=0)
    span = np.where(worst > best, worst - best, 1.0)
    signs = _signs(result)
    return (worst + 0.1 * span) * signs


def hypervolume_curve(result: Result, counts: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The hypervolume of the front of the first ``counts[i]`` evaluations (in id order) up
    to ``reference`` (in the objectives' units), for each ``i``."""
    searched = result.ok & (result.rows["kind"] != Kind.CONFIRMATION)
    losses, ref = result.losses, reference * _signs(result)
    return np.array([hypervolume(losses[:n][searched[:n]], ref) for n in counts])


def front_table(result: Result, n: int) -> list[str]:
    """The report's section for several objectives: the front (at most ``n`` of its points,
    those NSGA-II's crowding distance spreads most along it) and the hypervolume as the
    search went on."""
    front = result.pareto_front
    if not front:
        return ["Pareto front: no evaluation succeeded" if len(result) else "no evaluations yet"]
    shown = front
    if len(front) > n:
        losses = np.array([r.values for r in front]) * _signs(result)
        shown = [front[i] for i in sorted(nsga2_order(losses)[:n])]
    goals = ", ".join(
        f"{m} ({d})" for m, d in zip(result.objectives, result.directions, strict=True)
    )
    n_ok = int(np.count_nonzero(result.ok & (result.rows["kind"] != Kind.CONFIRMATION)))
    title = (
        f"Pareto front: {len(front)} of {n_ok} successful evaluations non-dominated over {goals}"
    )
    if len(shown) < len(front):
        title += f"; {len(shown)} spread along it shown (--top)"
    names = [k for k, p in result.space.params.items() if not isinstance(p, Constant)]
    header = [*result.objectives, "id", "island", *names]
    rows = [
        [*(format_value(v) for v in r.values), str(r.id), str(r.island)]
        + [format_param(r.params.get(k, "-")) for k in names]
        for r in shown
    ]
    reference = reference_point(result)
    counts = np.unique(np.ceil(np.array(_CHECKPOINTS) * len(result)).astype(int))
    volumes = hypervolume_curve(result, counts, reference)
    where = ", ".join(
        f"{m}={format_value(v)}" for m, v in zip(result.objectives, reference, strict=True)
    )
    return [
        title,
        *table(header, rows),
        f"hypervolume of the front (reference {where}) after",
        *table(
            ["evaluations", "hypervolume"],
            [[str(c), format_value(v)] for c, v in zip(counts, volumes, strict=True)],
        ),
    ]


def draw_front(fig: Any, result: Result) -> None:
    """Every successful evaluation in the first two objectives, the front joined as steps;
    the legend counts those not drawn (pruned, paused, failed)."""
    from .plots import not_complete_note  # plots imports this module

    ax = fig.add_subplot()
    v = result.objective_values
    ok = result.ok
    label = f"completed ({np.count_nonzero(ok)})"
    ax.scatter(v[ok, 0], v[ok, 1], s=10, color="0.6", alpha=0.6, label=label)
    note = not_complete_note(result)
    if note is not None:
        ax.plot([], [], " ", label=f"not drawn: {note}")
    front = np.array([r.values[:2] for r in result.pareto_front])
    ax.plot(
        front[:, 0],
        front[:, 1],
        marker="o",
        ms=5,
        color="crimson",
        lw=1.2,
        drawstyle="steps-post",
        label=f"Pareto front ({len(front)})",
    )
    x, y = result.objectives[:2]
    dx, dy = result.directions[:2]
    ax.set_xlabel(f"{x} ({dx})")
    ax.set_ylabel(f"{y} ({dy})")
    more = len(result.objectives) - 2
    extra = f"; {more} more objective(s) not shown" if more > 0 else ""
    ax.set_title(f"Pareto front over {x} and {y}{extra}")
    for values, scale in ((v[ok, 0], ax.set_xscale), (v[ok, 1], ax.set_yscale)):
        if (values > 0).all() and values.max() > _LOG_SPAN * values.min():
            scale("log")  # shares, byte counts: the front's end near zero needs room
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")


def draw_hypervolume(fig: Any, result: Result) -> None:
    """The hypervolume of the front found so far, against the number of evaluations."""
    ax = fig.add_subplot()
    counts = np.unique(np.linspace(1, len(result), min(len(result), 200)).astype(int))
    reference = reference_point(result)
    ax.plot(counts, hypervolume_curve(result, counts, reference), color="black", lw=1.6)
    ax.set_xlabel("evaluations (in id order)")
    ax.set_ylabel("hypervolume of the front so far")
    ref = ", ".join(f"{v:.4g}" for v in reference)
    ax.set_title(f"Hypervolume over evaluations (reference {ref})")
    ax.grid(alpha=0.3)


def _signs(result: Result) -> np.ndarray:
    return np.array([1.0 if d == "minimize" else -1.0 for d in result.directions])
