"""Population-based training against the default search, at the same epochs.

    python jobs/bench/pbt.py                                 # both jobs, 5 seeds
    python jobs/bench/pbt.py --jobs baseline --seeds 1       # a quick look

For each job and seed, under ``mpiexec -n RANKS``: the job's search as its file says but
without ``pbt`` (the default strategy, each configuration trained from scratch with fixed
values), and the same with its ``pbt`` section, both with the job's ``budget.steps`` (or
``--steps``): the epochs, summed over all trainings (PBT spends them on ``RANKS /
ranks_per_worker`` members at a time, each ``epochs`` long). Measured: the best complete
training's validation loss (PBT: the best member at its end; a segment that ended
mid-training never wins). Then, for seed 0,
the schedule (``propagate replay``'s stretches) of the best complete member whose params
changed during its training (the winner's when none did) is trained again from scratch by
``--replays`` members on fresh seeds (``pbt.replay``): the target is that they reach that
member's value within the seeds' spread, shown two ways: the member's value within the
replays' range (the schedule's own seed noise), and the replays' median within the spread of
the PBT runs' best members over the seeds (stricter: a best of a population varies less
over seeds than one training does, and is luckier: the winner's curse). Seed 0's PBT run is kept in
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
def _search(job: str, seed: int, budget: dict[str, int], pbt: Any, run_dir: Path | None) -> Any:
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
        run_dir=run_dir,
        fresh=run_dir is not None,
    )


def _job_steps(job: str) -> int:
    from propagator import config

    return int(config.load(JOBS[job]).settings.budget.steps)


def _pbt_spec(job: str) -> dict[str, Any]:
    from propagator import config

    return config.load(JOBS[job]).settings.pbt.to_dict()


def _changing(result: Any) -> tuple[list[dict[str, Any]], float]:
    """The schedule of the best complete member whose params changed (else the best's), and
    that member's value."""
    from propagator.results.replay import stretches

    for record in result.top(len(result)):
        schedule = stretches(result, record.id)
        if len(schedule) > 1:
            return schedule, record.value
    return stretches(result), result.best.value


def _summary(result: Any) -> dict[str, Any]:
    best = result.best
    steps = sum(len(r.intermediate) for r in result.records)
    return {"best": None if best is None else best.value, "steps": steps, "n": len(result)}


def _run(args: argparse.Namespace) -> None:
    from mpi4py import MPI

    comm, out = MPI.COMM_WORLD, {}
    kept = KEPT / f"pbt_{args.job}" if args.seed == 0 else None
    budget = {"steps": args.steps}
    out["search"] = _summary(_search(args.job, args.seed, budget, None, None))
    result = _search(args.job, args.seed, budget, _pbt_spec(args.job), kept)
    out["pbt"] = _summary(result)
    if args.seed == 0 and args.replays:
        schedule, member = _changing(result)
        spec = {**_pbt_spec(args.job), "replay": schedule}
        # a budget of evaluations deals the members out to the workers (see Member.done)
        members = {"evaluations": args.replays * len(schedule)}
        replayed = _search(args.job, 1000, members, spec, None)
        values = [r.value for r in replayed.records if r.ok]
        out["schedule"], out["replays"], out["member"] = schedule, values, member
        out["mutable"] = spec["mutable"]
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
        values = [r[variant]["best"] for r in runs if r[variant]["best"] is not None]
        rows[variant] = _median(values)
        med, lo, hi = rows[variant]
        label = "default search" if variant == "search" else "pbt"
        steps = statistics.median(r[variant]["steps"] for r in runs)
        print(f"  {label:<15} best val_loss median {med:.4g} [{lo:.4g}, {hi:.4g}], {steps} epochs")
    ratio = rows["search"][0] / rows["pbt"][0]
    print(f"  default / pbt median best: {ratio:.3f} (> 1: pbt better)")
    first = runs[0]
    if "schedule" in first:
        print("  seed 0's best changing schedule (from step: params):")
        mutable = first["mutable"]
        for stretch in first["schedule"]:
            shown = {
                k: f"{v:.4g}" if isinstance(v, float) else v
                for k, v in stretch["params"].items()
                if k in mutable
            }
            print(f"    {stretch['step']:>4}: {shown}")
        replays, member = first["replays"], first["member"]
        if replays:
            _replay_verdicts(replays, member, rows["pbt"][2] - rows["pbt"][1])


def _replay_verdicts(replays: list[float], member: float, runs_spread: float) -> None:
    """Whether the replays reach the member's value, by two spreads: the replays' own (one
    schedule's seed noise: the member within their range) and the PBT runs' (the best member
    of each seed's run, the stricter, since a best-of-population varies less than one
    training does)."""
    med, lo, hi = _median(replays)
    print(
        f"  replayed from scratch on {len(replays)} fresh seeds: median {med:.4g} [{lo:.4g}, "
        f"{hi:.4g}] against the member's {member:.4g}"
    )
    own = lo <= member <= hi
    print(f"    within the replays' spread [{lo:.4g}, {hi:.4g}]: {'yes' if own else 'NO'}")
    runs = abs(med - member) <= runs_spread
    print(
        f"    median within the PBT runs' spread of the best ({runs_spread:.3g}) of the "
        f"member: {'yes' if runs else 'NO'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", nargs="+", choices=list(JOBS), default=list(JOBS))
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0 .. N-1 (default 5)")
    parser.add_argument("--ranks", type=int, default=8, help="mpiexec ranks (default 8)")
    parser.add_argument(
        "--steps", type=int, help="epochs per search (default: the job file's budget.steps)"
    )
    parser.add_argument("--replays", type=int, default=8, help="replayed members (default 8)")
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
                 "--replays", str(args.replays)],
                timeout=3600,
            )  # fmt: skip
            raw.setdefault(job, []).append(more)
            if args.results:
                args.results.write_text(json.dumps(raw))
        _report(job, raw[job])


if __name__ == "__main__":
    main()
