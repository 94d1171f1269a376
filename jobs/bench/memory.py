"""Resident memory per rank over a long search: a no-op objective on 2 ranks (issue 17, item 2).

    python jobs/bench/memory.py                                  # ga and portfolio, 100k and 1M
    python jobs/bench/memory.py --strategies ga --sizes 1000000
    python jobs/bench/memory.py --before /tmp/mem_before         # and an older checkout, alike
    python jobs/bench/memory.py --strategies ga --sizes 100000 --trace   # what grows

Each rank reports its resident set (``/proc/self/statm``, MB): ``start`` before the search
(imports done), ``first`` at its first evaluation (the search's structures built, among
them the island's claim table on its first rank), then every ``--every`` of its own
evaluations (read by the objective; the columns give the samples at 10 % ... 100 % of them),
``after`` the search has returned (the final result: every record gathered on every rank)
and ``peak`` (``ru_maxrss``). ``growth`` is last sample minus ``first``: what the search's
control state added (target: at most 50 MB per rank after 1,000,000 evaluations), and
``B/eval`` that per evaluation of the rank.

``--trace`` runs tracemalloc on rank 0 and prints, per allocating line, what it held more at
its last sample than at its first, in bytes per evaluation of rank 0 between them
(tracemalloc slows rank 0 several times, so the other rank takes more of the budget). Memory
outside Python's allocators (MPI windows: the island's claim table, 8 bytes × 2 × budget
rounded up to a power of 2 on the island's first rank, allocated before the first
evaluation) is not in that table.

``--before DIR`` runs the same searches with ``PYTHONPATH=DIR`` (a checkout of an earlier
commit, e.g. ``git worktree add --detach /tmp/mem_before HEAD``), interleaved with this one.

Measured on this 2-core machine, shared with other jobs, 2 ranks, MB per rank (rank 0, 1),
before the bounded view (51f0ea8) and with it:

* GA, 1,000,000 evaluations: growth 97.8, 93.0 before (192, 171 at the end of the search),
  23.0, 23.1 now (117, 101); ``--trace`` at 100,000 before: the log's rows 121 bytes per
  own evaluation (74 a row, the rest the doubling array's room), the seen set's 148.
* portfolio (ga, cmaes, quadratic on this space), 1,000,000: growth 103.7, 125.2 before
  (265, 268), 36.5, 48.9 now (198, 192; another run 32.2, 50.6), most of it in the first
  50,000 evaluations (the members' capped histories filling), then flat but for steps
  where the seen set's table doubles.
* After the search, the final result (every record on every rank) sets the peak: 496, 494
  before and 421, 423 now for the GA at 1,000,000; that gather is not bounded here.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _launch import launch, parse

_PAGE = os.sysconf("SC_PAGE_SIZE")
_TOP = 15  # allocating lines shown by --trace


def _rss_mb() -> float:
    """This process's resident set now, in MB (``/proc/self/statm``'s second field)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE / 1e6


class _Probe:
    """The objective: counts this rank's evaluations and samples its resident set (and, with
    ``trace``, keeps tracemalloc's snapshots at the first sample and the latest)."""

    def __init__(self, every: int, trace: bool) -> None:
        self.every, self.trace = every, trace
        self.n = 0
        self.samples: list[tuple[int, float, float]] = []  # evaluations, seconds, MB
        self.snapshots: list[tuple[int, tracemalloc.Snapshot]] = []
        self._t0 = time.perf_counter()

    def __call__(self, params: dict, trial: object) -> float:
        self.n += 1
        if self.n % self.every == 0 or self.n == 1:
            self.samples.append((self.n, time.perf_counter() - self._t0, _rss_mb()))
            if self.trace and self.n > 1:
                self.snapshots[1:] = [(self.n, tracemalloc.take_snapshot())]
        return 0.0


def _growth(snapshots: list[tuple[int, tracemalloc.Snapshot]]) -> list[dict]:
    """Per allocating line, bytes held more in the last snapshot than in the first, and per
    evaluation between them."""
    (n0, first), (n1, last) = snapshots
    out = []
    for s in last.compare_to(first, "lineno")[:_TOP]:
        frame = s.traceback[0]
        where = f"{Path(frame.filename).parent.name}/{Path(frame.filename).name}:{frame.lineno}"
        out.append({"where": where, "bytes": s.size_diff, "per_eval": s.size_diff / (n1 - n0)})
    return out


