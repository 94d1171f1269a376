"""Early stopping against none: the best validation loss reached against the epochs spent.

Compared: ASHA that stops, ASHA that pauses and promotes, Hyperband brackets, learning-curve
extrapolation, ASHA with the curve rule, and the ``auto`` preset.

    python jobs/bench/early_stopping.py                     # everything: about 5.5 h (below)
    python jobs/bench/early_stopping.py --problems curves --seeds 1 --curve-evaluations 60
    python jobs/bench/early_stopping.py --problems nas --variants asha promotion auto

For each problem the same search runs side by side, for ``--seeds`` seeds (0, 1, ...), under
``mpiexec -n RANKS`` (one ``mpiexec`` per problem and seed, the variants one after another in
it). The variants (``--variants``, default all but ``asha-steps``; ``none`` always runs, as
the reference), each with ``N`` evaluations (``--evaluations``, ``--curve-evaluations``; a
promoted training's resumption is not a new evaluation) unless said otherwise:

* ``none``: no early stopping (each evaluation runs all its ``E`` epochs: ``N x E`` epochs);
* ``asha``: ``{name: asha, min_step: 1, reduction: 3}`` (``--min-step``, ``--reduction``),
  ASHA that stops;
* ``promotion``: the same with ``promotion: true``: a training not good enough at a rung is
  paused (its state saved) and resumed when it comes to rank in the top 1/η of its rung;
* ``brackets``: Hyperband brackets with promotion, ``{name: asha, promotion: true, brackets:
  3}`` (each configuration drawn into a bracket judged from rung 0, 1 or 2 on, against its
  own bracket: asynchronous Hyperband over promoting ASHA, as in Li et al., 2020);
* ``curve``: ``{name: curve}``, learning-curve extrapolation alone at its default
  ``probability`` 0.2 (it stops; the same rungs);
* ``asha-curve``: ``{name: asha, curve: 0.05, promotion: true}``: ASHA with the curve rule as
  a second opinion (a training ASHA would pause goes on while its curve gives it at least a
  5 % chance of beating the best complete one), pausing and promoting;
* ``auto``: ``early_stopping: auto``, the default preset as it is (its spec is printed), or
  with settings of its own from ``--auto JSON`` (e.g. ``'{"between": 0.02}'``);
* ``auto-steps``: ``auto`` with ``budget.steps`` = ``N x E``, the epochs ``none`` spends, so
  it tries more configurations at equal epochs;
* ``asha-steps`` (only when asked for): ``asha`` with ``budget.steps`` = ``N x E``.

``--budget evaluations`` or ``steps`` keeps only the variants with that budget (``none``
besides); with ``--budget`` and no ``--variants``, ``asha-steps`` is among them.

Problems: ``nas``, ``jobs/nas_mlp_digits.yaml`` (the ``baseline`` trainer on digits, an MLP
architecture space); ``oialr``, ``jobs/oialr_digits.yaml``; ``ab``, ``jobs/ab_digits.yaml``
(AB training's hyperparameters, one worker of 4 ranks; chosen over ``daso_digits.yaml`` as
the faster per epoch, with more rungs in its 10 epochs); and two families
of synthetic learning curves (``_curves.py``: curves that cross, seeded noise, a known
optimum): ``curves``, where a bad start usually means a bad end, and ``curves-slow``, where
the configurations that end best learn slowest (the short-horizon bias at its strongest). The
jobs run as their files say (islands, strategy, ranks per worker, fixed values), with the
budget replaced by ``--evaluations`` and, with ``--epochs``, their epochs; the curves run on
one island with the default strategy, ``--curve-epochs`` epochs of ``--step-time`` seconds
each. Every objective reports its validation loss after each epoch, stops when
``trial.should_stop()`` says so, and saves its state when that pauses it (``trial.paused``;
the trainers' epoch loop, :meth:`_curves.Curves.objective`); an epoch is a step.

Measured: each search's epochs (steps reported, summed over all its evaluations, pruned,
paused and promoted ones included), its best value (the best *completed* evaluation: a pruned
or paused one never wins), and the best so far against the cumulative epochs (evaluations in
the order they ended; a promoted one when it ended). For the digits jobs the value is the
search's validation loss; for the curves it is the noiseless final loss of the winner's
configuration (what a search should find; its regret against the optimum is shown), since
the noisy value it was picked by flatters it (the winner's curse). For the pausing variants:
the trainings paused (at least once), how many of them were promoted later, and how many of
the promoted ended among the 10 completed evaluations of the best value. The column "at end"
counts evaluations recorded as pruned although they had reported all their epochs.

Target: the same best value (a median no worse than ``none``'s median plus ``none``'s seeds'
spread, max - min) with at least 2x fewer epochs in total (3x on the synthetic curves);
``asha-steps``: the epochs after which its best first reached that value, 2x (3x) fewer;
``auto-steps``: at the same epochs, a median best better than ``none``'s median.
``--results FILE`` keeps every search's records (JSON) for a closer look.

Duration, on 2 cores shared with other work (load about 10), 4 ranks, one seed measured:
``curves-slow`` at the defaults 6.5 min (``auto-steps``' ~3000 evaluations 4.3 min of it),
``nas`` at 40 evaluations 2.2 min. Estimated per seed at the defaults: each curves family
~7 min, ``nas`` ~7, ``oialr`` ~5, ``ab`` ~43 (one worker of 4 ranks, ~0.4 s an epoch, every
variant together ~5x the epochs of ``none``); the default run (5 seeds) about 5.5 hours, ``ab``
3.6 of them (``--problems ab --evaluations 60`` about halves that). Every (problem, seed) is
one ``mpiexec``; ``--results`` is rewritten after each.
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
JOBS = {
    "nas": HERE.parent / "nas_mlp_digits.yaml",
    "oialr": HERE.parent / "oialr_digits.yaml",
    "ab": HERE.parent / "ab_digits.yaml",
}
CURVES = ("curves", "curves-slow")
PROBLEMS = (*CURVES, *JOBS)
DEFAULT_VARIANTS = (
    "none",
    "asha",
    "promotion",
    "brackets",
    "curve",
    "asha-curve",
    "auto",
    "auto-steps",
)
VARIANTS = (*DEFAULT_VARIANTS, "asha-steps")
SAME_EPOCHS = ("asha-steps", "auto-steps")  # budget.steps = N x E
BRACKETS = 3
CURVE_PROBABILITY = 0.05
FACTOR = {"curves": 3.0, "curves-slow": 3.0}  # fewer epochs the target asks for (else 2)
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def early_stopping(
    variant: str, min_step: int = 1, reduction: int = 3, auto: dict[str, Any] | None = None
) -> Any:
    """The ``early_stopping`` setting of a variant (``None``: none); ``auto``: settings that
    replace the ``auto`` preset's defaults (``--auto``)."""
    asha = {"name": "asha", "min_step": min_step, "reduction": reduction}
    preset = {"name": "auto", **auto} if auto else "auto"
    return {
        "none": None,
        "asha": asha,
        "asha-steps": asha,
        "promotion": {**asha, "promotion": True},
        "brackets": {**asha, "promotion": True, "brackets": BRACKETS},
        "curve": {**asha, "name": "curve"},
        "asha-curve": {**asha, "curve": CURVE_PROBABILITY, "promotion": True},
        "auto": preset,
        "auto-steps": preset,
    }[variant]


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


