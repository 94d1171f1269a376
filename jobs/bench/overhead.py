"""Engine overhead: a no-op objective on 2 ranks for 1,000 / 10,000 / 100,000 evaluations.

    python jobs/bench/overhead.py                       # propagate only (the GA)
    python jobs/bench/overhead.py --dedup-off           # and without de-duplication, alternating
    python jobs/bench/overhead.py --propulate /work/peers/bin/python   # and Propulate 1.2.2

Prints evaluations per second (total and per rank) and every rank's peak resident memory.
Targets: the GA at >= 50,000 evaluations/s in total on 2 ranks (issue 10, with de-duplication,
which claims every configuration in the island's MPI table), and the rate at 100,000
evaluations within 20 % of the rate at 1,000 (issue 2). Each size runs in its own ``mpiexec``
so that peak memory is per size.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _launch import launch, parse


def _run(args: argparse.Namespace) -> None:
    from mpi4py import MPI

    import propagator as pg

    comm = MPI.COMM_WORLD
    space = pg.Space({"x0": pg.Float(-5.12, 5.12), "x1": pg.Float(-5.12, 5.12)})

    def noop(params: dict, trial: pg.Trial) -> float:
        return 0.0

    import propagator.store
    from propagator.engine.context import Session
    from propagator.engine.layout import make_layout
    from propagator.engine.run import run
    from propagator.settings import Budget, Settings
    from propagator.strategies import make_strategy

    settings = Settings(
        budget=Budget(evaluations=args.evaluations),
        seed=0,
        strategy=(make_strategy(args.strategy),),
        deduplicate=not args.no_dedup,
    )
    layout = make_layout(comm.size, 1, 1)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = comm.bcast(tmp if comm.rank == 0 else None)
        session = Session(run_dir=Path(run_dir)) if args.store else Session()
        comm.Barrier()
        t = time.perf_counter()
        result = run(noop, space, settings, layout, comm, session)
        wall = time.perf_counter() - t
        comm.Barrier()
    rss = comm.gather(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if comm.rank == 0:
        Path(args.out).write_text(
            json.dumps({"n": len(result), "wall": wall, "ranks": comm.size, "rss_mb": rss})
        )


def _run_propulate(args: argparse.Namespace) -> None:
    """The same no-op search with Propulate 1.2.2's public API (its default GA)."""
    import random

    from mpi4py import MPI
    from propulate import Propulator
    from propulate.utils import get_default_propagator

    comm = MPI.COMM_WORLD
    limits = {"a": (-5.12, 5.12), "b": (-5.12, 5.12)}
    rng = random.Random(comm.rank)
    propagator = get_default_propagator(2 * comm.size, limits, rng=rng)
    with tempfile.TemporaryDirectory() as ckpt:
        propulator = Propulator(
            loss_fn=lambda params: 0.0,
            propagator=propagator,
            rng=rng,
            generations=args.evaluations // comm.size,
            checkpoint_path=ckpt,
        )
        comm.Barrier()
        t = time.perf_counter()
        propulator.propulate(logging_interval=10**9, debug=-1)
        wall = time.perf_counter() - t
    rss = comm.gather(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if comm.rank == 0:
        n = args.evaluations // comm.size * comm.size
        Path(args.out).write_text(
            json.dumps({"n": n, "wall": wall, "ranks": comm.size, "rss_mb": rss})
        )


def _table(name: str, rows: list[dict]) -> None:
    print(f"\n{name}")
    print(
        f"{'evaluations':>12} {'wall s':>8} {'evals/s':>9} {'per rank':>9}  peak RSS per rank (MB)"
    )
    for r in rows:
        rate = r["n"] / r["wall"]
        rss = ", ".join(f"{m:.0f}" for m in r["rss_mb"])
        print(f"{r['n']:>12,} {r['wall']:>8.2f} {rate:>9,.0f} {rate / r['ranks']:>9,.0f}  {rss}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--propulate", metavar="PYTHON", help="interpreter with propulate 1.2.2")
    parser.add_argument("--propulate-sizes", type=int, nargs="+", default=[400, 4_000])
    parser.add_argument(
        "--store", action="store_true", help="also run with the run store on, side by side"
    )
    parser.add_argument("--repeat", type=int, default=3, help="store on/off pairs per size")
    parser.add_argument("--strategy", default="ga", help="the strategy (default ga)")
    parser.add_argument(
        "--dedup-off",
        action="store_true",
        help="also run without de-duplication, side by side (alternating, best of --repeat)",
    )
    parser.add_argument("--no-dedup", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--engine", default="propagate", help=argparse.SUPPRESS)
    parser.add_argument("--evaluations", type=int, help=argparse.SUPPRESS)
    args = parse(parser, lambda a: (_run if a.engine == "propagate" else _run_propulate)(a))
    if args is None:
        return

    mine = ["--strategy", args.strategy]
    rows = [launch(__file__, args.ranks, ["--evaluations", str(n), *mine]) for n in args.sizes]
    _table(f"propagate ({args.strategy}), no-op objective, {args.ranks} ranks", rows)
    rates = [r["n"] / r["wall"] / r["ranks"] for r in rows]
    total = min(r["n"] / r["wall"] for r in rows)
    print(f"\ntotal rate >= 50,000/s at every size: {total >= 50_000} (min {total:,.0f})")
    ratio = rates[-1] / rates[0]
    print(f"rate at {rows[-1]['n']:,} / rate at {rows[0]['n']:,}: {ratio:.2f} (target >= 0.80)")
    if args.store and not args.run:
        print(f"\nrun store on vs off (side by side, alternating, best of {args.repeat} each):")
        for n in args.sizes:
            off, on = [], []
            for _ in range(args.repeat):
                off.append(launch(__file__, args.ranks, ["--evaluations", str(n), *mine]))
                on.append(launch(__file__, args.ranks, ["--evaluations", str(n), *mine, "--store"]))
            rate_off = max(r["n"] / r["wall"] for r in off)
            rate_on = max(r["n"] / r["wall"] for r in on)
            print(
                f"{n:>9,} evaluations: off {rate_off:,.0f}/s, on {rate_on:,.0f}/s, "
                f"on/off {rate_on / rate_off:.3f} (target >= 0.90)"
            )
    if args.dedup_off and not args.run:
        print(f"\nde-duplication on vs off (alternating, best of {args.repeat} each):")
        for n in args.sizes:
            on, off = [], []
            for _ in range(args.repeat):
                on.append(launch(__file__, args.ranks, ["--evaluations", str(n), *mine]))
                off.append(
                    launch(__file__, args.ranks, ["--evaluations", str(n), *mine, "--no-dedup"])
                )
            rate_on = max(r["n"] / r["wall"] for r in on)
            rate_off = max(r["n"] / r["wall"] for r in off)
            print(
                f"{n:>9,} evaluations: on {rate_on:,.0f}/s, off {rate_off:,.0f}/s, "
                f"on/off {rate_on / rate_off:.3f}"
            )
    if args.propulate:
        base = [
            launch(
                __file__,
                args.ranks,
                ["--engine", "propulate", "--evaluations", str(n)],
                python=args.propulate,
            )
            for n in args.propulate_sizes
        ]
        _table(f"Propulate 1.2.2, same objective, {args.ranks} ranks", base)
        for b in base:
            ours = launch(__file__, args.ranks, ["--evaluations", str(b["n"]), *mine])
            print(
                f"at {b['n']:,} evaluations propagate is "
                f"{(ours['n'] / ours['wall']) / (b['n'] / b['wall']):.1f}x the rate of Propulate"
            )


if __name__ == "__main__":
    main()
