"""Early stopping (ASHA) against none: the best validation loss reached against the epochs spent.

    python jobs/bench/early_stopping.py                     # everything, about 11 min on 2 cores
    python jobs/bench/early_stopping.py --problems curves --seeds 5
    python jobs/bench/early_stopping.py --evaluations 60 --epochs 9 --budget evaluations

For each problem the same search runs side by side, for ``--seeds`` seeds (0, 1, ...), under
``mpiexec -n RANKS`` (one ``mpiexec`` per problem, the searches one after another in it):

* ``none``: no early stopping, ``N`` evaluations (each runs all its epochs, ``N x E`` epochs);
* ``asha``: ``early_stopping: {name: asha, min_step: 1, reduction: 3}`` (``--min-step``,
  ``--reduction``), the same ``N``
  evaluations: the saving shows as fewer epochs for as many configurations;
* ``asha-steps`` (``--budget steps`` or ``both``): ASHA with ``budget.steps`` = ``N x E``,
  the epochs ``none`` spends, so it tries more configurations.

Problems: ``nas``, ``jobs/nas_mlp_digits.yaml`` (the ``baseline`` trainer on digits, an MLP
architecture space); ``oialr``, ``jobs/oialr_digits.yaml``; and two families of synthetic
learning curves (``_curves.py``: curves that cross, seeded noise, a known optimum):
``curves``, where a bad start usually means a bad end, and ``curves-slow``, where the
configurations that end best learn slowest (the short-horizon bias at its strongest). The
jobs run as their files say (islands, strategy, fixed values), with the budget replaced by
``--evaluations`` and, with ``--epochs``, their epochs; the curves run on one island with the
default strategy, ``--curve-epochs`` epochs of ``--step-time`` seconds each. Every objective
reports its validation loss after each epoch and stops when ``trial.should_stop()`` says so;
an epoch is a step.

Measured: each search's epochs (steps reported, summed over all its evaluations, pruned ones
included), its best value (the best *completed* evaluation: a pruned one never wins), and the
best so far against the cumulative epochs (evaluations in the order they ended). For the
digits jobs the value is the search's validation loss; for the curves it is the noiseless final
loss of the winner's configuration (what a search should find; its regret against the
optimum is shown), since the noisy value it was picked by flatters it (the winner's curse).
The column "at end" counts evaluations recorded as pruned although they had reported all their
epochs: ASHA judges every rung it reaches, the last epoch too when it is one (27 is).

Target: the same best value (ASHA's median no worse than ``none``'s median plus ``none``'s
seeds' spread, max - min) with at least 2x fewer epochs: for ``asha``, the total epochs; for
``asha-steps``, the epochs after which its best first reached that value (median over seeds;
also shown: when it reached ``none``'s median itself, a stricter reading).
``--results FILE`` keeps every search's records (JSON) for a closer look.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _launch import launch, parse

HERE = Path(__file__).resolve().parent
JOBS = {"nas": HERE.parent / "nas_mlp_digits.yaml", "oialr": HERE.parent / "oialr_digits.yaml"}
CURVES = ("curves", "curves-slow")
PROBLEMS = (*CURVES, *JOBS)
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


# --- the mpiexec half ------------------------------------------------------------------------
def _problem(args: argparse.Namespace) -> tuple[Any, Any, Any, Any]:
    """Objective, space, settings and score function (params -> score, or None: the value)."""
    import propagator as pg
    from propagator.settings import Budget, Settings

    if args.problem in CURVES:
        from _curves import FAMILIES, SPACE

        curves = FAMILIES[args.problem]
        space = pg.Space({**SPACE.params, "epochs": args.epochs, "step_time": args.step_time})
        settings = Settings(budget=Budget(evaluations=1), metric="val_loss")
        return curves.objective, space, settings, lambda p: curves.final_loss(p, args.epochs)
    from propagator import config

    search = config.load(JOBS[args.problem])
    space = search.space
    if args.epochs:
        space = pg.Space({**space.params, "epochs": args.epochs})
    return search.objective(), space, search.settings, None


def _asha(args: argparse.Namespace) -> dict[str, Any]:
    return {"name": "asha", "min_step": args.min_step, "reduction": args.reduction}


def _budget(variant: str, evaluations: int, epochs: int) -> dict[str, int]:
    if variant == "asha-steps":  # evaluations only as a bound: the steps run out first
        return {"evaluations": evaluations * epochs, "steps": evaluations * epochs}
    return {"evaluations": evaluations}


def _row(record: Any, score: Any) -> list[Any]:
    """What the driver needs of an evaluation: end, epochs, status, value, score."""
    judged = score(record.params) if score else record.value
    return [record.end, len(record.intermediate), record.status, record.value, judged]


def _run(args: argparse.Namespace) -> None:
    from mpi4py import MPI

    from propagator.engine.layout import make_layout
    from propagator.engine.run import run
    from propagator.pruners import make_pruner
    from propagator.settings import budget_from

    objective, space, base, score = _problem(args)
    epochs = int(space.params["epochs"].value)
    comm = MPI.COMM_WORLD
    out: dict[str, list[dict[str, Any]]] = {v: [] for v in args.variants}
    for seed in range(args.seeds):
        for variant in args.variants:
            settings = replace(
                base,
                budget=budget_from(_budget(variant, args.evaluations, epochs)),
                pruner=None if variant == "none" else make_pruner(_asha(args)),
                seed=seed,
            )
            settings.check(space)
            layout = make_layout(comm.size, settings.ranks_per_worker, settings.islands)
            started = MPI.Wtime()
            result = run(objective, space, settings, layout, comm)
            wall = MPI.Wtime() - started
            records = [_row(r, score) for r in result.records]
            out[variant].append({"seed": seed, "wall": wall, "records": records})
            if comm.rank == 0:
                epochs_spent = sum(r[1] for r in records)
                print(
                    f"  {args.problem} seed {seed} {variant}: {len(records)} evaluations, "
                    f"{epochs_spent} epochs, {wall:.1f} s",
                    flush=True,
                )
    if comm.rank == 0:
        Path(args.out).write_text(json.dumps({"epochs": epochs, "runs": out}))


# --- the driver ------------------------------------------------------------------------------
def _variants(budget: str) -> list[str]:
    return {
        "evaluations": ["none", "asha"],
        "steps": ["none", "asha-steps"],
        "both": ["none", "asha", "asha-steps"],
    }[budget]


def _launch_args(problem: str, args: argparse.Namespace) -> list[str]:
    curves = problem in CURVES
    evaluations = args.curve_evaluations if curves else args.evaluations
    epochs = args.curve_epochs if curves else args.epochs or 0
    return [
        "--problem", problem,
        "--evaluations", str(evaluations),
        "--epochs", str(epochs),
        "--step-time", str(args.step_time),
        "--seeds", str(args.seeds),
        "--min-step", str(args.min_step),
        "--reduction", str(args.reduction),
        "--variants", *_variants(args.budget),
    ]  # fmt: skip


def _report(problem: str, data: dict[str, Any]) -> list[Any]:
    from _es_tables import Search, print_tables

    runs = {v: [Search.from_json(s) for s in searches] for v, searches in data["runs"].items()}
    if problem in CURVES:
        from _curves import FAMILIES
        from _curves import optimum as find_optimum

        optimum = find_optimum(FAMILIES[problem], data["epochs"])[0]
        print(f"  optimum (noiseless loss after {data['epochs']} epochs): {optimum:.4g}")
        return print_tables(runs, "winner's noiseless loss", data["epochs"], optimum)
    return print_tables(runs, "best val_loss", data["epochs"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", nargs="+", choices=PROBLEMS, default=list(PROBLEMS))
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0 .. N-1 (default 3)")
    parser.add_argument("--ranks", type=int, default=4, help="mpiexec ranks (default 4)")
    parser.add_argument("--evaluations", type=int, default=120, help="digits jobs (default 120)")
    parser.add_argument("--epochs", type=int, help="digits jobs (default: each job's own)")
    parser.add_argument("--curve-evaluations", type=int, default=400, help="curves (default 400)")
    parser.add_argument("--curve-epochs", type=int, default=27, help="curves (default 27)")
    parser.add_argument(
        "--step-time", type=float, default=0.005, help="curves: seconds per epoch (default 0.005)"
    )
    parser.add_argument(
        "--budget",
        choices=["evaluations", "steps", "both"],
        default="both",
        help="ASHA with the same evaluations, the same epochs (budget.steps), or both",
    )
    parser.add_argument("--min-step", type=int, default=1, help="ASHA's first rung (default 1)")
    parser.add_argument("--reduction", type=int, default=3, help="ASHA's η (default 3)")
    parser.add_argument("--results", type=Path, help="write every search's records here (JSON)")
    # the mpiexec half's own
    parser.add_argument("--problem", help=argparse.SUPPRESS)
    parser.add_argument("--variants", nargs="+", help=argparse.SUPPRESS)
    args = parse(parser, _run)
    if args is None:
        return
    for var in _THREAD_VARS:  # ranks share few cores: one thread each
        os.environ.setdefault(var, "1")
    raw: dict[str, Any] = {}
    summary: list[tuple[str, Any]] = []
    for problem in args.problems:
        print(f"\n== {problem} ==", flush=True)
        data = launch(__file__, args.ranks, _launch_args(problem, args), timeout=3600)
        raw[problem] = data
        summary += [(problem, v) for v in _report(problem, data)]
        if args.results:
            args.results.write_text(json.dumps(raw))
    print("\ntarget: the same best (within the seeds' spread) with >= 2x fewer epochs")
    for problem, v in summary:
        print(f"  {problem:<12} {v.label:<24} {v.ratio:5.2f}x  {'met' if v.met else 'NOT met'}")


if __name__ == "__main__":
    main()
