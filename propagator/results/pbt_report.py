"""Population-based training in ``propagate report`` (see :mod:`propagator.pbt`).

The report of a PBT run has a section ``population-based training``: how many members
trained, in how many segments, how many segments copied (exploited) another member's
training, and how many members trained to the end. Under it, the *winning schedule*: the
chain of segments the best complete member's training went through, back to its first, one
row per stretch of steps over which the mutable parameters stayed the same (consecutive
segments with equal values merged, also across a copy that left them unchanged), with the
metric at the stretch's last step. ``propagate plot`` draws the same schedule and the
population's values (:mod:`.pbt_plots`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..engine.records import Kind
from ..errors import PropagateError
from ..pbt import Lineage, schedule
from .format import INACTIVE, format_param, format_value, table
from .result import Result


@dataclass(frozen=True)
class PopulationCounts:
    """What a PBT run's population did.

    Attributes:
        members: distinct members.
        segments: records (each one segment of a member's training).
        copies: segments that continued another member's training (an exploit).
        complete: members that trained to the end.
    """

    members: int
    segments: int
    copies: int
    complete: int


@dataclass(frozen=True)
class Stretch:
    """Steps ``first_step``..``last_step`` of a training, over which the parameters compared
    stayed the same (``params``: those that applied); ``value``: the metric at
    ``last_step``."""

    first_step: int
    last_step: int
    params: dict[str, Any]
    value: float


def is_pbt(result: Result) -> bool:
    """Whether the records carry a PBT lineage."""
    return "parent" in result.rows.dtype.names


def population_counts(result: Result) -> PopulationCounts:
    """Members, segments, copies and complete members of a PBT run (its confirmations, the
    winners' schedules replayed, left out)."""
    search = result.rows["kind"] != Kind.CONFIRMATION
    rows = result.rows[search]
    member_of = dict(zip(rows["id"].tolist(), rows["member"].tolist(), strict=True))
    # a parent not stored (yet) cannot be told apart: it is not counted as a copy
    copies = sum(
        parent in member_of and member_of[parent] != member
        for parent, member in zip(rows["parent"].tolist(), rows["member"].tolist(), strict=True)
    )
    return PopulationCounts(
        members=len(np.unique(rows["member"])),
        segments=len(rows),
        copies=int(copies),
        complete=len(np.unique(rows["member"][result.ok[search]])),
    )


def winning_chain(result: Result) -> list[Lineage]:
    """The schedule the winning member (:attr:`Result.best`: the best complete one, or the
    best confirmed) was trained with, first segment first; empty when no member completed or
    a segment of its chain is not stored (a damaged run, or one still being written)."""
    rows = {int(row["id"]): row for row in result.rows}
    try:
        return schedule(rows, result.best.id, result.space.decode)
    except (KeyError, PropagateError):
        return []


def changing(chain: Sequence[Lineage]) -> list[str]:
    """The parameters whose value (or whether they apply) changes along ``chain``."""
    names = dict.fromkeys(name for segment in chain for name in segment.params)
    first = chain[0].params if chain else {}
    return [
        name
        for name in names
        if any(s.params.get(name, INACTIVE) != first.get(name, INACTIVE) for s in chain)
    ]


def stretches(chain: Sequence[Lineage], names: Sequence[str]) -> list[Stretch]:
    """``chain`` as runs of consecutive segments with the same values of ``names`` (and the
    same of them applying)."""
    out: list[Stretch] = []
    for segment in chain:
        params = {name: segment.params[name] for name in names if name in segment.params}
        if out and out[-1].params == params:
            out[-1] = Stretch(out[-1].first_step, segment.last_step, params, segment.value)
        else:
            out.append(Stretch(segment.first_step, segment.last_step, params, segment.value))
    return out


def pbt_section(result: Result, spec: Mapping[str, Any] | None) -> list[str]:
    """The report's PBT section (empty for a run without PBT): the population's counts and
    the winning schedule of the mutable parameters.

    Args:
        result: the run.
        spec: its stored ``pbt`` settings (as :meth:`propagator.pbt.PBT.to_dict` wrote them).
    """
    if spec is None or not is_pbt(result):
        return []
    mutable, interval = list(spec["mutable"]), int(spec["interval"])
    counts = population_counts(result)
    lines = [
        f"population-based training: {', '.join(mutable)} mutable, segments of {interval} "
        f"step{'s' * (interval > 1)}",
        f"  members    {counts.members} ({counts.complete} trained to the end)",
        f"  segments   {counts.segments}",
        f"  copies     {counts.copies} (segments that continued another member's training)",
    ]
    chain = winning_chain(result)
    if not chain:
        complete = "its lineage is incomplete" if counts.complete else "no member completed"
        return [*lines, f"winning schedule: none ({complete})"]
    members = list(dict.fromkeys(s.member for s in chain))
    through = f", through members {', '.join(map(str, members))}" * (len(members) > 1)
    rows = [
        [
            f"{s.first_step}-{s.last_step}",
            *(format_param(s.params.get(name, INACTIVE)) for name in mutable),
            format_value(s.value),
        ]
        for s in stretches(chain, mutable)
    ]
    title = f"winning schedule: id {chain[-1].id} (member {chain[-1].member}{through})"
    return [*lines, title, *table(["steps", *mutable, result.metric], rows)]
