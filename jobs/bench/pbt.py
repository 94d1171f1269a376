"""Population-based training against the default search, at the same epochs.

    python jobs/bench/pbt.py                                 # both jobs, 5 seeds
    python jobs/bench/pbt.py --jobs baseline --seeds 1       # a quick look

For each job and seed, under ``mpiexec -n RANKS``: the job's search as its file says but
without ``pbt`` (the default strategy, each configuration trained from scratch with fixed
values), and the same with its ``pbt`` section, both with the job's ``budget.steps`` (or
``--steps``): the epochs, summed over all trainings (PBT spends them on ``RANKS /
ranks_per_worker`` members at a time, each ``epochs`` long). Both then confirm their winners
(``confirm: {top: --top, seeds: --confirm-seeds}``, the same epochs for both): the default
search trains its best configurations again, PBT its best members' schedules, from scratch
on fresh seeds. Measured: the best complete training's validation loss (PBT: the best member
at its end; a segment that ended mid-training never wins), which flatters its winner (the
best of many noisy trainings: the winner's curse), and the confirmed winner's mean, which
does not. Then, for seed 0, the confirmed winning schedule (``propagate replay``'s
stretches) is trained again from scratch by ``--replays`` members on other fresh seeds
(``pbt.replay``): the target is that they reach PBT's value within the seeds' spread: the
confirmed mean within the replays' range and their median within one standard deviation of
the replays (the member's own search value is shown beside). Seed 0's PBT run is kept in
``runs/bench/pbt_<job>`` (``propagate report`` / ``plot`` it to look at the schedule).

Jobs: ``baseline``, ``jobs/pbt_baseline_digits.yaml`` (the learning rate and momentum);
``easgd``, ``jobs/pbt_easgd_digits.yaml`` (EASGD's learning rate, moving rate and
communication period, workers of 2 ranks).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
from pathlib import Path
from typing import Any

from _launch import launch, parse

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
JOBS = {
    "baseline": HERE.parent / "pbt_baseline_digits.yaml",
    "easgd": HERE.parent / "pbt_easgd_digits.yaml",
}
KEPT = ROOT / "runs" / "bench"
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


# --- the mpiexec half ------------------------------------------------------------------------
def _search(
    job: str,
    seed: int,
    budget: dict[str, int],
    pbt: Any,
    run_dir: Path | None,
    confirm: dict[str, int] | None = None,
) -> Any:
    import propagator as pg
    from propagator import config

    search = config.load(JOBS[job])
    s = search.settings
    return pg.search(
        search.objective(),
        search.space,
        budget=budget,
        metric=s.metric,
        direction=s.direction,
        ranks_per_worker=s.ranks_per_worker,
        islands=s.islands,
        seed=seed,
        pbt=pbt,
        confirm=confirm,
        run_dir=run_dir,
        fresh=run_dir is not None,
    )


def _job_steps(job: str) -> int:
    from propagator import config

    return int(config.load(JOBS[job]).settings.budget.steps)


def _pbt_spec(job: str) -> dict[str, Any]:
    from propagator import config

    return config.load(JOBS[job]).settings.pbt.to_dict()


def _summary(result: Any) -> dict[str, Any]:
    steps = sum(len(r.intermediate) for r in result.records if not r.confirmation)
    confirmed = result.confirmed
    return {
        "best": result.search_best.value if result.top(1) else None,
        "winner": confirmed[0].mean if confirmed else None,
        "winner_search": confirmed[0].search.value if confirmed and confirmed[0].search else None,
        "winner_values": list(confirmed[0].values) if confirmed else [],
        "steps": steps,
        "n": len(result),
    }


def _run(args: argparse.Namespace) -> None:
    from mpi4py import MPI

    from propagator.results.replay import stretches

    comm, out = MPI.COMM_WORLD, {}
    kept = KEPT / f"pbt_{args.job}" if args.seed == 0 else None
    budget, confirm = {"steps": args.steps}, {"top": args.top, "seeds": args.confirm_seeds}
    out["search"] = _summary(_search(args.job, args.seed, budget, None, None, confirm))
    result = _search(args.job, args.seed, budget, _pbt_spec(args.job), kept, confirm)
    out["pbt"] = _summary(result)
    if args.seed == 0 and args.replays and result.top(1):
        schedule = stretches(result)  # the confirmed winner's
        spec = {**_pbt_spec(args.job), "replay": schedule}
        # a budget of evaluations deals the members out to the workers (see Member.done)
        members = {"evaluations": args.replays * len(schedule)}
        replayed = _search(args.job, 1000, members, spec, None)
        out["replays"] = [r.value for r in replayed.records if r.ok]
        out["schedule"], out["mutable"] = schedule, spec["mutable"]
    if comm.rank == 0:
        Path(args.out).write_text(json.dumps(out))
        print(f"  {args.job} seed {args.seed}: {json.dumps(out)[:300]}", flush=True)


# --- the driver ------------------------------------------------------------------------------
def _median(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def _report(job: str, runs: list[dict[str, Any]]) -> None:
    print(f"\n== {job} ({len(runs)} seeds, {runs[0]['pbt']['steps']} epochs in the PBT runs) ==")
    rows = {}
    for variant in ("search", "pbt"):
        label = "default search" if variant == "search" else "pbt"
        steps = statistics.median(r[variant]["steps"] for r in runs)
        for key, what in (("best", "best val_loss"), ("winner", "confirmed winner's mean")):
            values = [r[variant][key] for r in runs if r[variant][key] is not None]
            if not values:
                continue
            rows[variant, key] = _median(values)
            med, lo, hi = rows[variant, key]
            print(f"  {label:<15} {what:<24} median {med:.4g} [{lo:.4g}, {hi:.4g}], {steps} epochs")
    for key in ("best", "winner"):
        if ("search", key) in rows and ("pbt", key) in rows:
            ratio = rows["search", key][0] / rows["pbt", key][0]
            print(f"  default / pbt median {key}: {ratio:.3f} (> 1: pbt better)")
    first = runs[0]
    if "schedule" in first:
        print("  seed 0's confirmed winning schedule (from step: params):")
        mutable = first["mutable"]
        for stretch in first["schedule"]:
            shown = {
                k: f"{v:.4g}" if isinstance(v, float) else v
                for k, v in stretch["params"].items()
                if k in mutable
            }
            print(f"    {stretch['step']:>4}: {shown}")
        if first["replays"] and first["pbt"]["winner"] is not None:
            _replay_verdicts(first["replays"], first["pbt"])


def _replay_verdicts(replays: list[float], pbt: dict[str, Any]) -> None:
    """Whether the replays reach PBT's value for the schedule, its confirmed mean: within
    the replays' range, and their median within one standard deviation of the replays."""
    med, lo, hi = _median(replays)
    sd = statistics.stdev(replays) if len(replays) > 1 else 0.0
    confirmed, member = pbt["winner"], pbt["winner_search"]
    print(
        f"  replayed from scratch on {len(replays)} fresh seeds: median {med:.4g} [{lo:.4g}, "
        f"{hi:.4g}], sd {sd:.3g}; PBT's confirmed mean {confirmed:.4g} "
        f"(over {len(pbt['winner_values'])} seeds), the member's own value {member:.4g}"
    )
    own = lo <= confirmed <= hi
    print(f"    confirmed mean within the replays' range: {'yes' if own else 'NO'}")
    near = abs(med - confirmed) <= sd
    print(f"    replays' median within one sd of the confirmed mean: {'yes' if near else 'NO'}")
    print(f"    (the member's own value within the replays' range: {lo <= member <= hi})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", nargs="+", choices=list(JOBS), default=list(JOBS))
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0 .. N-1 (default 5)")
    parser.add_argument("--ranks", type=int, default=8, help="mpiexec ranks (default 8)")
    parser.add_argument(
        "--steps", type=int, help="epochs per search (default: the job file's budget.steps)"
    )
    parser.add_argument("--replays", type=int, default=8, help="replayed members (default 8)")
    parser.add_argument("--top", type=int, default=3, help="winners confirmed (default 3)")
    parser.add_argument(
        "--confirm-seeds", type=int, default=3, help="confirmations per winner (default 3)"
    )
    parser.add_argument("--results", type=Path, help="write every run's summary here (JSON)")
    parser.add_argument("--job", help=argparse.SUPPRESS)  # the mpiexec half's own
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parse(parser, _run)
    if args is None:
        return
    for var in _THREAD_VARS:
        os.environ.setdefault(var, "1")
    KEPT.mkdir(parents=True, exist_ok=True)
    raw: dict[str, list[dict[str, Any]]] = {}
    for job in args.jobs:
        shutil.rmtree(KEPT / f"pbt_{job}", ignore_errors=True)
        steps = args.steps or _job_steps(job)
        for seed in range(args.seeds):
            more = launch(
                __file__,
                args.ranks,
                ["--job", job, "--seed", str(seed), "--steps", str(steps),
                 "--replays", str(args.replays), "--top", str(args.top),
                 "--confirm-seeds", str(args.confirm_seeds)],
                timeout=3600,
            )  # fmt: skip
            raw.setdefault(job, []).append(more)
            if args.results:
                args.results.write_text(json.dumps(raw))
        _report(job, raw[job])


if __name__ == "__main__":
    main()
