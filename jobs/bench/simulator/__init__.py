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
  stragglers (a fraction ``slowdown`` times slower); no failures, no pruning, no PBT, and no
  pending-point announcements (issue 22: the leader's extra row per candidate for a
  strategy with TPE under ``dissemination: all``; off under gossip, and the default
  portfolio on the simulator's 2 floats has no TPE).

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

**Large sizes by a sample of islands** (``sample_islands``; ``simulate.py --sample-islands``).
On this machine, shared with other jobs at load averages of 50-165 during this work, the
full runs of 2^14 and 2^16 workers had had 21 s of CPU each in 24 minutes (still building
their workers) when they were stopped; the full 1,024-worker run takes 25 s at a load of 5
and 220-350 s at 20-80. Islands interact only through
migration and the ticket counter, so 2^14 and 2^16 run with the first 4 islands (256
workers) simulated with the real code, the migration ring closed over them, and the other
workers' ticket claims (one at 0 and one after each of their lognormal evaluations) queued
at the counter with the simulated ones; throughput is scaled to all workers. Checked at
1,024 workers: 4 of 16 islands gave 99.998 % / 17.5 evaluations/s / 3.67 messages per
evaluation, all 16 gave 99.998 % / 17.6 / 3.60.

**Validation** (``python jobs/bench/simulate.py --validate --duration 120 --ranks 2 8 32``
and ``--duration 300 --ranks 64 128``): real ``mpiexec -n N`` searches on this 2-core machine
(mpich), the default strategy, islands of up to 64 (128 ranks: 2 islands, ring migration),
``dissemination: gossip``, an objective sleeping lognormal times of mean 1 s and CV 0.5 (1 s:
at 128 ranks the control plane then needs about 128 x 1.5 ms per second, 0.2 of a core, so
the 2 cores are not the bottleneck; at 0.2 s it would be a whole core), against the
simulator on 2 shared cores with the real run's time after start-up. ``from s``: the real
start-up (window start). Load average 71 / 82 / 51
before the first three sizes, 30 / 42 / 42 before the last two, 21 / 60 / 88 after:

=====  =======  ======  ========  =======  =========  ========  ===========  ========
ranks  evals    from s  util %    evals/s  msgs/eval  err util  err evals/s  err msgs
=====  =======  ======  ========  =======  =========  ========  ===========  ========
2      235 r    2.2     99.17 r   1.98 r   1.000 r
       237 s            99.92 s   2.00 s   1.000 s    +0.8 %    +1.1 %       +0.0 %
8      862 r    11.0    99.11 r   7.87 r   1.679 r
       875 s            99.91 s   8.00 s   1.641 s    +0.8 %    +1.7 %       -2.2 %
32     1,845 r  60.5    96.93 r   30.64 r  2.394 r
       1,930 s          99.91 s   32.13 s  2.397 s    +3.1 %    +4.9 %       +0.1 %
64     15,090 r 58.8    98.67 r   62.41 r  1.338 r
       15,456 s         99.91 s   63.97 s  1.299 s    +1.3 %    +2.5 %       -2.9 %
128    20,814 r 123.4   94.94 r   117.20 r 2.402 r
       22,660 s         99.90 s   127.96 s 2.387 s    +5.2 %    +9.2 %       -0.6 %
=====  =======  ======  ========  =======  =========  ========  ===========  ========

(r: real, s: simulated.) All within +-15 %. The simulator is optimistic on utilization and
throughput, more so with more ranks (+0.8 % at 2, +5 % / +9 % at 128): it gives the 2 cores
to the search alone, while on this machine other jobs held most of them (at 128 ranks, load
average about 100 on 2 cores); messages per evaluation agree within 3 %. Messages per
evaluation fall with the run's length (64 ranks, 300 s: 1.34) as the gossip's elites fill
(fewer records enter them, fewer extra copies), and migration adds about 0.9 (128 ranks).

**At scale** (``python jobs/bench/simulate.py`` for 64 and 1,024 at 60 s and 1,024 at 1 s;
``--workers 16384 65536 --sample-islands 4``; the default strategy, islands of 64, gossip,
ring migration, lognormal CV 0.5, budget 4 mean evaluation times, seed 0, a core per worker):

=======  ======  =======  ====  =====  ========  ======  ========  =========  ======  =======
workers  mean s  islands  sim.  evals  util %    from s  evals/s   msgs/eval  B/eval  MB/rank
=======  ======  =======  ====  =====  ========  ======  ========  =========  ======  =======
64       60      1        64    298    99.999    0.001   1.1       2.71       296     46.3
1,024    60      16       1024  4,725  99.998    0.003   17.6      3.60       358     45.2
16,384   60      256      256   1,164  99.998    0.041   276.6     3.65       361     46.0
65,536   60      1,024    256   1,173  99.998    0.162   1,116.4   3.63       360     53.2
1,024    1       16       1024  4,719  99.904    0.003   1,054.7   3.63       360     45.3
=======  ======  =======  ====  =====  ========  ======  ========  =========  ======  =======

``sim.``: workers simulated with the real code; ``from s``: when the last worker started its
first evaluation (the counter's start-up burst: 65,536 first claims of 2.5 µs each queue
0.16 s); MB per rank in MiB, of which 45.2 is the rank's base after ``import propagator``
and, at 1,024 islands, 8.0 the migration matrix every rank held then (8 x islands^2 bytes: 2
GB per rank at 16,384 islands; since 7f40ef6 a rank builds its island's row only, 8 x
islands bytes, so those 8.0 MiB are now 8 KiB); an island's first rank holds 8 MiB more (its
claim table for a budget in time). Targets met in this model: >= 99 % at 16,384 and >= 95 %
at 65,536 with 60 s evaluations, >= 95 % at 1,024 with 1 s. At 60 s the control plane (about
1.5 ms of CPU per evaluation, breeding the most) is 0.003 % of a worker's time, so these
utilizations say that nothing in the modelled control plane grows with the worker count, not
that a real cluster will reach them: start-up, the final result's gather (every record to
every rank) and failures are outside the window and the model.

Stragglers and dead ranks at 16,384 (4 islands simulated): 5 % of the workers 4x slower:
99.998 %, 276.5 evaluations/s, 3.76 messages per evaluation (seeds 1 and 2: throughput
-2.7 % and -3.5 % against no stragglers, -3.75 % expected; seed 0's -0.04 % is the noise of
about 4 evaluations per worker); 1 % of the workers dead at 90 s: 99.969 % of the survivors'
and the dead's time alive, 3 evaluations in flight lost, the others go on to the budget
(``--dead 0.01 --dead-at 90``).
"""
