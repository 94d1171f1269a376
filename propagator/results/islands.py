"""The islands in ``propagate report`` and ``watch``: per island, its evaluations, failures,
best value, and the strategy it ran."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..engine.records import Kind, Status
from ..errors import ConfigError
from .format import format_value, table
from .result import Result


def island_strategies(config: Mapping[str, Any], result: Result) -> list[str]:
    """The strategy each island ran, from a run's stored settings (``config``), in island
    order: a portfolio with its members (those dealt to the island; ``auto`` resolved for
    the run's space)."""
    from ..engine.layout import make_layout
    from ..strategies import Portfolio, make_strategy

    info = result.info
    islands = config.get("islands", info.n_islands)  # a count or the workers of each island
    try:
        layout = make_layout(info.world_size, info.world_size // info.n_workers, islands)
    except (ConfigError, ZeroDivisionError):  # settings that do not fit the run: one worker
        layout = None
    names = []
    for island, stored in enumerate(config.get("strategy", [])):
        try:
            spec = make_strategy(stored)
        except ConfigError:  # a strategy this version does not know: its stored name
            names.append(str(stored.get("name", "?")))
            continue
        if isinstance(spec, Portfolio):
            fits = layout is not None and island < len(layout.island_sizes)
            workers = layout.island_sizes[island] if fits else 1
            members = spec.members_for(result.space, len(result.objectives), workers)
            names.append(f"portfolio ({', '.join(m.name for m in members)})")
        else:
            names.append(spec.name)
    return names


def island_table(result: Result, strategies: Sequence[str] = ()) -> list[str]:
    """Per island: evaluations, failures, its best value and how many evaluations it took,
    and with ``strategies`` (one per island, in order) the strategy it ran."""
    islands = sorted(set(range(result.info.n_islands)) | set(result.rows["island"].tolist()))
    sign = 1.0 if result.direction == "minimize" else -1.0
    rows = []
    searched = result.rows["kind"] != Kind.CONFIRMATION
    front = {r.id for r in result.pareto_front} if result.multi else set()
    for island in islands:
        mine = np.flatnonzero((result.rows["island"] == island) & searched)
        ok = mine[result.ok[mine]]
        failed = int(np.count_nonzero(result.rows["status"][mine] == Status.FAILED))
        if len(ok) and result.multi:
            cells = [str(len(set(result.rows["id"][ok].tolist()) & front))]
        elif len(ok):
            best = ok[np.argmin(sign * result.values[ok])]  # first of equals: when reached
            cells = [format_value(result.values[best]), str(result.rows["id"][best])]
            cells.append(str(int(np.searchsorted(mine, best)) + 1))
        else:
            cells = ["-"] if result.multi else ["-", "-", "-"]
        rows.append([str(island), str(len(mine)), str(failed), *cells])
        if strategies:
            rows[-1].append(strategies[island] if island < len(strategies) else "-")
    header = ["island", "evaluations", "failed"]
    if result.multi:
        header.append("on the front")
    else:
        header += [f"best {result.metric}", "best id", "evals to best"]
    if strategies:
        header.append("strategy")
    return ["islands", *table(header, rows)]
