"""The simulator's costs, measured on this machine (issue 17, item 6): writes ``costs.json``.

    python jobs/bench/_sim_costs.py                # all, into jobs/bench/simulator/costs.json
    python jobs/bench/_sim_costs.py --out /tmp/costs.json --steps 100

* **MPI** (``mpiexec -n 2``, mpi4py): a ping-pong of raw byte messages sent as the mailbox
  sends them (``Issend``; ``Improbe`` + ``Imrecv`` polled), 74 B to 74 kB, timed in blocks
  of 100, the fastest block kept; the one-way time is fitted as ``latency + bytes *
  per_byte``. The CPU the sender spends in ``Issend``
  and the receiver in ``Improbe`` + ``Imrecv`` + ``Test`` per message; and the round trip of
  a ``Fetch_and_op`` + ``Flush`` on rank 0's window (a ticket claim, a claim-table probe);
  and a rank's resident memory after ``import propagator`` (before any search).
CPU costs are process CPU time (``time.process_time``), which the other jobs on the
machine's cores do not inflate as they do wall time.

* **Breeding** (one process, no MPI): a real :class:`~propagator.engine.island.Island` of the
  default strategy (``portfolio``) and of the GA, for an island of ``--island-workers``
  workers on 2 floats, after ``n`` told records (0, 100, 1,000, 10,000): the CPU of
  ``propose`` + ``learn`` of one evaluation (mean of ``--steps``), and of ``absorb`` per
  received record (batches of 4).
* **Loop**: the engine's own CPU per evaluation beyond breeding: one rank, ``pg.search`` of a
  no-op objective with the GA, seconds per evaluation minus the GA's ``propose`` + ``learn``
  at that history (the ledger, the crew, the evaluation wrapper, the ticket stream).

Measured (this 2-core machine, shared: load average about 45 while measuring, from other
engineers' benchmarks), the values in ``costs.json`` that the simulator uses:

* MPI (mpich, shared memory): latency 6.4 µs one-way, 0.25 ns per byte; send CPU 2.5 µs,
  receive CPU 2.5 µs per message; an atomic round trip 2.5 µs. (Without the fastest-block
  rule the same script gave 18-310 µs one-way under that load.)
* Breeding, ms of CPU per evaluation (propose + learn) at 0 / 100 / 1,000 / 10,000 told
  records: portfolio 0.56 / 0.65 / 0.63 / 0.64, GA 0.099 / 0.149 / 0.140 / 0.141; absorb
  per received record: portfolio 0.105 / 0.110 / 0.108 / 0.093, GA 0.022 / 0.032 / 0.029 /
  0.028 (island of 64 workers, 2 floats).
* Loop: 0.072 ms of CPU per evaluation. A rank's base: 47.4 MB resident.

(See the simulator's docstring, ``jobs/bench/simulator/__init__.py``, for how they are used.)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _launch import launch, parse

SIZES = (74, 740, 7_400, 74_000)  # bytes per message: 1 to 1,000 records
HISTORY = (0, 100, 1_000, 10_000)
BLOCK = 100  # pings timed together; the fastest block counts (the other jobs' preemptions
# would otherwise set the figure: one-way 25-300 µs measured under load averages of 50)
COSTS = Path(__file__).parent / "simulator" / "costs.json"


def _mpi(args: argparse.Namespace) -> None:
    """Rank 0 and 1 ping-pong; rank 1 also times atomics on rank 0's window."""
    from mpi4py import MPI

    import propagator  # noqa: F401  (a rank's resident set before the search: imports done)

    pages = int(Path("/proc/self/statm").read_text().split()[1])
    rank_base = pages * os.sysconf("SC_PAGE_SIZE")
    comm = MPI.COMM_WORLD
    other = 1 - comm.rank
    status = MPI.Status()
    out: dict[str, list[float]] = {"size": [], "one_way": [], "send_cpu": [], "recv_cpu": []}
    for size in SIZES:
        buf = np.zeros(size, dtype=np.uint8)
        comm.Barrier()
        sends, recvs, blocks = [], [], []
        for i in range(args.pings):
            if i % BLOCK == 0:
                t = time.perf_counter()
            if comm.rank == i % 2:
                t1 = time.perf_counter()
                req = comm.Issend([buf, MPI.BYTE], other, 11)
                sends.append(time.perf_counter() - t1)
                req.Wait()
            else:
                while (msg := comm.Improbe(other, 11, status)) is None:
                    pass
                t1 = time.perf_counter()
                req = msg.Irecv([buf, MPI.BYTE])
                while not req.Test():
                    pass
                recvs.append(time.perf_counter() - t1)
            if i % BLOCK == BLOCK - 1:
                blocks.append((time.perf_counter() - t) / BLOCK)
        out["size"].append(size)
        out["one_way"].append(min(blocks))
        out["send_cpu"].append(statistics.median(sends))
        out["recv_cpu"].append(statistics.median(recvs))
    win = MPI.Win.Allocate(8 if comm.rank == 0 else 0, 8, comm=comm)
    win.Lock_all()
    one, old = np.ones(1, dtype=np.int64), np.zeros(1, dtype=np.int64)
    comm.Barrier()
    blocks = [math.inf]
    if comm.rank == 1:
        for _ in range(args.pings // BLOCK):
            t = time.perf_counter()
            for _ in range(BLOCK):
                win.Fetch_and_op(one, old, 0, 0, MPI.SUM)
                win.Flush(0)
            blocks.append((time.perf_counter() - t) / BLOCK)
    atomic = min(blocks)
    win.Unlock_all()
    comm.Barrier()  # rank 0 stays in MPI (progress) until rank 1 is done
    win.Free()
    atomic = comm.bcast(atomic, root=1)
    if comm.rank == 0:
        Path(args.out).write_text(json.dumps({**out, "atomic": atomic, "rank_base": rank_base}))


def _island(strategy: str, island_workers: int):
    import propagator as pg
    from propagator.engine.island import Island
    from propagator.engine.seen import Seen
    from propagator.settings import Budget, Settings
    from propagator.strategies import make_strategy
    from propagator.strategies.base import create_breeder

    space = pg.Space({"x0": pg.Float(-5.12, 5.12), "x1": pg.Float(-5.12, 5.12)})
    settings = Settings(budget=Budget(evaluations=1), strategy=(make_strategy(strategy),))
    breeder = create_breeder(settings.strategy[0], space, island_workers, 1)
    dtype = settings.wire_dtype(space)
    return Island(space, breeder, dtype, settings.signs, Seen(space)), dtype


def _rows(dtype: np.dtype, genes: np.ndarray, first_id: int) -> np.ndarray:
    rows = np.zeros(len(genes), dtype=dtype)
    rows["id"] = np.arange(first_id, first_id + len(genes))
    rows["genes"] = genes
    rows["values"][:, 0] = np.sum((genes - 0.3) ** 2, axis=1)
    return rows


def breeding(strategy: str, n: int, steps: int, island_workers: int) -> tuple[float, float]:
    """Seconds of ``propose`` + ``learn`` per evaluation, and of ``absorb`` per record, after
    ``n`` told records (means: CMA-ES updates once per generation, amortised)."""
    rng = np.random.default_rng(0)
    island, dtype = _island(strategy, island_workers)
    if n:
        island.absorb(_rows(dtype, rng.random((n, 2)), 10**6))
    own, absorb = [], []
    for i in range(steps):
        t = time.process_time()
        genes = island.propose(rng)
        island.learn(_rows(dtype, genes[None], i)[0])
        t1 = time.process_time()
        island.absorb(_rows(dtype, rng.random((4, 2)), 2 * 10**6 + 4 * i))
        own.append(t1 - t)
        absorb.append((time.process_time() - t1) / 4)
    return statistics.fmean(own), statistics.fmean(absorb)


def loop(evaluations: int, island_workers: int) -> float:
    """The engine's CPU per evaluation beyond breeding (one rank, no-op objective, the GA)."""
    import propagator as pg

    space = pg.Space({"x0": pg.Float(-5.12, 5.12), "x1": pg.Float(-5.12, 5.12)})
    cpu = []
    for n in (10, evaluations):  # the difference leaves the set-up out
        t = time.process_time()
        pg.search(lambda params: 0.0, space, budget=n, strategy="ga", seed=0)
        cpu.append(time.process_time() - t)
    per_eval = (cpu[1] - cpu[0]) / (evaluations - 10)
    ga, _ = breeding("ga", evaluations // 2, 200, island_workers)
    return max(0.0, per_eval - ga)


def _fit(size: list[int], one_way: list[float]) -> tuple[float, float]:
    """``latency, per_byte`` of a least-squares line through the one-way times."""
    per_byte, latency = np.polyfit(np.asarray(size, dtype=float), np.asarray(one_way), 1)
    return float(max(latency, 0.0)), float(max(per_byte, 0.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pings", type=int, default=20_000)
    parser.add_argument("--steps", type=int, default=300, help="breeding steps per point")
    parser.add_argument("--island-workers", type=int, default=64)
    parser.add_argument("--evaluations", type=int, default=5_000, help="for the loop cost")
    parser.add_argument("--costs", default=str(COSTS), help="where to write the costs")
    args = parse(parser, _mpi)
    if args is None:
        return
    mpi = launch(__file__, 2, ["--pings", str(args.pings)], timeout=600)
    latency, per_byte = _fit(mpi["size"], mpi["one_way"])
    costs = {
        "latency": latency,
        "per_byte": per_byte,
        "send_cpu": statistics.median(mpi["send_cpu"]),
        "recv_cpu": statistics.median(mpi["recv_cpu"]),
        "atomic": mpi["atomic"],
        "rank_base": mpi["rank_base"],
        "history": list(HISTORY),
        "loop": loop(args.evaluations, args.island_workers),
    }
    for strategy in ("portfolio", "ga"):
        measured = [breeding(strategy, n, args.steps, args.island_workers) for n in HISTORY]
        costs[f"{strategy}_own"] = [m[0] for m in measured]
        costs[f"{strategy}_absorb"] = [m[1] for m in measured]
    Path(args.costs).write_text(json.dumps(costs, indent=1) + "\n")
    print(json.dumps(costs, indent=1))


if __name__ == "__main__":
    main()
