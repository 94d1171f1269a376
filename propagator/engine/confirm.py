"""Confirming the winners: after the search, the best configurations evaluated again on fresh
seeds, so that a lucky seed is told from a good setting (the winner's curse).

Every rank knows every record at the end of the search, so every rank computes the same list
of tasks: the ``top`` best distinct configurations of the whole run (earlier sessions
included), each repeated as often as it still lacks confirmations. Workers then claim the
tasks from a fresh ticket counter, as they claim evaluations, and record each as a
confirmation (``Kind.CONFIRMATION``) of the same genes under a new id, hence a new
``trial.seed``.
"""

from __future__ import annotations

import numpy as np

from ..settings import Confirm
from .comm.backoff import barrier
from .comm.collect import allgather_bytes
from .comm.tickets import TicketCounter
from .context import RunContext, Session, Sink
from .follower import follow
from .gather import pack
from .leader import Leader
from .records import Kind, Status

_CONFIRMATION, _OK = int(Kind.CONFIRMATION), int(Status.OK)


def confirmation_tasks(rows: np.ndarray, confirm: Confirm, sign: float) -> np.ndarray:
    """The genes of each confirmation still to do, one row per evaluation, best first."""
    search = rows[(rows["kind"] != _CONFIRMATION) & (rows["status"] == _OK)]
    order = np.argsort(sign * search["values"][:, 0], kind="stable")
    done: dict[bytes, int] = {}
    for genes in rows["genes"][rows["kind"] == _CONFIRMATION]:
        done[genes.tobytes()] = done.get(genes.tobytes(), 0) + 1
    tasks: list[np.ndarray] = []
    chosen: set[bytes] = set()
    for genes in search["genes"][order]:
        key = genes.tobytes()
        if key in chosen:
            continue
        chosen.add(key)
        tasks += [genes] * max(0, confirm.seeds - done.get(key, 0))
        if len(chosen) == confirm.top:
            break
    return np.array(tasks, dtype=np.float64).reshape(len(tasks), rows.dtype["genes"].shape[0])


def reserved(rows: np.ndarray, confirm: Confirm | None) -> int:
    """Evaluations still kept back for confirmations: the total less those already stored."""
    if confirm is None:
        return 0
    return max(0, confirm.evaluations - int(np.count_nonzero(rows["kind"] == _CONFIRMATION)))


def confirm_winners(
    ctx: RunContext, session: Session, leader: Leader | None, rows: np.ndarray, sink: Sink | None
) -> list[bytes]:
    """Collective: evaluate the confirmations still to do; every leader's records of them
    (packed as :func:`pack` does), on every rank. ``rows``: this session's records."""
    history = [r for r in session.islands.values() if len(r)]
    everything = np.concatenate([rows, *history]) if history else rows
    tasks = confirmation_tasks(everything, ctx.settings.confirm, ctx.settings.sign)
    if not len(tasks):
        return []
    first = int(everything["id"].max()) + 1 if len(everything) else session.next_id
    counter = TicketCounter(ctx.comms.world, first, first + len(tasks))
    log = None
    if leader is not None:
        log = leader.confirm(counter, tasks, first, sink)
        barrier(ctx.comms.world)  # the followers' end-of-phase barrier (see follow)
    else:
        follow(ctx)
    counter.close()
    return allgather_bytes(ctx.comms.world, pack(log, leader, stats=False))
