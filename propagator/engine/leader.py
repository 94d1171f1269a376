"""The loop of a worker leader.

A worker leader loops: absorb what its island peers and other islands sent, take a ticket,
propose a candidate the island has not seen (and claim it), hand it to its worker's other
ranks, evaluate, record and share the result, maybe send migrants. Nothing in
the loop waits for another worker. The other ranks of a multi-rank worker (followers,
:mod:`.follower`) only receive candidates and evaluate them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

# numpy loads numpy.random on first use: imported here, its 7 ms are spent on import, not in
# the first search of the process
from numpy.random import SeedSequence, default_rng

from .candidate import Evaluated, run_candidate
from .comm.gossip import SMALLEST_ISLAND, Gossip
from .comm.mailbox import FLUSH_INTERVAL, Mailbox
from .comm.tickets import TicketCounter, Tickets
from .confirm_run import Confirmations, Task
from .context import LeaderOptions, RunContext, Sink
from .crew import Crew
from .evaluation import Outcome
from .failures import FailureWatch
from .island import Island
from .later import Later
from .ledger import Ledger
from .members import Segment
from .migration import Emigration
from .promotion import Paused
from .records import Kind, LocalLog, Status
from .stopping import LeaderStopping, stopping_active

_log = logging.getLogger("propagate")

# Plain ints: enum attribute lookups cost microseconds each on the hot path.
_EVALUATED, _RESUMED = int(Kind.EVALUATED), int(Kind.RESUMED)
_PENDING, _FAILED = int(Kind.PENDING), int(Status.FAILED)


class Leader:
    """The loop of a worker's first rank. Call :meth:`run` once."""

    def __init__(
        self,
        ctx: RunContext,
        counter: TicketCounter,
        island: Island,
        options: LeaderOptions | None = None,
    ) -> None:
        self._ctx = ctx
        self._options = options or LeaderOptions()
        layout, settings = ctx.layout, ctx.settings
        self._island = island
        self._crew = Crew(ctx, self._record_stuck)
        self._stopping = (
            LeaderStopping(ctx, counter, island.rungs, self._absorb, self._crew)
            if stopping_active(ctx)
            else None
        )
        self._mailbox = _mailbox(ctx, island)
        # Pending points only where every peer hears every record: a gossiped announcement
        # would reach a few peers late, after the result it announces.
        announces = island.uses_pending and self._mailbox.broadcasts
        self._announcement = _announcement(ctx) if announces else None
        self._rng, self._migrate_rng = _generators(ctx, self._options.rng_states)
        self._emigration = Emigration(ctx, self._mailbox, self._migrate_rng)
        self._counter = counter
        self._tickets = Tickets(counter, layout.n_workers)
        self._failures = FailureWatch(ctx.worker, settings.max_initial_failures, counter)
        self._ledger = Ledger(
            ctx, counter, self._options.sink, self._options.monitor, self._rng_states
        )
        self._later = Later(ctx, island, self._replace)
        self.abort_error: str | None = None
        self.abort_is_mistake = False
        self.interrupted = False
        self.exhausted = False

    def run(self) -> LocalLog:
        """Evaluate until the budget is spent, the time is up or the search is stopped; then
        release the followers and drain the mailbox (collective over all ranks)."""
        ctx, layout = self._ctx, self._ctx.layout
        _log.info(
            "worker %d of %d (island %d, %d rank(s)) starts; session %d",
            *(ctx.worker, layout.n_workers, ctx.island, layout.ranks_per_worker, ctx.session),
        )
        self._later.take_over(self._options.stored)
        while self._step():
            pass
        self._later.leave()
        ledger = self._ledger
        _log.info(
            "worker %d stops after %d evaluations (%d failed; %d duplicate proposals avoided)",
            *(ctx.worker, ledger.log.size, ledger.n_failed, self._island.duplicates_avoided),
        )
        if self._island.pending_heard:
            _log.info(
                "worker %d heard %d of its peers' candidates while they were evaluated",
                *(ctx.worker, self._island.pending_heard),
            )
        self._ledger.publish(force=True)
        self._ledger.close()
        self._crew.release()
        self._mailbox.drain()
        return self._ledger.log

    def confirm(self, counter: TicketCounter, tasks: Sequence[Task], sink: Sink | None) -> LocalLog:
        """After :meth:`run`: evaluate the confirmation tasks this worker claims (one ticket
        of ``counter`` each), journaled to ``sink``; then release the followers. Returns the
        confirmations' records."""
        self._ledger.restart(counter, sink)
        Confirmations(self._ctx, self._crew, self._ledger, counter).run(tasks)
        self._ledger.close()
        self._crew.release()
        return self._ledger.log

    @property
    def stats(self) -> dict[str, int]:
        """What this leader sent and received, and what it avoided."""
        return {
            "messages": self._mailbox.sent_messages,
            "message_bytes": self._mailbox.sent_bytes,
            "migrants_sent": self._emigration.sent,
            "immigrants_received": self._island.immigrants_received,
            "duplicates_avoided": self._island.duplicates_avoided,
            "exhausted": int(self.exhausted),
        }

    # --- one evaluation ----------------------------------------------------------------------
    def _step(self) -> bool:
        ctx = self._ctx
        self._absorb()
        self._mailbox.progress()
        now = time.perf_counter()
        self._ledger.publish()
        if ctx.deadline is not None and now >= ctx.deadline:
            return False
        if self._options.should_stop is not None and self._options.should_stop():
            _log.info("worker %d: stop requested (signal); stopping the search", ctx.worker)
            self.interrupted = True
            self._counter.stop()
            return False
        paused, member = self._later.paused, self._later.member
        resumed = paused.next() if paused is not None else None
        if resumed is not None:
            return self._resume(resumed)
        if member is not None and member.done:
            return False
        record_id = self._tickets.next(now)
        if record_id is None:
            return False
        segment = member.next(record_id, self._rng) if member is not None else None
        if segment is not None:
            return self._evaluate(record_id, segment.genes, segment=segment)
        initial, first = self._options.initial, self._options.first_id
        if initial is not None and record_id - first < len(initial):
            genes = initial[record_id - first]  # the first ids are the initial configurations
            self._island.reserve(genes)
        else:
            genes = self._island.propose(self._rng, record_id, ctx.run_seed)
        if genes is None:
            self._exhausted()
            return False
        first = None if member is None else member.first(record_id, genes)  # a new PBT member
        return self._evaluate(record_id, genes, segment=first)

    def _resume(self, paused: Paused) -> bool:
        """Resume a paused training from its checkpoint (ASHA's promotion)."""
        _log.info("evaluation %d: resumed (promoted at its rung %d)", paused.record_id, paused.rung)
        return self._evaluate(paused.record_id, paused.genes, paused.evaluated)

    def _evaluate(
        self,
        record_id: int,
        genes: np.ndarray,
        so_far: Evaluated | None = None,
        segment: Segment | None = None,
    ) -> bool:
        """Hand a candidate to the worker's ranks, evaluate and settle it: a new one, a paused
        training resumed after ``so_far`` (its record replaces the paused one's), or a PBT
        ``segment`` (a record of its own)."""
        if segment is not None:
            so_far = segment.resumed(time.time() - self._ctx.t0)
        resumed = so_far is not None
        if self._announcement is not None:
            self._announce(record_id, genes)
        self._crew.hand_out(record_id, genes, _RESUMED if resumed else _EVALUATED)
        if self._stopping is not None:
            self._stopping.candidate(record_id, so_far.judged if resumed else [])
            self._stopping.pause_at(None if segment is None else segment.until)
        evaluated = run_candidate(self._ctx, self._crew, record_id, genes, self._stopping, so_far)
        if segment is None:
            kind = _RESUMED if resumed else _EVALUATED
            return self._settle(record_id, genes, evaluated, kind, replaces=resumed)
        if evaluated is not None and resumed:  # a segment's record holds its own steps only
            evaluated = replace(evaluated, reports=evaluated.reports[len(so_far.reports) :])
        lineage = (segment.parent, segment.member)
        return self._settle(record_id, genes, evaluated, _EVALUATED, lineage=lineage)

    def _settle(
        self,
        record_id: int,
        genes: np.ndarray,
        evaluated: Evaluated | None,
        kind: int,
        replaces: bool = False,
        lineage: tuple[int, int] = (-1, -1),
    ) -> bool:
        """Record an evaluation and share it; whether the search goes on."""
        ctx = self._ctx
        if evaluated is None:  # the step budget was spent before it started
            return self._steps_spent()
        outcome = evaluated.outcome
        mistake = outcome.error if outcome.mistake else _reports_nothing(ctx, evaluated)
        if mistake is not None or outcome.stop:  # not recorded: the search must stop
            self.abort_error, self.abort_is_mistake = mistake, mistake is not None
            self.interrupted = _interrupted(record_id, outcome)
            self._counter.stop()
            return False
        row = self._ledger.record(record_id, genes, evaluated, kind, replaces, lineage)
        self._share(row)
        paused_at = None if self._stopping is None else self._stopping.paused_at
        self._later.settled(row, genes, evaluated, paused_at)
        self._failures.island_success |= self._island.heard_success
        self.abort_error = self._failures.broken(outcome)
        if self.abort_error is not None:
            return False
        if self._stopping is not None and self._stopping.budget_spent:
            return self._steps_spent()
        self._emigration.maybe(self._island.pool, self._later.migrants)
        if self._announcement is None:  # else it leaves with the next announcement
            self._mailbox.flush()
        return True

    def _announce(self, record_id: int, genes: np.ndarray) -> None:
        """Tell the island peers the candidate this worker starts to evaluate, in one message
        with its previous result (see :meth:`Breeder.pending`)."""
        row = self._announcement
        row["id"], row["genes"] = record_id, genes
        self._mailbox.post(row)
        self._mailbox.flush(force=True)

    def _share(self, row: np.void) -> None:
        self._island.learn(row)
        self._mailbox.post(row)

    def _replace(self, record_id: int, genes: np.ndarray, evaluated: Evaluated) -> None:
        """Record what became of a paused training that will not be resumed."""
        self._share(self._ledger.record(record_id, genes, evaluated, replaces=True))

    def _steps_spent(self) -> bool:
        _log.info("worker %d: the step budget is spent; stopping the search", self._ctx.worker)
        self._counter.stop()
        return False

    def _exhausted(self) -> None:
        seen = self._island.seen
        what = f"all {seen.size()}" if seen is not None else "all"
        _log.warning(
            "island %d has evaluated %s configurations of the space (or has them in flight): "
            "worker %d stops",
            *(self._ctx.island, what, self._ctx.worker),
        )
        self.exhausted = True

    def _record_stuck(
        self, record_id: int, genes: np.ndarray, times: tuple[float, float], error: str
    ) -> None:
        """Record the failure after which this worker's other ranks are stuck."""
        failure = Outcome(Status.FAILED, np.nan, None, error)
        self._ledger.record(record_id, genes, Evaluated(failure, *times, [], []))

    def _rng_states(self) -> list[dict[str, Any]]:
        return [self._rng.bit_generator.state, self._migrate_rng.bit_generator.state]

    def _absorb(self) -> None:
        """Apply every record that has arrived (see :meth:`Island.absorb`)."""
        rows = self._mailbox.receive()
        if len(rows):
            self._island.absorb(rows)


