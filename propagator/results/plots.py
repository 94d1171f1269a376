"""PNG figures of a run, drawn with matplotlib (imported only here, only when plotting).

Figures are plain ``matplotlib.figure.Figure`` objects saved through the Agg canvas, so
plotting neither needs a display nor changes the pyplot backend of the calling process.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..engine.records import Kind, Status
from ..errors import ConfigError, PropagateError
from ..space import Categorical, Constant
from .front import draw_front, draw_hypervolume
from .pbt_report import is_pbt
from .result import Result

_DPI = 120
_TOP = 10  # configurations in best_params.png
_LEGEND_ISLANDS = 10  # more islands share one legend entry
_FAILED_COLOR = "black"
# evaluations that did not complete, drawn at their last reported value: hollow, so that
# the completed ones' colours (their islands) stay readable under them
_STOPPED_STYLE = {
    "pruned": {"marker": "o", "facecolors": "none", "edgecolors": "0.5"},
    "paused": {"marker": "s", "facecolors": "none", "edgecolors": "darkorange"},
}
_NOT_COMPLETE = ("pruned", "paused", "failed")
# log y axes from this many decades of span: a best-so-far curve falls steeply at first, so
# a single early outlier flattens the rest of it on a linear axis
_BEST_DECADES, _VALUE_DECADES = 1, 2
_MAX_WIDTH = 16.0  # inches of best_params.png, however many parameters


def write_plots(result: Result, out_dir: Path, resumed: Sequence[float] = ()) -> list[Path]:
    """Write the PNG figures of ``result`` to ``out_dir`` (created if missing).

    Args:
        result: the run.
        out_dir: where the files go.
        resumed: times (seconds since the run started) at which the run was resumed.

    Returns:
        The paths written.

    Raises:
        ConfigError: matplotlib is missing or ``out_dir`` cannot be created.
        PropagateError: no evaluation succeeded, so there is nothing to plot.
    """
    figure = _figure_class()
    if not result.ok.any():
        raise PropagateError(f"nothing to plot: none of the {len(result)} evaluations succeeded")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {str(out_dir)!r}: {exc.strerror}") from None
    if result.multi:
        drawers = {
            "pareto_front.png": lambda fig: draw_front(fig, result),
            "hypervolume_over_evaluations.png": lambda fig: draw_hypervolume(fig, result),
        }
    else:
        drawers = {
            "best_over_evaluations.png": lambda fig: best_over_evaluations(fig, result),
            "best_over_time.png": lambda fig: best_over_time(fig, result, resumed),
            "values.png": lambda fig: values(fig, result),
        }
    if _axes_params(result):
        drawers["best_params.png"] = lambda fig: best_params(fig, result)
    if any(r.intermediate for r in result.records):
        from .curves import draw_curves  # it draws with this module's helpers

        drawers["curves.png"] = lambda fig: draw_curves(fig, result)
    if is_pbt(result):
        from .pbt_plots import draw_pbt  # it draws with this module's helpers

        drawers["pbt.png"] = lambda fig: draw_pbt(fig, result)
    paths = []
    for name, draw in drawers.items():
        fig = figure(figsize=(9, 5.5), layout="constrained")
        draw(fig)
        path = out_dir / name
        fig.savefig(path, dpi=_DPI)
        paths.append(path)
    return paths


def _figure_class() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigError("plotting needs matplotlib: pip install 'propagate[plot]'") from None
    return Figure


# --- the figures --------------------------------------------------------------------------------
def best_over_evaluations(fig: Any, result: Result) -> None:
    """Best value so far per island and overall, against the number of evaluations."""
    ax = fig.add_subplot()
    count = np.arange(1, len(result) + 1)
    complete = complete_values(result)
    _overall(ax, count, _running_best(complete, result.direction))
    shown = []
    for island, color, label in _islands(result):
        mine = result.rows["island"] == island
        best = _running_best(complete[mine], result.direction)
        ax.plot(count[mine], best, drawstyle="steps-post", color=color, lw=1.4, label=label)
        shown.append(best)
    ax.set_xlabel("evaluations (in id order)")
    ax.set_ylabel(f"best {result.metric} so far")
    ax.set_title(f"Best {result.metric} over evaluations ({result.direction})")
    _not_counted(ax, result)
    _finish(ax, np.concatenate(shown), _BEST_DECADES)


def best_over_time(fig: Any, result: Result, resumed: Sequence[float]) -> None:
    """Best value so far per island and overall, against wall time since the run started."""
    ax = fig.add_subplot()
    order = np.argsort(result.rows["end"], kind="stable")
    rows, vals = result.rows[order], complete_values(result)[order]
    scale, unit = _time_unit(float(rows["end"].max()))
    t = rows["end"] / scale
    _overall(ax, t, _running_best(vals, result.direction))
    shown = []
    for island, color, label in _islands(result):
        mine = rows["island"] == island
        best = _running_best(vals[mine], result.direction)
        ax.plot(t[mine], best, drawstyle="steps-post", color=color, lw=1.4, label=label)
        shown.append(best)
    for i, at in enumerate(resumed):
        label = "resumed" if i == 0 else None
        ax.axvline(at / scale, color="grey", ls=":", lw=1.2, label=label)
    ax.set_xlim(left=0.0)
    ax.set_xlabel(f"wall time since the run started ({unit})")
    ax.set_ylabel(f"best {result.metric} so far")
    ax.set_title(f"Best {result.metric} over time ({result.direction})")
    _not_counted(ax, result)
    _finish(ax, np.concatenate(shown), _BEST_DECADES)


def values(fig: Any, result: Result) -> None:
    """Every evaluation's value against its id: the completed ones by island, the pruned
    and paused ones (at their last reported value) hollow, failures marked on the x axis;
    each kind with its count in the legend."""
    ax = fig.add_subplot()
    ids, ok = result.rows["id"], result.ok
    for island, color, label in _islands(result):
        mine = ok & (result.rows["island"] == island)
        ax.scatter(ids[mine], result.values[mine], s=10, color=color, alpha=0.7, label=label)
    statuses = status_masks(result)
    for status, style in _STOPPED_STYLE.items():
        mine = statuses[status]
        if mine.any():
            label = f"{status} ({np.count_nonzero(mine)}; last report)"
            ax.scatter(ids[mine], result.values[mine], s=14, lw=0.8, label=label, **style)
    failed = statuses["failed"]
    if failed.any():
        # on the axis itself (axes coordinates): failures have no value to place them by
        ax.scatter(
            ids[failed],
            np.zeros(np.count_nonzero(failed)),
            transform=ax.get_xaxis_transform(),
            marker="x",
            s=25,
            color=_FAILED_COLOR,
            clip_on=False,
            zorder=3,
            label=f"failed ({np.count_nonzero(failed)})",
        )
    best = result.best
    best_star(ax, best.id, best.value, best.id, _best_label(result))
    ax.set_xlabel("evaluation id")
    ax.set_ylabel(result.metric)
    ax.set_title(f"Every evaluation's {result.metric}")
    _finish(ax, result.values, _VALUE_DECADES, outside=True)  # points fill the whole area


def best_params(fig: Any, result: Result) -> None:
    """Parallel coordinates of the best configurations, each parameter scaled to its range."""
    params = _axes_params(result)
    top = result.top(_TOP)
    fig.set_size_inches(min(max(9.0, 0.8 * len(params) + 4.5), _MAX_WIDTH), 6.0)
    ax = fig.add_subplot()
    x = np.arange(len(params))
    for j, (_, p) in enumerate(params):
        ax.axvline(j, color="0.6", lw=0.8, zorder=0)
        _axis_labels(ax, j, p)
    colors = _colors(len(top) - 1, "viridis") if len(top) > 1 else []
    # worst first, so that better lines are drawn over worse ones; the best last of all
    for rank in range(len(top) - 1, -1, -1):
        record = top[rank]
        y = [
            _scaled(p, record.params[name]) if name in record.params else math.nan
            for name, p in params
        ]  # inactive parameters leave a gap
        best = rank == 0
        ax.plot(
            x,
            y,
            marker="o",
            ms=6 if best else 3.5,
            lw=3.0 if best else 1.2,
            alpha=1.0 if best else 0.75,
            color="crimson" if best else colors[rank - 1],
            zorder=3 if best else 2,
            label=f"#{rank + 1}  {' / '.join(f'{v:.6g}' for v in record.values)}  (id {record.id})",
        )
    names = [_axis_name(name, p, top) for name, p in params]
    ax.set_xticks(x, names, rotation=30 if len(params) > 8 else 0)
    ax.set_xlim(-0.3, len(params) - 0.4)
    ax.set_ylim(-0.1, 1.1)
    ax.set_yticks([0.0, 0.5, 1.0], ["low", "", "high"])
    ax.set_ylabel("position in the parameter's range")
    by = " / ".join(result.objectives)
    order = ", ranked as NSGA-II does" if result.multi else ""
    ax.set_title(f"Best {len(top)} configurations by {by}{order} (first in red)")
    handles, labels = ax.get_legend_handles_labels()
    # drawn worst first; listed best first
    ax.legend(
        handles[::-1],
        labels[::-1],
        title=" / ".join(result.objectives),
        fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
    )


# --- helpers ------------------------------------------------------------------------------------
def best_star(ax: Any, x: float, value: float, record_id: int, label: str | None = None) -> None:
    """The best evaluation's mark, at ``(x, value)``; ``label`` for the legend (default:
    the value and the id)."""
    label = label or f"best {value:.6g} (id {record_id})"
    ax.scatter(
        [x], [value], marker="*", s=220, color="gold", edgecolor="black", zorder=4, label=label
    )


def status_masks(result: Result) -> dict[str, np.ndarray]:
    """Per status that is not ok (pruned, paused, failed): which evaluations have it."""
    status = result.rows["status"]
    return {name: status == int(Status[name.upper()]) for name in _NOT_COMPLETE}


def not_complete_note(result: Result) -> str | None:
    """How many evaluations were pruned, paused or failed, e.g. ``"46 pruned, 4 failed"``
    (``None``: every one completed)."""
    counts = {name: int(np.count_nonzero(m)) for name, m in status_masks(result).items()}
    said = [f"{n} {name}" for name, n in counts.items() if n]
    return ", ".join(said) or None


def complete_values(result: Result) -> np.ndarray:
    """The value of each completed search evaluation, NaN for the rest (a pruned one's last
    report is not a result, and a confirmation is not a search draw): what :attr:`best`
    ranks."""
    counted = result.ok & (result.rows["kind"] != Kind.CONFIRMATION)
    return np.where(counted, result.values, np.nan)


def _not_counted(ax: Any, result: Result) -> None:
    """A legend line (no mark) with the evaluations a best-so-far curve leaves out."""
    note = not_complete_note(result)
    if note is not None:
        ax.plot([], [], " ", label=f"not counted: {note}")


def _best_label(result: Result) -> str | None:
    """The star's label for the confirmed winner (``None``: the search's best, default)."""
    winner = result.winner
    if winner is None or result.multi:
        return None
    seeds = len(winner.values)
    return f"best (id {result.best.id}): confirmed mean {winner.mean:.4g}, {seeds} seeds"


def _overall(ax: Any, x: np.ndarray, best: np.ndarray) -> None:
    # wide and pale, under the island lines: it coincides with the leading island's line
    ax.plot(x, best, drawstyle="steps-post", color="black", lw=4.0, alpha=0.3, label="all islands")


def _islands(result: Result) -> list[tuple[int, Any, str | None]]:
    """(island, colour, legend label) for each island with evaluations."""
    islands = np.unique(result.rows["island"]).tolist()
    if len(islands) <= _LEGEND_ISLANDS:
        labels = [f"island {island}" for island in islands]
        return list(zip(islands, _colors(len(islands), "tab10"), labels, strict=True))
    # one legend entry for them all: a long legend would hide the plot
    labels = [f"{len(islands)} islands, one colour each"] + [None] * (len(islands) - 1)
    return list(zip(islands, _colors(len(islands), "turbo"), labels, strict=True))


def _colors(n: int, name: str) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps[name]
    if name == "tab10":
        return [cmap(i % 10) for i in range(n)]
    return [cmap(i / max(n - 1, 1) * 0.9) for i in range(n)]  # 0.9: skip the palest end


def _running_best(v: np.ndarray, direction: str) -> np.ndarray:
    """Best so far at each position; NaN (failed) entries are skipped."""
    op = np.fmin if direction == "minimize" else np.fmax
    return op.accumulate(v) if len(v) else v


def _finish(ax: Any, shown: np.ndarray, decades: float, outside: bool = False) -> None:
    """Grid, legend (``outside`` the axes, right), and a log y axis if the values shown are
    positive and span more than ``decades``."""
    shown = shown[~np.isnan(shown)]
    if len(shown) and (shown > 0).all() and shown.max() / shown.min() > 10**decades:
        _log_y(ax, math.log10(shown.max() / shown.min()))
    ax.grid(alpha=0.3)
    if outside:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.legend(fontsize=8, loc="best")


def _log_y(ax: Any, decades: float) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_yscale("log")
    if decades < 4:  # else the default, one label per decade, is dense enough
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _time_unit(seconds: float) -> tuple[float, str]:
    if seconds < 600:
        return 1.0, "s"
    if seconds < 3 * 3600:
        return 60.0, "min"
    return 3600.0, "h"


def _axes_params(result: Result) -> list[tuple[str, Any]]:
    return [(n, p) for n, p in result.space.params.items() if not isinstance(p, Constant)]


def _scaled(p: Any, value: Any) -> float:
    """``value`` as a position in ``[0, 1]`` of ``p``'s range (choices by index)."""
    if isinstance(p, Categorical):
        n = len(p.choices)
        return p.choices.index(value) / (n - 1) if n > 1 else 0.5
    low, high = (math.log(p.low), math.log(p.high)) if p.log else (p.low, p.high)
    x = math.log(value) if p.log else value
    return (x - low) / (high - low)


def _axis_labels(ax: Any, j: int, p: Any) -> None:
    """A parameter axis's bounds beyond its ends, or its choices along it."""
    style = {"fontsize": 7, "color": "0.25"}
    if isinstance(p, Categorical):
        box = {"fc": "white", "ec": "none", "alpha": 0.8, "pad": 0.5}  # readable over lines
        for c in p.choices:
            ax.text(j + 0.05, _scaled(p, c), str(c), va="center", ha="left", bbox=box, **style)
    else:
        ax.text(j, -0.02, f"{p.low:.3g}", va="top", ha="center", **style)
        ax.text(j, 1.02, f"{p.high:.3g}", va="bottom", ha="center", **style)


def _axis_name(name: str, p: Any, top: list[Any]) -> str:
    if all(name not in r.params for r in top):
        return f"{name}\n(inactive)"
    return f"{name}\n(log)" if getattr(p, "log", False) else name
