"""How the default portfolio should spread over several islands, on the quality benchmark.

    python jobs/bench/portfolio_islands.py --set functions --seeds 3 --islands 2 4

Three ways to give each of ``N`` islands (one single-rank worker each, ``mpiexec -n N``) its
strategy, compared on the problems, budgets and regret of ``jobs/bench/quality.py``:

* ``fixed``: the members ga, cmaes, tpe dealt round-robin whatever the space (the dealing
  before issue 17: with 3 islands three lone strategies, TPE on continuous spaces, never the
  quadratic models);
* ``dealt``: the members the space gives one island (``Portfolio().members_for(space)``)
  dealt round-robin, repeating when there are more islands than members;
* ``shared``: every island runs the one-island portfolio of the space's members.

Each (variant, islands) runs in one ``mpiexec``, one search after another. Output: per
island count, the median regret over seeds per problem and variant, and for each pair of
variants the wins-ties-losses (strictly smaller median) and the problems where one is
significantly better (two-sided Mann-Whitney U over the seeds, p < 0.05; scipy).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _peer_protocol import Job, emit, outcome, read_jobs, stream
from problems import get_problem, problem_sets

VARIANTS = ("fixed", "dealt", "shared")
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def island_strategies(variant: str, space: Any, n_islands: int) -> list[Any]:
    """The strategy of each island under ``variant`` (see the module) for ``space``."""
    from propagator.strategies import Portfolio, deal

    if variant == "shared":
        return [Portfolio()] * n_islands
    members = ("ga", "cmaes", "tpe") if variant == "fixed" else Portfolio().members_for(space)
    return list(deal(Portfolio(members=members), n_islands))


def _run(args: argparse.Namespace) -> None:
    """The mpiexec half: every job of ``--jobs`` with ``--variant`` on every rank's island."""
    from mpi4py import MPI

    import propagator as pg

    for job in read_jobs(Path(args.jobs)):
        problem = get_problem(job.problem)
        n = MPI.COMM_WORLD.size
        strategy = island_strategies(args.variant, problem.space, n)
        started = MPI.Wtime()
        result = pg.search(
            problem, problem.space, budget=job.budget, strategy=strategy, islands=n, seed=job.seed
        )
        if MPI.COMM_WORLD.rank == 0:
            keys = [problem.key(r.params) for r in result.records]
            out = outcome(keys, [r.value for r in result.records])
            emit(Path(args.out), job, out, MPI.Wtime() - started)


def _measure(args: argparse.Namespace, n_islands: int) -> dict[tuple[str, str], list[float]]:
    """Regrets per (variant, problem) over the seeds, with ``n_islands`` islands."""
    chosen = [s for name, s in problem_sets().items() if args.set in (name, "all")]
    env = {**os.environ, **dict.fromkeys(_THREAD_VARS, "1")}
    regrets: dict[tuple[str, str], list[float]] = {}
    for variant in args.variants:
        jobs = [
            Job(variant, p.name, budget, seed)
            for s in chosen
            for p in s.problems
            if not args.problems or p.name in args.problems
            for budget in s.budgets
            for seed in range(args.seeds)
        ]
        cmd = ["mpiexec", "-n", str(n_islands), sys.executable, __file__, "--run"]
        for line in stream([*cmd, "--variant", variant], jobs, env):
            job = Job(**line["job"])
            regret = line["best"] - get_problem(job.problem).optimum
            regrets.setdefault((variant, f"{job.problem}@{job.budget}"), []).append(regret)
            where = f"{job.problem}@{job.budget} seed {job.seed}"
            print(f"  {n_islands} islands {variant} {where}: {regret:.4g}")
    return regrets


def _report(regrets: dict[tuple[str, str], list[float]], variants: list[str], n: int) -> None:
    problems = list(dict.fromkeys(p for _, p in regrets))
    median = {k: statistics.median(v) for k, v in regrets.items()}
    print(f"\n{n} islands: median regret")
    print(f"{'problem':24}" + "".join(f"{v:>12}" for v in variants))
    for p in problems:
        print(f"{p:24}" + "".join(f"{median[(v, p)]:12.3g}" for v in variants))
    for i, v in enumerate(variants):
        for base in variants[:i]:
            w = sum(median[(v, p)] < median[(base, p)] for p in problems)
            loss = sum(median[(v, p)] > median[(base, p)] for p in problems)
            better, worse = _significant(regrets, v, base, problems)
            print(
                f"{v} vs {base}: {w}-{len(problems) - w - loss}-{loss} (wins-ties-losses of the "
                f"medians); Mann-Whitney p < 0.05 better on {better or 'none'}, worse on "
                f"{worse or 'none'}"
            )


def _significant(
    regrets: dict[tuple[str, str], list[float]], v: str, base: str, problems: list[str]
) -> tuple[str, str]:
    """The problems where ``v``'s regrets are significantly smaller, and larger, than
    ``base``'s (two-sided Mann-Whitney U over the seeds, p < 0.05)."""
    from scipy.stats import mannwhitneyu

    better, worse = [], []
    for p in problems:
        a, b = regrets[(v, p)], regrets[(base, p)]
        if a != b and mannwhitneyu(a, b).pvalue < 0.05:
            (better if statistics.median(a) < statistics.median(b) else worse).append(p)
    return ", ".join(better), ", ".join(worse)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=("functions", "discrete", "all"), default="functions")
    parser.add_argument("--problems", nargs="+", metavar="NAME", help="run only these problems")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--islands", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--run", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--jobs", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        _run(args)
        return
    for n in args.islands:
        _report(_measure(args, n), args.variants, n)


if __name__ == "__main__":
    main()