def _mailbox(ctx: RunContext, island: Island) -> Mailbox:
    """The leader's channel to its island peers."""
    workers = ctx.layout.island_workers(ctx.island)
    peers = [ctx.comms.leader_rank(w) for w in workers if w != ctx.worker]
    # Batching saves a message per record of a no-op objective, and costs a model-based
    # strategy up to a millisecond of its peers' results: several CMA-ES generations there
    # (jobs/bench/quality.py, cmaes: sphere 8.5e-14 batched against 2.3e-17 at once).
    flush_interval = 0.0 if island.model_based else FLUSH_INTERVAL
    gossip = _gossip(ctx, island.pool.capacity)
    return Mailbox(ctx.comms.world, ctx.dtype, peers, flush_interval, gossip=gossip)


def _announcement(ctx: RunContext) -> np.void:
    """The row that announces a candidate in flight (its id and genes set per candidate)."""
    row = np.zeros(1, dtype=ctx.dtype)[0]
    row["kind"], row["status"], row["values"] = _PENDING, _FAILED, np.nan
    row["island"], row["worker"], row["owner"] = ctx.island, ctx.worker, ctx.worker
    row["step"] = -1
    return row


def _gossip(ctx: RunContext, elite: int) -> Gossip | None:
    """The leader's peer choice under ``dissemination: gossip`` on an island large enough
    for it to matter, forwarding the best ``elite`` records it knows; its random peers from a
    stream of its own (the run seed's third for the worker, beside breeding and migration)."""
    workers = ctx.layout.island_workers(ctx.island)
    if ctx.settings.dissemination != "gossip" or len(workers) < SMALLEST_ISLAND:
        return None
    ring = [ctx.comms.leader_rank(w) for w in workers]
    rng = default_rng(SeedSequence(ctx.run_seed, spawn_key=(*_stream_key(ctx), 2)))
    sign = float(ctx.settings.signs[0])
    return Gossip(ring, workers.index(ctx.worker), rng, sign, ctx.dtype, elite)


