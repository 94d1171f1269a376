"""Search quality: the GA against random search on the 14 benchmark functions.

    python jobs/bench/quality.py [--ranks 2] [--evaluations 500] [--seeds 5]

Each function, strategy and seed is one search of ``evaluations`` evaluations on ``ranks``
single-rank workers (one island); the table gives the median over seeds of the best value
found, and whether the GA's median beats random search's. Target (issue #2): the GA wins on
all 14. quartic is noisy (its best value is a lucky draw of noise as much as a good point).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _launch import launch, parse


def _run(args: argparse.Namespace) -> None:
    from mpi4py import MPI

    import propagator as pg
    from propagator.benchmarks import BENCHMARKS

    comm = MPI.COMM_WORLD
    best: dict[str, dict[str, list[float]]] = {}
    for name, bench in BENCHMARKS.items():
        for strategy in ("ga", "random"):
            for seed in range(args.seeds):
                result = pg.search(
                    bench, bench.space, budget=args.evaluations, strategy=strategy, seed=seed
                )
                best.setdefault(name, {}).setdefault(strategy, []).append(result.best.value)
    if comm.rank == 0:
        Path(args.out).write_text(json.dumps(best))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--evaluations", type=int, default=500)
    parser.add_argument("--seeds", type=int, default=5)
    args = parse(parser, _run)
    if args is None:
        return
    import numpy as np

    from propagator.benchmarks import BENCHMARKS

    best = launch(
        __file__, args.ranks, ["--evaluations", str(args.evaluations), "--seeds", str(args.seeds)]
    )
    print(
        f"median best value over {args.seeds} seeds, {args.ranks} ranks x "
        f"{args.evaluations // args.ranks} evaluations"
    )
    print(f"{'function':<12} {'dim':>3} {'minimum':>10} {'GA':>12} {'random':>12}  GA wins")
    wins = 0
    for name, bench in BENCHMARKS.items():
        ga, rnd = np.median(best[name]["ga"]), np.median(best[name]["random"])
        wins += ga < rnd
        print(
            f"{name:<12} {bench.dim:>3} {bench.minimum:>10.4g} {ga:>12.4g} {rnd:>12.4g}  "
            f"{'yes' if ga < rnd else 'NO'}"
        )
    print(f"\nGA beats random search on {wins} of {len(BENCHMARKS)} functions")


if __name__ == "__main__":
    main()
