"""Population-based training in ``propagate plot``: the figure ``pbt.png``.

Left, the winning schedule: the parameters that changed along the chain of segments the best
complete member's training went through (see :mod:`.pbt_report`), one panel each, as step
functions over the training's steps (a log axis for a log-scaled float, the choices for a
categorical). Right, the population: each segment's metric at its last step, joined to the
segment it continued, coloured by member; a copy so branches off the member it copied, and
the winning chain is drawn over them in red, ending in a star.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..engine.records import Kind
from ..pbt import Lineage
from ..space import Categorical
from .format import INACTIVE
from .pbt_report import changing, population_counts, stretches, winning_chain
from .plots import _VALUE_DECADES, _colors, _finish, _log_y, best_star
from .result import Result

_WINNER = "crimson"
_DISTINCT = 10  # members drawn in distinct colours; more share a colour map


def draw_pbt(fig: Any, result: Result) -> None:
    """The winning schedule (left) and the population's values over steps (right)."""
    chain = winning_chain(result)
    names = changing(chain)
    fig.set_size_inches(13.0, max(5.5, 1.8 * len(names)))
    grid = fig.add_gridspec(max(len(names), 1), 2, width_ratios=(1.0, 1.4))
    values = fig.add_subplot(grid[:, 1])
    _population(values, result, chain)
    if not names:
        ax = fig.add_subplot(grid[0, 0])
        ax.set_axis_off()
        said = "the winner kept its parameters" if chain else "no complete member's chain"
        ax.text(0.5, 0.5, said, ha="center", va="center", transform=ax.transAxes)
    shared = None
    for k, name in enumerate(names):
        ax = fig.add_subplot(grid[k, 0], sharex=shared)
        shared = shared or ax
        _schedule(ax, result.space.params[name], name, chain)
        ax.tick_params(labelbottom=k == len(names) - 1)
    if names:
        shared.set_title(f"Winning schedule (id {chain[-1].id})")
        ax.set_xlabel("step")
    counts = population_counts(result)
    fig.suptitle(
        f"Population-based training: {counts.members} members, {counts.segments} segments, "
        f"{counts.copies} copies"
    )


def _schedule(ax: Any, p: Any, name: str, chain: list[Lineage]) -> None:
    """``name``'s value over the steps of ``chain``, a step function (a gap where it does
    not apply)."""
    runs = stretches(chain, [name])
    categorical = isinstance(p, Categorical)
    y = [
        math.nan
        if (v := r.params.get(name, INACTIVE)) is INACTIVE
        else p.choices.index(v)
        if categorical
        else float(v)
        for r in runs
    ]
    x = [r.first_step for r in runs] + [runs[-1].last_step]
    ax.plot(x, [*y, y[-1]], drawstyle="steps-post", color=_WINNER, lw=2.0)
    if categorical:
        ax.set_yticks(range(len(p.choices)), [str(c) for c in p.choices])
    elif getattr(p, "log", False):
        _log_y(ax, math.log10(np.nanmax(y) / np.nanmin(y)))
    ax.set_ylabel(name)
    ax.grid(alpha=0.3)


def _population(ax: Any, result: Result, chain: list[Lineage]) -> None:
    """Each segment's value at its last step, joined to its parent's; the chain over them.
    The confirmations (winners' schedules replayed after the search) are no members."""
    search = result.rows["kind"] != Kind.CONFIRMATION
    rows, values = result.rows[search], result.values[search]
    valued = ~np.isnan(values)  # a failed segment has no value to place it by
    at = {
        rid: (step, value)
        for rid, step, value in zip(
            rows["id"][valued].tolist(),
            rows["step"][valued].tolist(),
            values[valued].tolist(),
            strict=True,
        )
    }
    lines: dict[int, list[tuple[float, float]]] = {}
    lineage = zip(
        rows["id"].tolist(), rows["parent"].tolist(), rows["member"].tolist(), strict=True
    )
    for rid, parent, member in lineage:
        if rid in at:
            start = at.get(parent, at[rid])  # a member's first segment: its point alone
            # NaN breaks a member's line between its edges
            lines.setdefault(member, []).extend([start, at[rid], (math.nan, math.nan)])
    colors = _colors(len(lines), "tab10" if len(lines) <= _DISTINCT else "turbo")
    for k, (points, color) in enumerate(zip(lines.values(), colors, strict=True)):
        label = f"{len(lines)} members, one colour each" if k == 0 else None
        x, y = np.array(points).T
        ax.plot(x, y, color=color, lw=0.8, alpha=0.6, marker="o", ms=2.5, label=label)
    if chain:
        best = chain[-1]
        steps, values = [s.last_step for s in chain], [s.value for s in chain]
        ax.plot(steps, values, color=_WINNER, lw=2.5, marker="o", ms=4, label="winning chain")
        winner, label = result.winner, None
        if winner is not None:
            label = f"best {best.value:.6g} (id {best.id}), confirmed {winner.mean:.6g}"
        best_star(ax, best.last_step, best.value, best.id, label)
    ax.set_xlabel("step")
    ax.set_ylabel(result.metric)
    ax.set_title(f"Every segment's {result.metric} at its last step")
    _finish(ax, result.values, _VALUE_DECADES)