def _generators(
    ctx: RunContext, states: list[dict[str, Any]] | None
) -> tuple[np.random.Generator, np.random.Generator]:
    """The worker's breeding and migration streams: from the run seed, its worker and session,
    or as ``states`` left them (a resumed worker's)."""
    seeds = SeedSequence(ctx.run_seed, spawn_key=_stream_key(ctx)).spawn(2)
    breed, migrate = (default_rng(s) for s in seeds)
    if states:
        breed.bit_generator.state, migrate.bit_generator.state = states[0], states[1]
    return breed, migrate


def _stream_key(ctx: RunContext) -> tuple[int, ...]:
    """The worker's key among the run seed's streams (and its session's, on resume)."""
    return (ctx.worker,) if ctx.session == 0 else (ctx.worker, ctx.session)


def _interrupted(record_id: int, outcome: Outcome) -> bool:
    """Whether the objective was interrupted (then the search stops; said once here)."""
    if outcome.stop and not outcome.mistake:
        _log.warning(
            "evaluation %d was interrupted (KeyboardInterrupt in the objective); it is not "
            "recorded; stopping the search",
            record_id,
        )
    return outcome.stop and not outcome.mistake


def _reports_nothing(ctx: RunContext, evaluated: Evaluated) -> str | None:
    """Why a search whose only budget is in steps cannot go on: an evaluation succeeded
    without a report, so the budget would never be spent."""
    budget = ctx.settings.budget
    if budget.steps is None or budget.evaluations is not None or budget.time is not None:
        return None
    if evaluated.outcome.status != Status.OK or evaluated.reports:
        return None
    return (
        "budget.steps counts trial.report calls, but the objective returned without "
        "reporting a step, so the search would never end: call trial.report(step, value) "
        "after each step (epoch), or set budget.evaluations or budget.time"
    )
