"""The search at 2^6 .. 2^16 workers, simulated (issue 17, item 6); and its validation.

    python jobs/bench/simulate.py                       # the scale table (see below)
    python jobs/bench/simulate.py --workers 1024 --mean 1 --duration 8
    python jobs/bench/simulate.py --workers 16384 65536 --sample-islands 4   # 4 islands real
    python jobs/bench/simulate.py --workers 16384 --sample-islands 4 --stragglers 0.05
    python jobs/bench/simulate.py --workers 16384 --sample-islands 4 --dead 0.01 --dead-at 90
    python jobs/bench/simulate.py --validate            # real mpiexec runs against the simulator
    python jobs/bench/simulate.py --validate --ranks 2 8 --duration 20

The simulator (``jobs/bench/simulator/``; its docstring says what is real and what is
modelled) runs the default strategy (``portfolio``), islands of 64 workers, ``dissemination:
gossip`` and migration on a ring, lognormal evaluation times, a time budget; the table gives
utilization and throughput in the steady window (``simulator/metrics.py``), messages and
bytes per evaluation (records between leaders: gossip, migrants, departures) and memory per
rank (a rank's base after ``import propagator`` plus the simulator's resident growth per
worker for the real island views, breeders, gossip and mailboxes; an island's first rank
also hosts its claim table, ``host +``). ``--sample-islands K`` simulates the first K islands
with the real code and the other workers as ticket claims at the counter only (see the
package's docstring); ``from s``: when the last worker started (the counter's start-up).

``--validate``: for each of ``--ranks``, a real search under ``mpiexec -n N`` (oversubscribed
on this machine's cores) whose objective sleeps a lognormal time (mean ``--mean`` s, CV
``--cv``, drawn from the trial's seed), with the same settings and budget in time, and the
simulator on ``--cores`` shared cores, its budget in time the real run's less the real
start-up (the window's start: every rank has begun evaluating; the simulator starts them all
at 0); the same window metrics on the real records and the simulated ones, and messages per
evaluation (``result.info``), with the relative error.

Measured: see ``jobs/bench/simulator/__init__.py`` (the tables and the load they ran under).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _launch import launch, parse
from simulator.metrics import window
from simulator.simulation import Config, simulate
from simulator.times import Lognormal

SCALE = ((64, 60.0), (1024, 60.0), (16_384, 60.0), (65_536, 60.0), (1024, 1.0))


def _run(args: argparse.Namespace) -> None:
    """The real half of ``--validate`` (under mpiexec): one search, rank 0 writes JSON."""
    import json

    from mpi4py import MPI

    import propagator as pg

    comm = MPI.COMM_WORLD
    times = Lognormal(args.mean, args.cv)

    def sleepy(params: dict, trial: pg.Trial) -> float:
        time.sleep(times.draw(trial.seed))
        return params["x0"] ** 2 + params["x1"] ** 2

    space = pg.Space({"x0": pg.Float(-5.12, 5.12), "x1": pg.Float(-5.12, 5.12)})
    size = min(comm.size, args.island_size)
    islands = [size] * (comm.size // size) + ([comm.size % size] if comm.size % size else [])
    result = pg.search(
        sleepy,
        space,
        budget=pg.Budget(time=args.duration),
        islands=islands,
        migration={"topology": "ring"},
        dissemination="gossip",
        seed=0,
    )
    if comm.rank == 0:
        out = {"n": len(result), "messages": result.info.messages}
        try:
            w = window(result.rows, comm.size)
            out |= {"utilization": w.utilization, "throughput": w.throughput, "start": w.start}
            out |= {"absent": w.absent}
        except ValueError as exc:  # the start-up outlasted the budget
            out["error"] = str(exc)
        Path(args.out).write_text(json.dumps(out))


def _config(
    args: argparse.Namespace, workers: int, mean: float, cores: int | None, duration: float
) -> Config:
    return Config(
        workers=workers,
        island_size=min(workers, args.island_size),
        mean=mean,
        cv=args.cv,
        duration=duration,
        stragglers=args.stragglers,
        slowdown=args.slowdown,
        dead=args.dead,
        dead_at=args.dead_at,
        cores=cores,
        seed=args.seed,
        sample_islands=args.sample_islands,
    )


def scale(args: argparse.Namespace) -> None:
    sizes = [(w, args.mean or m) for w, m in SCALE] if not args.workers else []
    sizes += [(w, args.mean or 60.0) for w in args.workers or []]
    print(
        f"{'workers':>7} {'mean s':>6} {'islands':>7} {'sim.':>5} {'evals':>7} {'util %':>7} "
        f"{'from s':>6} {'evals/s':>9} "
        f"{'msgs/eval':>9} {'B/eval':>7} {'MB/rank':>7} {'host +MB':>8} {'lost':>5} {'sim s':>6}"
    )
    for workers, mean in sizes:
        config = _config(args, workers, mean, None, args.duration or 4 * mean)
        o = simulate(config)
        n = o.evaluations
        print(
            f"{workers:>7,} {mean:>6g} {math.ceil(workers / config.island_size):>7,} "
            f"{o.simulated:>5,} {n:>7,} "
            f"{100 * o.window.utilization:>7.3f} {o.window.start:>6.3f} "
            f"{o.window.throughput:>9,.1f} "
            f"{o.messages / n:>9.2f} {o.bytes / n:>7.0f} {o.memory / 2**20:>7.1f} "
            f"{o.host_extra / 2**20:>8.1f} {o.lost:>5} {o.seconds:>6.0f}",
            flush=True,
        )


def validate(args: argparse.Namespace) -> None:
    argv = ["--mean", str(args.mean), "--cv", str(args.cv), "--duration", str(args.duration)]
    argv += ["--island-size", str(args.island_size)]
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"{'ranks':>5} {'':>5} {'evals':>6} {'from s':>6} {'absent':>6} {'util %':>7} "
        f"{'evals/s':>8} {'msgs/eval':>9}   "
        f"{'err util':>8} {'err evals/s':>11} {'err msgs':>8}"
    )
    for ranks in args.ranks:
        real = launch(__file__, ranks, argv, timeout=1200)
        if "error" in real:
            print(f"{ranks:>5}  real {real['n']:>6}  {real['error']}", flush=True)
            continue
        # the simulated workers start at once: they get the time the real ones had left
        # after their start-up (the window's start)
        after = args.duration - real["start"]
        sim = simulate(_config(args, ranks, args.mean, args.cores, after))
        simulated = {
            "n": sim.evaluations,
            "utilization": sim.window.utilization,
            "throughput": sim.window.throughput,
            "messages": sim.messages,
            "start": sim.window.start,
            "absent": sim.window.absent,
        }
        for label, r in (("real", real), ("sim", simulated)):
            line = (
                f"{ranks:>5} {label:>5} {r['n']:>6} {r['start']:>6.1f} {r['absent']:>6} "
                f"{100 * r['utilization']:>7.2f} "
                f"{r['throughput']:>8.2f} {r['messages'] / r['n']:>9.3f}"
            )
            if label == "sim":
                errs = [
                    simulated[k] / real[k] - 1 if real[k] else math.nan
                    for k in ("utilization", "throughput")
                ]
                per = [r["messages"] / r["n"] for r in (real, simulated)]
                errs.append(per[1] / per[0] - 1 if per[0] else math.nan)
                line += "   " + " ".join(f"{100 * e:>+7.1f}%" for e in errs)
            print(line, flush=True)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", help="sizes (default: the table)")
    parser.add_argument("--mean", type=float, help="mean evaluation time, s (default 60; 1)")
    parser.add_argument("--cv", type=float, default=0.5, help="coefficient of variation")
    parser.add_argument("--duration", type=float, help="time budget, s (default 4 x mean)")
    parser.add_argument("--island-size", type=int, default=64, help="workers per island")
    parser.add_argument("--stragglers", type=float, default=0.0, help="fraction of workers")
    parser.add_argument("--slowdown", type=float, default=4.0, help="stragglers' factor")
    parser.add_argument("--dead", type=float, default=0.0, help="fraction of workers that die")
    parser.add_argument("--dead-at", type=float, default=math.inf, help="when, s")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--sample-islands", type=int, help="simulate only this many islands (default: all)"
    )
    parser.add_argument("--validate", action="store_true", help="real runs against the sim")
    parser.add_argument("--ranks", type=int, nargs="+", default=[2, 8, 32, 64, 128])
    parser.add_argument("--cores", type=int, default=os.cpu_count(), help="--validate: cores")
    args = parse(parser, _run)
    if args is None:
        return
    if args.validate:
        args.mean = args.mean or 1.0
        args.duration = args.duration or 30.0
        validate(args)
    else:
        scale(args)


if __name__ == "__main__":
    main()
