"""Dissemination (issue 17, item 1): ``all`` against ``gossip`` side by side, no-op objective.

    python jobs/bench/dissemination.py                        # 2 / 8 / 16 / 32 ranks, 1 island
    python jobs/bench/dissemination.py --ranks 32 --islands 16 --evaluations 5000
    python jobs/bench/dissemination.py --quality sphere rastrigin --seeds 5   # search quality

The GA (``strategy: ga``), one search per rank count and setting in its own ``mpiexec``, the
two settings alternating at each rank count (best of ``--repeat``). Prints evaluations per
second, messages and bytes per evaluation (record messages between worker leaders,
migrants included: ``result.info``), and the load average before and after (the ranks are
oversubscribed on whatever cores there are, and shared with anything else running).

``--quality PROBLEM ...``: instead, the best value each setting finds on benchmark problems
(``jobs/bench/problems``, as ``quality.py`` runs them: one island of ``--quality-ranks``
single-rank workers, ``--budget`` evaluations, the seeds 0, 1, ...), per problem the median
regret of each setting over the seeds and a two-sided Mann-Whitney U test between them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _launch import launch, parse

SETTINGS = ("all", "gossip")


def _run(args: argparse.Namespace) -> None:
    from mpi4py import MPI

    import propagator as pg

    comm = MPI.COMM_WORLD
    space = pg.Space({"x0": pg.Float(-5.12, 5.12), "x1": pg.Float(-5.12, 5.12)})
    comm.Barrier()
    t = time.perf_counter()
    result = pg.search(
        lambda params: 0.0,
        space,
        budget=args.evaluations,
        islands=args.islands,
        strategy="ga",
        seed=0,
        dissemination=args.dissemination,
    )
    wall = time.perf_counter() - t
    if comm.rank == 0:
        info = result.info
        out = {"n": len(result), "wall": wall, "messages": info.messages}
        out["bytes"] = info.message_bytes
        Path(args.out).write_text(json.dumps(out))


def _run_quality(args: argparse.Namespace) -> None:
    """Every (problem, seed) with one setting; rank 0 writes each run's regret."""
    from mpi4py import MPI
    from problems import get_problem

    import propagator as pg

    regrets: dict[str, list[float]] = {}
    for name in args.problems:
        problem = get_problem(name)
        for seed in range(args.seeds):
            result = pg.search(
                problem,
                problem.space,
                budget=args.budget,
                strategy=args.strategy,
                seed=seed,
                dissemination=args.dissemination,
            )
            regrets.setdefault(name, []).append(result.best.value - problem.optimum)
    if MPI.COMM_WORLD.rank == 0:
        Path(args.out).write_text(json.dumps(regrets))


def _quality(args: argparse.Namespace) -> None:
    """Both settings on the ``--quality`` problems, one problem after the other (so that
    both meet about the same load); the table of median regrets."""
    from scipy.stats import mannwhitneyu

    argv = ["--seeds", str(args.seeds), "--budget", str(args.budget), "--strategy"]
    argv += [args.strategy]
    print(
        f"median regret, {args.strategy}, {args.budget} evaluations, {args.quality_ranks} "
        f"ranks in 1 island, seeds 0-{args.seeds - 1}"
    )
    print(f"{'problem':>12} {'all':>11} {'gossip':>11} {'p (Mann-Whitney)':>17}")
    for name in args.quality:
        a, g = (
            launch(
                __file__,
                args.quality_ranks,
                ["--problems", name, *argv, "--dissemination", s],
                timeout=3600,
            )[name]
            for s in SETTINGS
        )
        p = mannwhitneyu(a, g, alternative="two-sided").pvalue
        print(f"{name:>12} {np.median(a):>11.4g} {np.median(g):>11.4g} {p:>17.3f}")


def _one(ranks: int, setting: str, args: argparse.Namespace) -> dict:
    argv = ["--evaluations", str(args.evaluations), "--islands", str(args.islands)]
    return launch(__file__, ranks, [*argv, "--dissemination", setting], timeout=600)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, nargs="+", default=[2, 8, 16, 32])
    parser.add_argument("--evaluations", type=int, default=20_000)
    parser.add_argument("--islands", type=int, default=1, help="islands (default 1)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per setting, best kept")
    parser.add_argument("--quality", nargs="+", metavar="PROBLEM", help="compare quality")
    parser.add_argument("--seeds", type=int, default=5, help="--quality: seeds (default 5)")
    parser.add_argument("--budget", type=int, default=500, help="--quality: evaluations")
    parser.add_argument("--strategy", default="ga", help="--quality: strategy (default ga)")
    parser.add_argument("--quality-ranks", type=int, default=8, help="--quality: ranks")
    parser.add_argument("--dissemination", default="all", help=argparse.SUPPRESS)
    parser.add_argument("--problems", nargs="+", help=argparse.SUPPRESS)
    args = parse(parser, lambda a: (_run if a.problems is None else _run_quality)(a))
    if args is None:
        return
    if args.quality:
        _quality(args)
        return
    load = os.getloadavg()[0]
    print(f"no-op objective, the GA, {args.evaluations:,} evaluations, {args.islands} island(s)")
    print(f"{'ranks':>5} {'setting':>8} {'evals/s':>9} {'messages/eval':>14} {'bytes/eval':>11}")
    for ranks in args.ranks:
        runs: dict[str, list[dict]] = {s: [] for s in SETTINGS}
        for _ in range(args.repeat):
            for setting in SETTINGS:
                runs[setting].append(_one(ranks, setting, args))
        for setting in SETTINGS:
            best = max(runs[setting], key=lambda r: r["n"] / r["wall"])
            n = best["n"]
            print(
                f"{ranks:>5} {setting:>8} {n / best['wall']:>9,.0f} "
                f"{best['messages'] / n:>14.2f} {best['bytes'] / n:>11,.0f}"
            )
    print(f"load average (1 min): {load:.2f} before, {os.getloadavg()[0]:.2f} after")


if __name__ == "__main__":
    main()
