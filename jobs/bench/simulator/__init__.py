"""A discrete-event simulator of the search at 2^6 .. 2^16 workers (issue 17, item 6).

    python jobs/bench/_sim_costs.py            # measure the costs on this machine (costs.json)
    python jobs/bench/simulate.py              # the scale table
    python jobs/bench/simulate.py --validate   # real mpiexec runs at 2-128 ranks against it

**What runs for real.** Every simulated worker holds the engine's own objects, built as the
engine builds them: an :class:`~propagator.engine.island.Island` (the default strategy's
breeder from ``create_breeder``, its pool, its seen configurations: breeding is the real
``ask``/``tell``, merging received records is the real ``absorb``), a
:class:`~propagator.engine.comm.mailbox.Mailbox` (batching, flush interval, counts) routing
through the real :class:`~propagator.engine.comm.gossip.Gossip`, the real
:class:`~propagator.engine.migration.Emigration` (when and whom to send migrants), and the
real :class:`~propagator.engine.comm.tickets.Tickets` (the budget's ticket stream: the
stopping decision). Their random streams are seeded as the leader seeds them. The only seam
in the engine is the mailbox's ``clock`` argument (the flush interval reads the virtual
clock); :class:`.virtual.VirtualMailbox` subclasses the mailbox and replaces its MPI calls.

**What is modelled** (measured costs from ``costs.json``, ``jobs/bench/_sim_costs.py``):

* the loop around those objects follows the order of ``Leader._step`` (absorb, ticket,
  propose, evaluate, learn, post, emigrate, flush) but is not its code: the crew, the
  ledger, the evaluation wrapper and the store are charged as one measured ``loop`` cost per
  evaluation; the breeding CPU is charged from the cost table at the view's history size
  (not timed in the simulator: the run is deterministic for a seed);
* messages: one-way ``latency + bytes * per_byte``; the sender's and the receiver's CPU per
  message; a message waits in the receiver's inbox until its next step, as the real leader
  receives only between evaluations; no eager limit (records are small);
* the ticket counter is one server on rank 0 (atomics queue there), a claim-table probe a
  round trip; windows never wait for the host's progress (MPICH's shared-memory atomics, or
  the progress thread: :mod:`propagator.engine.comm.progress`);
* CPU: a core per worker (a cluster), or ``cores`` shared first come first served (the
  oversubscribed validation runs);
* the objective: a lognormal sleep (mean, CV) drawn from the evaluation's ``trial.seed``;
  stragglers (a fraction ``slowdown`` times slower); no failures, no pruning, no PBT.

**Dead ranks.** The real engine has no failure detector. A rank that exits kills the job
under ``mpiexec``'s defaults (MPICH's Hydra, Open MPI), and the run is resumed from its store
(``tests/test_crash.py``). A rank that stops without exiting (a hung node) is what the
simulator models: it evaluates, receives and forwards nothing more, its evaluation in flight
and its unused tickets are lost, its peers keep sending to it; the others go on until the
budget. The real engine would then **not end**: the senders' ``Issend``s to it never
complete, and the shutdown (NBX, ``Mailbox.drain``) waits for them; nor does it survive the
death of a window's host (rank 0's counter, an island's claim table), which the simulator
does not model (its counter and tables stay up).

**Memory per rank** is the resident set of a rank after ``import propagator`` (measured by
``_sim_costs.py``) plus the simulator's resident growth per worker while building and running
the real structures (island view, breeder, gossip, mailbox buffers); an island's first rank
also hosts the claim table window (8 bytes x ``table_slots``). The bounded view's growth over
a long search (about 23 MB per rank after 1,000,000 evaluations, ``jobs/bench/memory.py``) is
not reached in a few evaluations per worker and comes on top.
"""
