"""Multi-objective search quality against Optuna: hypervolume at equal budget, side by side.

    python jobs/bench/multi_objective.py                     # 4 ranks x 100 evaluations x 5 seeds
    python jobs/bench/multi_objective.py --quick             # a smoke test (about a minute)
    python jobs/bench/multi_objective.py --problems zdt1 --only pg-default nsga2-pop20 \\
        --ours 'ga8={"strategy": {"name": "ga", "population": 8}}'

Problems (``_mo_problems.py``): ZDT1, ZDT2, ZDT3 (8 variables), ZDT6 (10) and DTLZ2 (2
objectives, 6 variables), both objectives minimised. Every tool evaluates the same
objectives on the same box ``[0, 1]^n`` with the same number of evaluations (``--evaluations``,
over all ranks), for ``--seeds`` seeds 0, 1, ...:

* **ours** (``pg-*``): ``pg.search(problem, space, budget=E, metric=["f1", "f2"],
  direction=["minimize", "minimize"], seed=seed, **settings)`` under ``mpiexec -n RANKS``
  (one search after another in one ``mpiexec``): ``pg-default`` (the default strategy, the
  portfolio: GA and TPE with several objectives), ``pg-ga``, ``pg-random``, and
  ``pg-default-2isl`` (``islands=2``: the portfolio, GA and TPE, on each island, with
  migration); more with ``--ours LABEL=JSON`` (JSON: ``pg.search``
  keywords, e.g. ``{"strategy": {"name": "portfolio", "members": ["ga"]}}``).
* **Optuna 5**, sequentially in one process (every result known before the next ask, as users
  run it): ``nsga2-pop50``, ``NSGAIISampler`` with its default population of 50 (at 100
  evaluations: a random first generation and one bred generation); ``nsga2-pop20``, population
  20 (five generations in 100 evaluations); ``optuna-motpe``, ``TPESampler`` (its
  multi-objective mode); ``optuna-random``, ``RandomSampler``. All seeded with the run's seed.

Scores (``_mo_problems.py``): the hypervolume of each run's evaluations up to a fixed
reference point per problem (1.1 × each objective's maximum over the space), and the IGD to
the true front; tables show the median over seeds, and propagate's default against each peer
as wins-ties-losses of the median hypervolume (a win: a higher median). Every run (with its
objective values) goes to ``--results`` (JSON) as it finishes, the summary at the end.
Target (issue 13): the default above NSGA-II.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _launch import parse
from _mo_problems import METRICS, PROBLEMS, MOProblem, get_problem
from _peer_protocol import Job, emit, read_jobs, stream

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parents[1] / "runs" / "bench" / "multi_objective.json"
DEFAULT = "pg-default"
OURS: dict[str, dict[str, Any]] = {
    DEFAULT: {},
    "pg-ga": {"strategy": "ga"},
    "pg-random": {"strategy": "random"},
    "pg-default-2isl": {"islands": 2},
}
PEERS = ("nsga2-pop50", "nsga2-pop20", "optuna-motpe", "optuna-random")
NSGA2 = ("nsga2-pop50", "nsga2-pop20")
_THREADS = dict.fromkeys(("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"), "1")
_QUICK = {"seeds": 2, "evaluations": 24, "ranks": 2, "problems": ["zdt1", "dtlz2"]}


@dataclass(frozen=True)
class Tool:
    """A column: one of our settings (``search`` holds its ``pg.search`` keywords) or a peer."""

    label: str
    search: dict[str, Any] | None = field(default=None, hash=False)

    @property
    def ours(self) -> bool:
        return self.search is not None


# --- the mpiexec half: our searches ----------------------------------------------------------
def _run(args: argparse.Namespace) -> None:
    from mpi4py import MPI

    import propagator as pg

    settings = json.loads(args.settings)
    for job in read_jobs(Path(args.jobs)):
        problem = get_problem(job.problem)
        started = MPI.Wtime()
        result = pg.search(
            problem,
            problem.space,
            budget=job.budget,
            metric=list(METRICS),
            direction=["minimize"] * len(METRICS),
            seed=job.seed,
            **settings,
        )
        if MPI.COMM_WORLD.rank == 0:
            values = result.objective_values[result.ok]
            emit(Path(args.out), job, _kept(values, len(result)), MPI.Wtime() - started)


def _kept(values: np.ndarray, evaluations: int) -> dict[str, Any]:
    """What a run's runner hands back: its successful evaluations' objective values."""
    return {"values": np.asarray(values).tolist(), "evaluations": evaluations}


# --- the peers: Optuna, sequential -----------------------------------------------------------
def _sampler(label: str, seed: int) -> Any:
    import optuna

    if label.startswith("nsga2-pop"):
        population = int(label.removeprefix("nsga2-pop"))
        return optuna.samplers.NSGAIISampler(population_size=population, seed=seed)
    if label == "optuna-motpe":
        return optuna.samplers.TPESampler(seed=seed)
    if label == "optuna-random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"no Optuna sampler for {label!r}")


def run_optuna(label: str, problem: MOProblem, evaluations: int, seed: int) -> dict[str, Any]:
    """One sequential Optuna study of ``evaluations`` trials; :func:`_kept` of it."""
    import optuna

    def objective(trial: Any) -> tuple[float, ...]:
        params = {name: trial.suggest_float(name, 0.0, 1.0) for name in problem.space.params}
        values = problem.evaluate(params)
        return tuple(values[m] for m in METRICS)

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(
        directions=["minimize"] * len(METRICS), sampler=_sampler(label, seed)
    )
    study.optimize(objective, n_trials=evaluations)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    return _kept([t.values for t in done], len(study.trials))


def _optuna_lines(jobs: Sequence[Job]) -> Any:
    for job in jobs:
        started = time.perf_counter()
        line = run_optuna(job.tool, get_problem(job.problem), job.budget, job.seed)
        yield {"job": asdict(job), **line, "seconds": time.perf_counter() - started}


# --- the driver ------------------------------------------------------------------------------
def _lines(tool: Tool, jobs: Sequence[Job], ranks: int) -> Any:
    """Each finished run of ``tool`` as its runner reports it."""
    if not tool.ours:
        return _optuna_lines(jobs)
    cmd = ["mpiexec", "-n", str(ranks), sys.executable, __file__, "--run"]
    cmd += ["--settings", json.dumps(tool.search)]
    return stream(cmd, jobs, {**os.environ, **_THREADS})


def execute(tools: Sequence[Tool], jobs: Sequence[Job], ranks: int, results: Path) -> list[dict]:
    """Run every job (tool by tool), scoring each run; the runs so far are saved to
    ``results`` after each one."""
    runs: list[dict] = []
    for tool in tools:
        for line in _lines(tool, [j for j in jobs if j.tool == tool.label], ranks):
            job = Job(**line.pop("job"))
            scores = get_problem(job.problem).score(np.array(line["values"], dtype=float))
            runs.append({**asdict(job), **scores, **line})
            _save(results, {"runs": runs})
            print(f"[{len(runs)}/{len(jobs)}] {_describe(runs[-1])}", flush=True)
    return runs


def _describe(run: dict) -> str:
    return (
        f"{run['tool']} {run['problem']} seed {run['seed']}: hypervolume "
        f"{run['hypervolume']:.4f}, IGD {run['igd']:.4f}, {run['seconds']:.1f} s"
    )


def _save(path: Path, content: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(content, indent=1))
    os.replace(tmp, path)  # a kill mid-write leaves the previous file intact


def summarize(runs: Sequence[dict], labels: Sequence[str], problems: Sequence[str]) -> dict:
    """Per problem and tool, the median ``hypervolume``, ``igd`` and ``igd_plus`` over its
    runs (and their number, ``runs``); missing runs give no entry."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for problem in problems:
        out[problem] = {}
        for label in labels:
            mine = [r for r in runs if r["problem"] == problem and r["tool"] == label]
            if mine:
                medians = {
                    k: statistics.median(r[k] for r in mine)
                    for k in ("hypervolume", "igd", "igd_plus")
                }
                out[problem][label] = {**medians, "runs": len(mine)}
    return out


