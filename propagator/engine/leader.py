"""The loop of a worker leader.

A worker leader loops: absorb what its island peers and other islands sent, take a ticket,
breed, hand the candidate to its worker's other ranks, evaluate, share the record, maybe send
migrants. Nothing in the loop waits for another worker. The other ranks of a multi-rank
worker (followers, :mod:`.follower`) only receive candidates and evaluate them.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
from mpi4py import MPI

from ..strategies import Breeder
from ..strategies.pool import Pool
from .comm.backoff import wait
from .comm.mailbox import Mailbox
from .comm.tickets import TicketCounter, Tickets
from .context import LeaderOptions, RunContext
from .evaluation import Outcome, error_headline
from .follower import run_trial, worker_outcome
from .records import Kind, LocalLog, Status

_log = logging.getLogger("propagate")

# Plain ints: enum attribute lookups cost microseconds each on the hot path.
_EVALUATED, _IMMIGRANT, _DEPARTED, _STOP = (int(k) for k in Kind)
_OK = int(Status.OK)


class Leader:
    """The loop of a worker's first rank. Call :meth:`run` once."""

    def __init__(
        self, ctx: RunContext, counter: TicketCounter, options: LeaderOptions | None = None
    ) -> None:
        self._ctx = ctx
        self._options = options or LeaderOptions()
        layout, island = ctx.layout, ctx.island
        island_size = layout.island_sizes[island]
        self._breeder = ctx.settings.strategy[island].create(ctx.space, island_size)
        self._breeder_learns = type(self._breeder).tell is not Breeder.tell
        self._pool = Pool(self._breeder.pool_size, ctx.dtype)
        peers = [ctx.comms.leader_rank(w) for w in layout.island_workers(island) if w != ctx.worker]
        self._mailbox = Mailbox(ctx.comms.world, ctx.dtype, peers)
        key = (ctx.worker,) if ctx.session == 0 else (ctx.worker, ctx.session)
        breed_seq, migrate_seq = np.random.SeedSequence(ctx.run_seed, spawn_key=key).spawn(2)
        self._rng = np.random.default_rng(breed_seq)
        self._migrate_rng = np.random.default_rng(migrate_seq)
        if self._options.rng_states:
            self._rng.bit_generator.state = self._options.rng_states[0]
            self._migrate_rng.bit_generator.state = self._options.rng_states[1]
        self._counter = counter
        self._tickets = Tickets(counter, layout.n_workers)
        self._log = LocalLog(ctx.dtype)
        self._sign = ctx.settings.sign
        self._multi_rank = layout.ranks_per_worker > 1
        self._candidate = np.zeros(1, dtype=ctx.dtype)
        migration = ctx.settings.migration
        self._emigration_probability = (
            migration.probability / island_size if layout.n_islands > 1 else 0.0
        )
        self._migrants_to = migration.matrix(layout.n_islands)[island]
        self._pollination = migration.pollination
        self._had_success = False  # this worker
        self._island_success = False  # this worker or a peer it heard from
        self._consecutive_failures = 0
        self._first_error: str | None = None
        self._migrants_sent = 0
        self._immigrants_received = 0
        self._published = (0, 0)  # evaluations and failures already published
        self._n_failed = 0
        self._best_loss = np.inf
        self._next_publish = 0.0
        self._stored = 0  # records of the log already in the store's HDF5 file
        self.abort_error: str | None = None
        self.interrupted = False
        if self._options.pool_rows is not None:
            self._seed_pool(self._options.pool_rows)

    def run(self) -> LocalLog:
        """Evaluate until the budget is spent, the time is up or the search is stopped; then
        release the followers and drain the mailbox (collective over all ranks)."""
        ctx = self._ctx
        _log.info(
            "worker %d of %d (island %d, %d rank(s)) starts; session %d",
            ctx.worker,
            ctx.layout.n_workers,
            ctx.island,
            ctx.layout.ranks_per_worker,
            ctx.session,
        )
        while self._step():
            pass
        _log.info(
            "worker %d stops after %d evaluations (%d failed)",
            ctx.worker,
            self._log.size,
            self._n_failed,
        )
        self._publish(force=True)
        if self._options.sink is not None:
            self._options.sink.close(self._unstored(), self._rng_states())
        if self._multi_rank:
            self._candidate["kind"] = _STOP
            wait(self._ctx.comms.worker.Ibcast([self._candidate, MPI.BYTE], root=0), cap=0.001)
        self._mailbox.drain()
        return self._log

    @property
    def traffic(self) -> dict[str, int]:
        """What this leader sent and received: record messages and their bytes, migrants."""
        return {
            "messages": self._mailbox.sent_messages,
            "message_bytes": self._mailbox.sent_bytes,
            "migrants_sent": self._migrants_sent,
            "immigrants_received": self._immigrants_received,
        }

    # --- one evaluation ----------------------------------------------------------------------
    def _step(self) -> bool:
        ctx = self._ctx
        self._absorb()
        self._mailbox.progress()
        now = time.perf_counter()
        if now >= self._next_publish:
            self._publish()
        if ctx.deadline is not None and now >= ctx.deadline:
            return False
        if self._options.should_stop is not None and self._options.should_stop():
            _log.info("worker %d: stop requested (signal); stopping the search", ctx.worker)
            self.interrupted = True
            self._counter.stop()
            return False
        record_id = self._tickets.next(now)
        if record_id is None:
            return False
        genes = np.minimum(np.maximum(self._breeder.ask(self._pool, self._rng), 0.0), 1.0)
        if self._multi_rank:
            self._candidate["id"] = record_id
            self._candidate["kind"] = _EVALUATED
            self._candidate["genes"] = genes
            wait(ctx.comms.worker.Ibcast([self._candidate, MPI.BYTE], root=0), cap=0.001)
        outcome, start, end, reports = run_trial(ctx, record_id, genes)
        if self._multi_rank:
            outcome = worker_outcome(ctx, outcome)
        w = ctx.worker
        status = int(outcome.status)
        row = self._log.append(
            (
                record_id,
                self._log.size,
                ctx.island,
                w,
                w,
                status,
                _EVALUATED,
                start,
                end,
                outcome.value,
                genes,
            ),
            outcome.metrics,
            outcome.error,
            reports,
        )
        if self._options.sink is not None:
            self._options.sink.append(row, outcome.metrics, outcome.error, reports)
        ok = status == _OK
        loss = self._sign * outcome.value
        if ok:
            self._pool.offer(row, loss)
            self._best_loss = min(self._best_loss, loss)
        else:
            self._n_failed += 1
            _log.warning("evaluation %d failed: %s", record_id, error_headline(outcome.error))
        if self._breeder_learns:
            self._breeder.tell(genes[None, :], np.array([loss]), np.array([ok]))
        self._mailbox.post(row)
        if self._broken(outcome):
            return False
        self._maybe_emigrate()
        self._mailbox.flush()
        return True

    def _publish(self, force: bool = False) -> None:
        """Every half second: share progress counts, show them (rank 0), update the store."""
        done, failed = self._log.size, self._n_failed
        if (done, failed) != self._published or force:
            self._counter.publish(
                done - self._published[0], failed - self._published[1], self._best_loss
            )
            self._published = (done, failed)
        if self._options.monitor is not None:
            self._options.monitor.update(*self._counter.progress())
        sink = self._options.sink
        if sink is not None and sink.consolidate(self._unstored(), self._rng_states()):
            self._stored = self._log.size
        self._next_publish = time.perf_counter() + 0.5

    def _unstored(self) -> np.ndarray:
        """Records journaled but not yet in the HDF5 file."""
        return self._log.view()[self._stored :]

    def _rng_states(self) -> list[dict[str, Any]]:
        return [self._rng.bit_generator.state, self._migrate_rng.bit_generator.state]

    def _seed_pool(self, rows: np.ndarray) -> None:
        """Start from records of an earlier session of this run (they are known to be ok)."""
        loss = self._sign * rows["values"][:, 0]
        for i in np.argsort(loss, kind="stable")[: self._pool.capacity]:
            self._pool.offer(rows[i], loss[i])
        if self._breeder_learns and len(rows):
            self._breeder.tell(rows["genes"], loss, rows["status"] == _OK)
        self._island_success = self._island_success or bool(len(rows))

    def _broken(self, outcome: Outcome) -> bool:
        """After a failure: whether the objective looks broken (then stop everyone)."""
        if outcome.status == Status.OK:
            if not self._had_success:
                self._had_success = self._island_success = True
                self._counter.note_success()
            self._consecutive_failures = 0
            return False
        self._consecutive_failures += 1
        self._first_error = self._first_error or outcome.error
        limit = self._ctx.settings.max_initial_failures
        if self._island_success or self._consecutive_failures < limit:
            return False
        if self._counter.any_success():
            self._island_success = True
            return False
        self.abort_error = (
            f"the first {self._consecutive_failures} evaluations of worker {self._ctx.worker} "
            f"failed and none has succeeded anywhere; stopping the search. First error:\n"
            f"{self._first_error}"
        )
        self._counter.stop()
        _log.error(self.abort_error)
        return True

    # --- island traffic ----------------------------------------------------------------------
    def _absorb(self) -> None:
        """Apply every record that has arrived: peers' results, immigrants, departures."""
        rows = self._mailbox.receive()
        if not len(rows):
            return
        pool = self._pool
        kind = rows["kind"]
        departed = kind == _DEPARTED
        if departed.any():
            for record_id in rows["id"][departed]:
                pool.remove(record_id)
            rows = rows[~departed]
            kind = rows["kind"]
        ok = rows["status"] == _OK
        loss = self._sign * rows["values"][:, 0]
        if self._breeder_learns and len(rows):
            self._breeder.tell(rows["genes"], loss, ok)
        if not ok.any():
            return
        self._island_success = True
        immigrant = kind == _IMMIGRANT
        self._immigrants_received += int(np.count_nonzero(immigrant & ok))
        # Only rows that would enter the pool are worth a Python-level loop.
        worst = pool.loss.max() if len(pool) == pool.capacity else np.inf
        for i in np.flatnonzero(ok & (immigrant | (loss < worst))):
            if immigrant[i]:
                pool.replace_worst(rows[i], loss[i])
            else:
                pool.offer(rows[i], loss[i])

    def _maybe_emigrate(self) -> None:
        if not self._emigration_probability or not len(self._pool):
            return
        if self._migrate_rng.random() >= self._emigration_probability:
            return
        ctx, pool = self._ctx, self._pool
        targets = np.flatnonzero(self._migrants_to)
        if self._pollination:
            for island in targets:
                self._send_migrants(pool.best(int(self._migrants_to[island])), int(island))
            return
        # Migration moves records: only the owner may send one, and each goes to one island;
        # the targets take turns in random order, so none is starved when few are eligible.
        mine = pool.rows["owner"] == ctx.worker
        emigrants = pool.best(int(self._migrants_to[targets].sum()), mine)
        start = 0
        for island in self._migrate_rng.permutation(targets):
            batch = emigrants[start : start + int(self._migrants_to[island])]
            start += len(batch)
            self._send_migrants(batch, int(island))
            for r in batch:
                pool.remove(r["id"])
                r["kind"] = _DEPARTED
                self._mailbox.post(r)

    def _send_migrants(self, rows: np.ndarray, island: int) -> None:
        if not len(rows):
            return
        workers = self._ctx.layout.island_workers(island)
        migrants = rows.copy()
        migrants["kind"] = _IMMIGRANT
        migrants["owner"] = self._migrate_rng.choice(np.asarray(workers), size=len(migrants))
        self._mailbox.send(migrants, [self._ctx.comms.leader_rank(w) for w in workers])
        self._migrants_sent += len(migrants)
