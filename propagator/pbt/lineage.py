"""A segment's lineage: the chain of segments its training went through, from the first,
and the schedule of parameters it was trained with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Lineage:
    """One segment of a training's history.

    Attributes:
        id: the segment's evaluation id.
        member: the member it belonged to (the id of that member's first segment).
        first_step: the first step it trained (1 for a training's first segment).
        last_step: the last step it reported.
        params: the parameters it was trained with.
        value: the metric at its last step.
    """

    id: int
    member: int
    first_step: int
    last_step: int
    params: dict[str, Any]
    value: float


def schedule(rows: Mapping[int, Any], record_id: int, decode: Any) -> list[Lineage]:
    """The segments the training that ended in ``record_id`` went through, first to last.

    Args:
        rows: records by id (each with ``parent``, ``member``, ``step``, ``values``,
            ``genes``).
        record_id: the last segment.
        decode: genes -> params (``Space.decode``).

    Raises:
        KeyError: a segment of the chain is not among ``rows``.
    """
    chain: list[Any] = []
    rid = record_id
    while rid >= 0:
        row = rows[rid]
        chain.append(row)
        rid = int(row["parent"])
    chain.reverse()
    out, first = [], 1
    for row in chain:
        last = max(int(row["step"]), first - 1)  # a segment that reported nothing: none
        value = float(np.asarray(row["values"]).ravel()[0])
        out.append(
            Lineage(int(row["id"]), int(row["member"]), first, last, decode(row["genes"]), value)
        )
        first = last + 1
    return out