def wins(summary: dict, mine: str, other: str) -> tuple[int, int, int]:
    """Wins, ties and losses of ``mine`` against ``other`` over the problems both ran: a win
    is a higher median hypervolume."""
    pairs = [
        (cols[mine]["hypervolume"], cols[other]["hypervolume"])
        for cols in summary.values()
        if mine in cols and other in cols
    ]
    won, lost = sum(a > b for a, b in pairs), sum(a < b for a, b in pairs)
    return won, len(pairs) - won - lost, lost


def markdown(summary: dict, labels: Sequence[str], what: str, digits: int) -> str:
    """A markdown table of one median score: a row per problem, a column per tool."""
    head = "| problem | true front | " + " | ".join(labels) + " |"
    rule = "|---" * (len(labels) + 2) + "|"
    rows = []
    for name, cols in summary.items():
        problem = PROBLEMS[name]
        best = "" if what != "hypervolume" else f"{problem.front_hypervolume:.{digits}f}"
        cells = [f"{cols[lb][what]:.{digits}f}" if lb in cols else "-" for lb in labels]
        rows.append(f"| {name} | {best} | " + " | ".join(cells) + " |")
    return "\n".join([head, rule, *rows])


def report(summary: dict, labels: Sequence[str], settings: dict) -> str:
    """The tables and the verdicts, as markdown."""
    title = (
        f"{settings['ranks']} ranks x {settings['evaluations']} evaluations (Optuna: "
        f"sequential), median over {settings['seeds']} seeds"
    )
    parts = [
        f"### Hypervolume (higher is better; reference 1.1 x the objectives' maxima), {title}",
        markdown(summary, labels, "hypervolume", 4),
        f"### IGD to the true front (lower is better), {title}",
        markdown(summary, labels, "igd", 4),
    ]
    if DEFAULT in labels:
        lines = [f"{DEFAULT} against each peer (wins-ties-losses, median hypervolume):"]
        for other in [lb for lb in labels if lb != DEFAULT]:
            lines.append(f"- {other}: {'-'.join(map(str, wins(summary, DEFAULT, other)))}")
        for other in [lb for lb in NSGA2 if lb in labels]:
            won, _, lost = wins(summary, DEFAULT, other)
            verdict = "met" if won > lost else "NOT met"
            lines.append(f"target: {DEFAULT} above {other} ({won} wins, {lost} losses): {verdict}")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def _tools(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[Tool]:
    tools = [Tool(label, search) for label, search in OURS.items()]
    for item in args.ours or ():
        label, _, text = item.partition("=")
        try:
            search = json.loads(text)
        except json.JSONDecodeError as exc:
            parser.error(f"--ours {item!r}: not JSON ({exc})")
        if not isinstance(search, dict) or label in OURS or label in PEERS:
            parser.error(f"--ours {item!r}: give a new LABEL=JSON object of pg.search keywords")
        tools.append(Tool(label, search))
    tools += [Tool(label) for label in PEERS]
    known = [t.label for t in tools]
    for label in args.only or ():
        if label not in known:
            parser.error(f"--only: unknown tool {label!r}; known: {', '.join(known)}")
    return [t for t in tools if not args.only or t.label in args.only]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="default: %(default)s")
    parser.add_argument("--evaluations", type=int, default=100, help="default: %(default)s")
    parser.add_argument("--ranks", type=int, default=4, help="default: %(default)s")
    parser.add_argument("--problems", nargs="+", choices=list(PROBLEMS), default=list(PROBLEMS))
    parser.add_argument("--quick", action="store_true", help=f"a smoke test: {_QUICK}")
    parser.add_argument("--ours", nargs="+", metavar="LABEL=JSON", help="more of our settings")
    parser.add_argument("--only", nargs="+", metavar="TOOL", help="run only these tools")
    parser.add_argument("--results", type=Path, default=RESULTS, help="default: %(default)s")
    parser.add_argument("--settings", help=argparse.SUPPRESS)
    parser.add_argument("--jobs", help=argparse.SUPPRESS)
    args = parse(parser, _run)
    if args is None:
        return
    if args.quick:
        vars(args).update(_QUICK)
    tools = _tools(parser, args)
    jobs = [
        Job(t.label, p, args.evaluations, s)
        for t in tools
        for p in args.problems
        for s in range(args.seeds)
    ]
    settings = {k: getattr(args, k) for k in ("seeds", "evaluations", "ranks", "problems")}
    runs = execute(tools, jobs, args.ranks, args.results)
    labels = [t.label for t in tools]
    summary = summarize(runs, labels, args.problems)
    problems = {
        name: {
            "dim": PROBLEMS[name].dim,
            "reference": PROBLEMS[name].reference,
            "front_hypervolume": PROBLEMS[name].front_hypervolume,
        }
        for name in args.problems
    }
    tool_settings = {t.label: t.search if t.ours else "optuna, sequential" for t in tools}
    content = {"settings": settings, "tools": tool_settings, "problems": problems}
    _save(args.results, {**content, "summary": summary, "runs": runs})
    print("\n" + report(summary, labels, settings))


if __name__ == "__main__":
    main()