def _budget(variant: str, evaluations: int, epochs: int) -> dict[str, int]:
    if variant in SAME_EPOCHS:  # evaluations only as a bound: the steps run out first
        return {"evaluations": evaluations * epochs, "steps": evaluations * epochs}
    return {"evaluations": evaluations}


def _row(record: Any, score: Any) -> list[Any]:
    """What the driver needs of an evaluation: end, epochs, status, value, score, promoted,
    and whether it was to be paused but saved no checkpoint."""
    judged = score(record.params) if score else record.value
    unsaved = record.status == "pruned" and "saved no checkpoint" in (record.error or "")
    steps = len(record.intermediate)
    return [record.end, steps, record.status, record.value, judged, record.promoted, unsaved]


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
    specs: dict[str, Any] = {}
    for variant in args.variants:
        auto = json.loads(args.auto) if args.auto else None
        pruner = make_pruner(early_stopping(variant, args.min_step, args.reduction, auto))
        specs[variant] = None if pruner is None else pruner.to_dict()
        settings = replace(
            base,
            budget=budget_from(_budget(variant, args.evaluations, epochs)),
            pruner=pruner,
            seed=args.seed,
        )
        settings.check(space)
        layout = make_layout(comm.size, settings.ranks_per_worker, settings.islands)
        started = MPI.Wtime()
        result = run(objective, space, settings, layout, comm)
        wall = MPI.Wtime() - started
        records = [_row(r, score) for r in result.records]
        out[variant].append({"seed": args.seed, "wall": wall, "records": records})
        if comm.rank == 0:
            paused = sum(r[2] == "paused" or r[5] for r in records)
            promoted = sum(r[5] for r in records)
            print(
                f"  {args.problem} seed {args.seed} {variant}: {len(records)} evaluations, "
                f"{sum(r[1] for r in records)} epochs, {paused} paused, {promoted} promoted, "
                f"{wall:.1f} s",
                flush=True,
            )
    if comm.rank == 0:
        Path(args.out).write_text(json.dumps({"epochs": epochs, "specs": specs, "runs": out}))


# --- the driver ------------------------------------------------------------------------------
def variants(chosen: list[str] | None, budget: str | None) -> list[str]:
    """The variants to run: ``chosen`` (default: all but ``asha-steps``, or all with a
    ``budget``), those of ``budget`` (``evaluations``, ``steps``; ``both`` or ``None``: all),
    ``none`` first and always."""
    picked = list(chosen or (VARIANTS if budget else DEFAULT_VARIANTS))
    if budget == "evaluations":
        picked = [v for v in picked if v not in SAME_EPOCHS]
    elif budget == "steps":
        picked = [v for v in picked if v in SAME_EPOCHS]
    return ["none", *dict.fromkeys(v for v in picked if v != "none")]


