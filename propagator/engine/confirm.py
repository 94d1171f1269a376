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

from collections.abc import Hashable

import numpy as np

from ..settings import Confirm
from ..space import Space
from .comm.backoff import barrier
from .comm.collect import allgather_bytes
from .comm.tickets import TicketCounter
from .context import RunContext, Session, Sink
from .follower import follow
from .gather import pack
from .leader import Leader
from .records import Kind, Status
from .seen import Seen

_CONFIRMATION, _OK = int(Kind.CONFIRMATION), int(Status.OK)


def confirmation_tasks(
    rows: np.ndarray, confirm: Confirm, sign: float, space: Space | None = None
) -> np.ndarray:
    """The genes of each confirmation still to do, one row per evaluation, best first.

    Configurations are told apart as the objective gets them: with ``space``, by
    :meth:`Seen.key`, so that one found twice (on two islands, or in genes that differ only
    where they decode alike) is confirmed once; without, by their genes (a space of floats
    without conditions). One confirmed before is confirmed again in the genes it was, so that
    its confirmations stay together in the results.
    """
    key = Seen(space).key if space is not None else _genes_key
    search = rows[(rows["kind"] != _CONFIRMATION) & (rows["status"] == _OK)]
    order = np.argsort(sign * search["values"][:, 0], kind="stable")
    done: dict[Hashable, tuple[int, np.ndarray]] = {}
    for genes in rows["genes"][rows["kind"] == _CONFIRMATION]:
        k = key(genes)
        count, first = done.get(k, (0, genes))
        done[k] = (count + 1, first)
    tasks: list[np.ndarray] = []
    chosen: set[Hashable] = set()
    for genes in search["genes"][order]:
        k = key(genes)
        if k in chosen:
            continue
        chosen.add(k)
        count, confirmed = done.get(k, (0, genes))
        tasks += [confirmed] * max(0, confirm.seeds - count)
        if len(chosen) == confirm.top:
            break
    return np.array(tasks, dtype=np.float64).reshape(len(tasks), rows.dtype["genes"].shape[0])


def _genes_key(genes: np.ndarray) -> bytes:
    return genes.tobytes()


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
    tasks = confirmation_tasks(everything, ctx.settings.confirm, ctx.settings.sign, ctx.space)
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
