"""Utilization: 16 oversubscribed ranks, an objective that sleeps a random 20–80 ms.

    python jobs/bench/utilization.py [--ranks 16] [--evaluations 3200]

Utilization = busy time / (ranks × wall), where busy time sums every evaluation's duration
and wall is rank 0's time for the whole ``pg.search`` call (set-up, shutdown and result
collection included). Target (issue #2): at least 0.97.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _launch import launch, parse


def _run(args: argparse.Namespace) -> None:
    import numpy as np
    from mpi4py import MPI

    import propagator as pg

    comm = MPI.COMM_WORLD
    space = pg.Space({"x0": pg.Float(-5.12, 5.12), "x1": pg.Float(-5.12, 5.12)})

    def sleepy(params: dict, trial: pg.Trial) -> float:
        time.sleep(np.random.default_rng(trial.seed).uniform(0.020, 0.080))
        return params["x0"] ** 2 + params["x1"] ** 2

    search = pg.search  # import the engine's MPI modules before the clock starts
    comm.Barrier()
    t = time.perf_counter()
    result = search(sleepy, space, budget=args.evaluations, islands=args.islands, seed=0)
    wall = time.perf_counter() - t
    if comm.rank == 0:
        busy = float(np.sum(result.rows["end"] - result.rows["start"]))
        per_worker = np.bincount(result.rows["worker"], minlength=comm.size).tolist()
        Path(args.out).write_text(
            json.dumps(
                {
                    "n": len(result),
                    "wall": wall,
                    "busy": busy,
                    "ranks": comm.size,
                    "per_worker": per_worker,
                }
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, default=16)
    parser.add_argument("--evaluations", type=int, default=3200)
    parser.add_argument("--islands", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    args = parse(parser, _run)
    if args is None:
        return

    print(f"{args.ranks} ranks, {args.islands} islands, {args.evaluations} evaluations of 20–80 ms")
    print(f"{'run':>3} {'wall s':>7} {'busy s':>8} {'utilization':>11}  evaluations per worker")
    for i in range(args.repeat):
        r = launch(
            __file__,
            args.ranks,
            ["--evaluations", str(args.evaluations), "--islands", str(args.islands)],
        )
        util = r["busy"] / (r["ranks"] * r["wall"])
        print(f"{i:>3} {r['wall']:>7.2f} {r['busy']:>8.1f} {util:>11.4f}  {r['per_worker']}")


if __name__ == "__main__":
    main()