def _run(args: argparse.Namespace) -> None:
    from mpi4py import MPI

    import propagator as pg
    from propagator.engine.context import Session
    from propagator.engine.layout import make_layout
    from propagator.engine.run import run
    from propagator.settings import Budget, Settings
    from propagator.strategies import make_strategy

    comm = MPI.COMM_WORLD
    space = pg.Space({"x0": pg.Float(-5.12, 5.12), "x1": pg.Float(-5.12, 5.12)})
    settings = Settings(
        budget=Budget(evaluations=args.evaluations),
        seed=0,
        strategy=(make_strategy(args.strategy),),
    )
    trace = args.trace and comm.rank == 0
    probe = _Probe(args.every, trace)
    if trace:
        tracemalloc.start()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = comm.bcast(tmp if comm.rank == 0 else None)
        session = Session(run_dir=Path(run_dir)) if args.store else Session()
        comm.Barrier()
        start_mb = _rss_mb()
        t = time.perf_counter()
        result = run(probe, space, settings, make_layout(comm.size, 1, 1), comm, session)
        wall = time.perf_counter() - t
        comm.Barrier()
    mine = {
        "start_mb": start_mb,
        "samples": probe.samples,
        "after_mb": _rss_mb(),
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6,
        "evaluations": probe.n,
    }
    if len(probe.snapshots) == 2:
        mine["growth"] = _growth(probe.snapshots)
    ranks = comm.gather(mine)
    if comm.rank == 0:
        out = {"n": len(result), "wall": wall, "ranks": ranks}
        Path(args.out).write_text(json.dumps(out))


def _at(samples: list, share: float) -> float:
    """The resident set (MB) of the sample taken at ``share`` of the rank's evaluations."""
    return samples[max(0, min(len(samples) - 1, round(share * len(samples)) - 1))][2]


def _table(label: str, r: dict) -> None:
    print(f"\n{label}: {r['n']:,} evaluations in {r['wall']:.0f} s ({r['n'] / r['wall']:,.0f}/s)")
    shares = (0.1, 0.25, 0.5, 0.75, 1.0)
    head = "  ".join(f"{f'{s:.0%}':>5}" for s in shares)
    print(f"  rank   evals  start  first  {head}  growth  B/eval  after   peak  (MB)")
    for rank, m in enumerate(r["ranks"]):
        s = m["samples"]
        if not s:
            continue
        grow = s[-1][2] - s[0][2]
        per = grow * 1e6 / max(1, s[-1][0] - s[0][0])
        cols = "  ".join(f"{_at(s[1:] or s, x):>5.0f}" for x in shares)
        print(
            f"  {rank:>4} {m['evaluations']:>7}  {m['start_mb']:>5.0f}  {s[0][2]:>5.0f}  {cols}"
            f"  {grow:>6.1f}  {per:>6.0f}  {m['after_mb']:>5.0f}  {m['peak_mb']:>5.0f}"
        )
    for m in r["ranks"]:
        if "growth" in m:
            print("  rank 0, tracemalloc: growth per allocating line (bytes per own evaluation)")
            for g in m["growth"]:
                print(f"    {g['per_eval']:>8.1f}  {g['bytes'] / 1e6:>7.1f} MB  {g['where']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--strategies", nargs="+", default=["ga", "portfolio"])
    parser.add_argument("--every", type=int, default=5_000, help="own evaluations per sample")
    parser.add_argument("--store", action="store_true", help="with a run store (a run directory)")
    parser.add_argument("--trace", action="store_true", help="tracemalloc on rank 0: what grows")
    parser.add_argument("--before", metavar="DIR", help="also run this checkout (PYTHONPATH)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per mpiexec")
    parser.add_argument("--json", metavar="FILE", help="also write every sample there")
    parser.add_argument("--strategy", help=argparse.SUPPRESS)
    parser.add_argument("--evaluations", type=int, help=argparse.SUPPRESS)
    args = parse(parser, _run)
    if args is None:
        return
    runs = []
    for strategy in args.strategies:
        for n in args.sizes:
            every = min(args.every, max(1, n // args.ranks // 20))
            flags = ["--strategy", strategy, "--evaluations", str(n), "--every", str(every)]
            flags += ["--store"] * args.store + ["--trace"] * args.trace
            arms = [("now", None)] + ([("before", args.before)] if args.before else [])
            for name, path in arms:
                _set_pythonpath(path)
                r = launch(__file__, args.ranks, flags, timeout=args.timeout)
                _table(f"{name}: {strategy}, {args.ranks} ranks", r)
                runs.append({"arm": name, "strategy": strategy, **r})
            _set_pythonpath(None)
    if args.json:
        Path(args.json).write_text(json.dumps(runs))


_PYTHONPATH = os.environ.get("PYTHONPATH")


def _set_pythonpath(path: str | None) -> None:
    """The checkout the next ``mpiexec`` imports propagator from (``None``: as started)."""
    path = path or _PYTHONPATH
    if path is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = path


if __name__ == "__main__":
    main()
