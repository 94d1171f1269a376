"""Confirming the winners: after the search, the best configurations evaluated again on fresh
seeds, so that a lucky seed is told from a good setting (the winner's curse).

Every rank knows every record at the end of the search, so every rank computes the same list
of tasks: the ``top`` best distinct configurations of the whole run (earlier sessions
included), each repeated as often as it still lacks confirmations. Workers then claim the
tasks from a fresh ticket counter, as they claim evaluations, and record each as a
confirmation (``Kind.CONFIRMATION``) of the same genes under a new id, hence a new
``trial.seed``.

With PBT a winner is a complete member, and what is confirmed is its schedule: the chain of
segments its training went through (:func:`propagator.pbt.schedule`), merged into stretches
of unchanged genes, trained again from scratch, one segment per stretch, without copying
(the best member's value is the best of a population of trainings, which flatters its
schedule more than one draw flatters a configuration). Its confirmations are its stretches'
records; the last one's value is the schedule's.
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np

from ..pbt import schedule
from ..settings import Confirm
from ..space import Space
from .comm.backoff import barrier
from .comm.collect import allgather_bytes
from .comm.tickets import TicketCounter
from .confirm_run import Stretch, Task
from .context import RunContext, Session, Sink
from .follower import follow
from .gather import pack
from .leader import Leader
from .records import Kind, Status
from .seen import Seen

_CONFIRMATION, _OK, _PAUSED = int(Kind.CONFIRMATION), int(Status.OK), int(Status.PAUSED)


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
    tasks = [genes for _, genes, left in winners(rows, confirm, sign, space) for _ in range(left)]
    return np.array(tasks, dtype=np.float64).reshape(len(tasks), rows.dtype["genes"].shape[0])


def schedule_tasks(
    rows: np.ndarray, confirm: Confirm, sign: float, space: Space, first_id: int
) -> list[Task]:
    """PBT: each replay still to do of the best distinct members' schedules, best first, as
    its stretches, with ids from ``first_id`` on (the genes of a stretch's segments, from its
    first step; a member is told apart by its last segment's configuration)."""
    by_id = {int(r["id"]): r for r in rows}
    tasks: list[Task] = []
    for index, _, left in winners(rows, confirm, sign, space):
        stretches = replay_stretches(by_id, int(rows["id"][index]))
        for _ in range(left):
            task = []
            for k, (genes, last) in enumerate(stretches):
                until = last if k + 1 < len(stretches) else None
                task.append(Stretch(first_id, genes, until))
                first_id += 1
            tasks.append(tuple(task))
    return tasks


def replay_stretches(by_id: dict[int, np.void], record_id: int) -> list[tuple[np.ndarray, int]]:
    """The genes the training that ended in ``record_id`` was trained with, as ``(genes,
    last step)`` per stretch of unchanged genes, first to last (its lineage, undecoded)."""
    out: list[tuple[np.ndarray, int]] = []
    for segment in schedule(by_id, record_id, np.copy):
        genes, last = segment.params, segment.last_step
        if out and np.array_equal(out[-1][0], genes):
            out[-1] = (genes, last)
        else:
            out.append((genes, last))
    return out


def winners(
    rows: np.ndarray, confirm: Confirm, sign: float, space: Space | None
) -> list[tuple[int, np.ndarray, int]]:
    """The ``top`` best distinct configurations of the search: per configuration, its best
    successful search record's index in ``rows``, the genes it is confirmed in, and how many
    confirmations it still lacks; best first."""
    key = Seen(space).key if space is not None else _genes_key
    searched = np.flatnonzero((rows["kind"] != _CONFIRMATION) & (rows["status"] == _OK))
    # ties by id, as the results rank them (``rows`` come in no particular order)
    order = searched[np.lexsort((rows["id"][searched], sign * rows["values"][searched, 0]))]
    done: dict[Hashable, tuple[int, np.ndarray]] = {}
    # a failed confirmation counts (it is not tried again); a paused one is a replay's stretch
    confirmed = (rows["kind"] == _CONFIRMATION) & (rows["status"] != _PAUSED)
    for genes in rows["genes"][confirmed]:
        k = key(genes)
        count, first = done.get(k, (0, genes))
        done[k] = (count + 1, first)
    out: list[tuple[int, np.ndarray, int]] = []
    chosen: set[Hashable] = set()
    for index in order:
        k = key(rows["genes"][index])
        if k in chosen:
            continue
        chosen.add(k)
        count, genes = done.get(k, (0, rows["genes"][index]))
        out.append((int(index), genes, max(0, confirm.seeds - count)))
        if len(chosen) == confirm.top:
            break
    return out


def _genes_key(genes: np.ndarray) -> bytes:
    return genes.tobytes()


def reserved(rows: np.ndarray, confirm: Confirm | None, pbt: bool = False) -> int:
    """Evaluations still kept back for confirmations: the total less those already stored
    (none with PBT, whose replays follow the budget)."""
    if confirm is None or pbt:
        return 0
    return max(0, confirm.evaluations - int(np.count_nonzero(rows["kind"] == _CONFIRMATION)))


def confirm_winners(
    ctx: RunContext, session: Session, leader: Leader | None, rows: np.ndarray, sink: Sink | None
) -> list[bytes]:
    """Collective: evaluate the confirmations still to do; every leader's records of them
    (packed as :func:`pack` does), on every rank. ``rows``: this session's records."""
    history = [r for r in session.islands.values() if len(r)]
    everything = np.concatenate([rows, *history]) if history else rows
    first = int(everything["id"].max()) + 1 if len(everything) else session.next_id
    tasks = _tasks(ctx, everything, first)
    if not tasks:
        return []
    counter = TicketCounter(ctx.comms.world, 0, len(tasks))
    log = None
    if leader is not None:
        log = leader.confirm(counter, tasks, sink)
        barrier(ctx.comms.world)  # the followers' end-of-phase barrier (see follow)
    else:
        follow(ctx)
    counter.close()
    return allgather_bytes(ctx.comms.world, pack(log, leader, stats=False))


def _tasks(ctx: RunContext, rows: np.ndarray, first_id: int) -> list[Task]:
    """The confirmations still to do, as tasks (the same on every rank)."""
    s = ctx.settings
    if s.pbt is not None:
        return schedule_tasks(rows, s.confirm, s.sign, ctx.space, first_id)
    genes = confirmation_tasks(rows, s.confirm, s.sign, ctx.space)
    return [(Stretch(first_id + i, g),) for i, g in enumerate(genes)]