def _launch_args(problem: str, seed: int, args: argparse.Namespace) -> list[str]:
    curves = problem in CURVES
    evaluations = args.curve_evaluations if curves else args.evaluations
    epochs = args.curve_epochs if curves else args.epochs or 0
    return [
        "--problem", problem,
        "--evaluations", str(evaluations),
        "--epochs", str(epochs),
        "--step-time", str(args.step_time),
        "--seed", str(seed),
        "--min-step", str(args.min_step),
        "--reduction", str(args.reduction),
        "--variants", *args.variants,
        *(["--auto", args.auto] if args.auto else []),
    ]  # fmt: skip


def _merge(data: dict[str, Any] | None, more: dict[str, Any]) -> dict[str, Any]:
    """One problem's results over seeds: ``more``'s searches appended to ``data``'s."""
    if data is None:
        return more
    for variant, searches in more["runs"].items():
        data["runs"][variant] += searches
    return data


def _report(problem: str, data: dict[str, Any]) -> list[Any]:
    from _es_tables import Search, print_tables

    runs = {v: [Search.from_json(s) for s in searches] for v, searches in data["runs"].items()}
    specs = data.get("specs", {})
    for variant in ("auto", "auto-steps"):
        if variant in specs:
            print(f"  {variant} = {specs[variant]}")
            break
    pausing = [v for v, spec in specs.items() if spec and spec.get("promotion")]
    factor = FACTOR.get(problem, 2.0)
    if problem in CURVES:
        from _curves import FAMILIES
        from _curves import optimum as find_optimum

        optimum = find_optimum(FAMILIES[problem], data["epochs"])[0]
        print(f"  optimum (noiseless loss after {data['epochs']} epochs): {optimum:.4g}")
        what = "winner's noiseless loss"
        return print_tables(runs, what, data["epochs"], optimum, factor, pausing)
    return print_tables(runs, "best val_loss", data["epochs"], None, factor, pausing)


def _summary(summary: list[tuple[str, Any]]) -> None:
    print(
        "\ntarget: the same best (median within none's median + its seeds' spread) with >= 2x"
        "\nfewer epochs (>= 3x on the curves); auto-steps: a better median best at the same epochs"
    )
    print(f"  {'problem':<12} {'variant':<11} {'ratio':>6}  {'best':>10}  {'none':>10}  verdict")
    for problem, v in summary:
        print(
            f"  {problem:<12} {v.variant:<11} {v.ratio:5.2f}x  {v.best:10.4g}  "
            f"{v.reference_best:10.4g}  {'met' if v.met else 'NOT met'}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", nargs="+", choices=PROBLEMS, default=list(PROBLEMS))
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0 .. N-1 (default 5)")
    parser.add_argument("--ranks", type=int, default=4, help="mpiexec ranks (default 4)")
    parser.add_argument("--evaluations", type=int, default=120, help="digits jobs (default 120)")
    parser.add_argument("--epochs", type=int, help="digits jobs (default: each job's own)")
    parser.add_argument("--curve-evaluations", type=int, default=400, help="curves (default 400)")
    parser.add_argument("--curve-epochs", type=int, default=27, help="curves (default 27)")
    parser.add_argument(
        "--step-time", type=float, default=0.005, help="curves: seconds per epoch (default 0.005)"
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=VARIANTS,
        help=f"which to run (default: {' '.join(DEFAULT_VARIANTS)}); none always runs",
    )
    parser.add_argument(
        "--budget",
        choices=["evaluations", "steps", "both"],
        help="only the variants with the same evaluations, or the same epochs (budget.steps)",
    )
    parser.add_argument("--min-step", type=int, default=1, help="ASHA's first rung (default 1)")
    parser.add_argument("--reduction", type=int, default=3, help="ASHA's η (default 3)")
    parser.add_argument(
        "--auto", metavar="JSON", help="auto's settings to try, e.g. '{\"between\": 0.02}'"
    )
    parser.add_argument("--results", type=Path, help="write every search's records here (JSON)")
    parser.add_argument("--problem", help=argparse.SUPPRESS)  # the mpiexec half's own
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parse(parser, _run)
    if args is None:
        return
    args.variants = variants(args.variants, args.budget)
    for var in _THREAD_VARS:  # ranks share few cores: one thread each
        os.environ.setdefault(var, "1")
    raw: dict[str, Any] = {}
    summary: list[tuple[str, Any]] = []
    for problem in args.problems:
        print(f"\n== {problem} ==", flush=True)
        for seed in range(args.seeds):
            more = launch(__file__, args.ranks, _launch_args(problem, seed, args), timeout=3 * 3600)
            raw[problem] = _merge(raw.get(problem), more)
            if args.results:
                args.results.write_text(json.dumps(raw))
        summary += [(problem, v) for v in _report(problem, raw[problem])]
    _summary(summary)


if __name__ == "__main__":
    main()
