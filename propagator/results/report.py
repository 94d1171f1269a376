"""Read-side commands: ``report``, ``export``, ``plot``, ``optuna`` (and ``dashboard``).

They only read a run directory, so they work on a finished run, an interrupted one, and one
that is still running (showing the evaluations stored so far).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..engine.evaluation import error_headline
from ..engine.records import Kind, Record
from ..errors import ConfigError, PropagateError
from ..space import Constant
from .format import INACTIVE, format_duration, format_param, format_rate, format_value, table
from .front import front_table
from .islands import island_strategies, island_table
from .pbt_report import is_pbt, pbt_section
from .result import Result

_STARTS = ("start", "resume")
_ENDS = ("stop", "interrupted", "failed")
_MAX_KINDS = 10  # distinct failure messages listed
_MAX_HEADLINE = 120  # characters of a failure line shown in the table
_MAX_WIDTH = 120  # wider best tables are transposed
_NUMBER = re.compile(r"\d+(\.\d+)?([eE][-+]?\d+)?")


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add the read-side commands to the ``propagate`` subcommands."""
    report = sub.add_parser("report", help="summary, best configurations, islands, failures")
    report.add_argument("run_dir", type=Path, help="the run directory, or its search file")
    report.add_argument("--top", type=int, default=5, metavar="N", help="best N (default 5)")
    report.add_argument(
        "--errors", action="store_true", help="print the full message of each kind of failure"
    )
    report.set_defaults(handler=_report)

    export = sub.add_parser("export", help="every evaluation as CSV or JSON lines")
    export.add_argument("run_dir", type=Path, help="the run directory, or its search file")
    export.add_argument(
        "-o", "--output", type=Path, required=True, help="file (.csv, .jsonl), or - for stdout"
    )
    export.add_argument(
        "--format", choices=("csv", "jsonl"), help="file format (default: by extension)"
    )
    export.set_defaults(handler=_export)

    plot = sub.add_parser("plot", help="PNG figures of the search")
    plot.add_argument("run_dir", type=Path, help="the run directory, or its search file")
    plot.add_argument("-o", "--output", type=Path, help="directory (default RUN_DIR/plots)")
    plot.set_defaults(handler=_plot)

    study = sub.add_parser("optuna", help="copy the run into an Optuna study")
    study.add_argument("run_dir", type=Path, help="the run directory, or its search file")
    study.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="STORAGE",
        help="sqlite:///FILE.db (or any database URL), FILE.db, or a journal FILE.log",
    )
    study.add_argument("--study", help="study name (default: the run directory's name)")
    study.add_argument("--overwrite", action="store_true", help="replace an existing study")
    study.set_defaults(handler=_optuna)

    from .dashboard import add_command as add_dashboard  # a server: a module of its own

    add_dashboard(sub)


# --- reading a run -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Session:
    """One ``propagate`` invocation of a run, from its start (or resume) event.

    Attributes:
        number: session number.
        began: epoch seconds of its start event.
        ended: ``"stop"``, ``"interrupted"``, ``"failed"``, or ``None`` (running or killed).
        detail: the message of a ``failed`` event.
        wall_time: seconds it searched (up to its last stored evaluation if it has not ended).
        evaluations: evaluations it stored.
    """

    number: int
    began: float
    ended: str | None
    detail: str
    wall_time: float
    evaluations: int


@dataclass(frozen=True)
class Run:
    """A loaded run directory.

    Attributes:
        path: the run directory.
        result: every stored evaluation.
        meta: attributes of ``run.h5``.
        origin: epoch seconds the record times count from (the first session's start).
        sessions: the sessions, in order.
    """

    path: Path
    result: Result
    meta: dict[str, Any]
    origin: float
    sessions: list[Session]

    @property
    def status(self) -> str:
        """How the last session ended, in words."""
        if not self.sessions:
            return "unknown (no start event)"
        last = self.sessions[-1]
        return {
            "stop": "finished",
            "interrupted": "interrupted (run the search file again to resume)",
            # the event holds the message's first line, which may announce what followed
            "failed": f"failed: {last.detail}"
            + (" see failures below" * last.detail.endswith(":")),
            None: "running, or killed (no stop event after the last start)",
        }[last.ended]

    @property
    def config(self) -> dict[str, Any]:
        """The run's resolved configuration (the search file's settings)."""
        return json.loads(self.meta["config"])

    @property
    def budget(self) -> int | None:
        """The evaluation budget of the search file, if it has one."""
        return self.config["budget"].get("evaluations")


def open_run(run_dir: Path) -> Run:
    """Load a run directory without changing it.

    Raises:
        ConfigError: ``run_dir`` is missing or holds no run.
        PropagateError: the run cannot be read.
    """
    from ..store import META, load
    from ..store.hdf5 import read_meta

    if not run_dir.is_dir():
        raise ConfigError(f"no run directory {str(run_dir)!r}")
    if not (run_dir / META).is_file():
        raise ConfigError(f"{str(run_dir)!r} is not a propagate run directory (it has no {META})")
    try:
        result = load(run_dir)
        meta, events = read_meta(run_dir / META)
    except (OSError, KeyError, ValueError) as exc:
        raise PropagateError(f"cannot read the run in {str(run_dir)!r}: {exc}") from None
    starts = [e for e in events if e["kind"] in _STARTS]
    origin = starts[0]["time"] if starts else float(meta.get("created", 0.0))  # as load's
    return Run(run_dir, result, meta, origin, sessions(events, result, origin))


def sessions(events: list[dict[str, Any]], result: Result, origin: float) -> list[Session]:
    """The sessions the events describe, each with the evaluations it stored."""
    starts = [i for i, e in enumerate(events) if e["kind"] in _STARTS]
    began_at = result.rows["start"] + origin
    ended_at = result.rows["end"] + origin
    out = []
    for k, i in enumerate(starts):
        nxt = starts[k + 1] if k + 1 < len(starts) else len(events)
        began = events[i]["time"]
        until = events[nxt]["time"] if nxt < len(events) else math.inf
        mine = (began_at >= began) & (began_at < until)
        end = next((e for e in events[i + 1 : nxt] if e["kind"] in _ENDS), None)
        out.append(
            Session(
                number=events[i]["session"],
                began=began,
                ended=end["kind"] if end else None,
                detail=end["detail"] if end and end["kind"] == "failed" else "",
                wall_time=_wall_time(began, end, ended_at[mine]),
                evaluations=int(np.count_nonzero(mine)),
            )
        )
    return out


def _wall_time(began: float, end: dict[str, Any] | None, ends: np.ndarray) -> float:
    if end is None:  # still running or killed: up to the last stored evaluation
        return float(ends.max() - began) if len(ends) else 0.0
    if end["kind"] != "failed":  # the detail is the session's RunInfo
        return float(json.loads(end["detail"])["wall_time"])
    return end["time"] - began


# --- report ------------------------------------------------------------------------------------
def _report(args: argparse.Namespace) -> int:
    if args.top < 1:
        raise ConfigError(f"--top must be at least 1, got {args.top}")
    run = open_run(args.run_dir)
    sections = [
        summary(run),
        pbt_section(run.result, run.config.get("pbt")),
        best_table(run.result, args.top),
        confirmed_table(run.result),
        island_table(run.result, island_strategies(run.config, run.result)),
        failure_table(run.result, args.errors),
    ]
    sections = [lines for lines in sections if lines]
    print("\n\n".join("\n".join(lines) for lines in sections))
    for problem in run.result.problems:
        print(f"propagate: warning: {problem}", file=sys.stderr)
    return 0


def summary(run: Run) -> list[str]:
    """Status, evaluations, sessions, wall time and throughput."""
    result = run.result
    counts = Counter(r.status for r in result.records)
    of = f" of {run.budget}" if run.budget else ""
    again = sum(r.confirmation for r in result.records)
    if again and is_pbt(result):  # PBT's replays follow the budget
        of += f" + {again} confirming"
    statuses = ("ok", "failed", "pruned", "paused")
    outcome = ", ".join(f"{counts[s]} {s}" for s in statuses if counts[s])
    wall = sum(s.wall_time for s in run.sessions)
    lines = [
        f"run          {run.path}",
        f"status       {run.status}",
        f"evaluations  {len(result)}{of}" + (f" ({outcome})" if outcome else ""),
        f"metric{'s' if result.multi else ' '}      "
        + ", ".join(
            f"{m} ({d})" for m, d in zip(result.objectives, result.directions, strict=True)
        ),
        f"sessions     {len(run.sessions)}",
        f"wall time    {format_duration(wall)}",
        f"throughput   {format_rate(len(result), wall)}",
    ]
    winner = best_line(result)
    if winner is not None:
        lines.append(f"best         {winner}")
    # a PBT segment pauses at its end and the next one reports from there: neither count
    # fits, and its own section says what it did
    steps = None if is_pbt(result) else step_counts(result)
    if steps is not None:
        spent, saved = steps
        line = f"steps        {spent} reported"
        # an estimate only where a pruner stopped evaluations: "about 0 saved" says nothing
        if run.config.get("early_stopping") is not None and saved > 0:
            line += f", about {saved} saved by stopping early"
        lines.append(line)
    promoted = None if is_pbt(result) else promotion_counts(result)
    if promoted is not None:
        paused, resumed, top = promoted
        lines.append(
            f"promotion    {paused} paused, {resumed} of them resumed later, {top} of those "
            "in the top 10"
        )
    if len(run.sessions) > 1:
        rows = [
            [
                str(s.number),
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(s.began)),
                str(s.evaluations),
                format_duration(s.wall_time),
                {"stop": "finished", None: "-"}.get(s.ended, s.ended),
            ]
            for s in run.sessions
        ]
        header = ["session", "began", "evaluations", "wall time", "ended"]
        lines += table(header, rows, indent="  ")
    return lines


def best_line(result: Result) -> str | None:
    """:attr:`Result.best` in words: the confirmed winner's mean when winners were confirmed
    (``None``: several objectives, or nothing succeeded)."""
    if result.multi or not result.ok.any():
        return None
    best, winner = result.best, result.winner
    where = f"id {best.id}, island {best.island}"
    if winner is None:
        return f"{result.metric} {format_value(best.value)} ({where})"
    return (
        f"{result.metric} {format_value(winner.mean)} ± {format_value(winner.std)} confirmed "
        f"over {len(winner.values)} seeds ({where}; its search value {format_value(best.value)})"
    )


def step_counts(result: Result) -> tuple[int, int] | None:
    """Steps the evaluations reported, and an estimate of those stopping saved: each pruned
    evaluation would have gone on to the median length of the completed ones. ``None`` when
    nothing reported steps."""
    records = [r for r in result.records if r.intermediate]
    if not records:
        return None
    spent = sum(len(r.intermediate) for r in records)
    full = [len(r.intermediate) for r in records if r.ok]
    typical = float(np.median(full)) if full else 0.0
    stopped = (r for r in records if r.pruned or r.paused)
    saved = sum(max(0.0, typical - len(r.intermediate)) for r in stopped)
    return spent, round(saved)


def promotion_counts(result: Result) -> tuple[int, int, int] | None:
    """Trainings paused at a rung (those still paused and those resumed since), how many of
    them were resumed, and how many of those rank in the top 10 of the successful
    evaluations. ``None`` when nothing was paused."""
    records = result.records
    resumed = [r for r in records if r.promoted]
    paused = len(resumed) + sum(r.paused for r in records)
    if not paused:
        return None
    top = {r.id for r in result.top(10)}
    return paused, len(resumed), sum(r.id in top for r in resumed)


def confirmed_table(result: Result) -> list[str]:
    """The winners re-evaluated on fresh seeds, with their search values (empty without)."""
    if not result.confirmed:
        return []
    rows = [
        [
            str(i + 1),
            format_value(c.mean),
            format_value(c.std),
            str(len(c.values)),
            format_value(c.search.value) if c.search is not None else "-",
            ", ".join(f"{k}={format_param(v)}" for k, v in c.params.items()),
        ]
        for i, c in enumerate(result.confirmed)
    ]
    header = ["rank", f"mean {result.metric}", "std", "seeds", "in the search", "params"]
    title = "winners confirmed on fresh seeds (a search value is one draw; the mean is not)"
    return [title, *table(header, rows)]


def best_table(result: Result, n: int) -> list[str]:
    """The ``n`` best configurations: rank, value, id, island and every parameter.

    One configuration per row, or per column when there are too many parameters for rows.
    """
    if result.multi:
        return front_table(result, n)
    top = result.top(n)
    if not top:
        return ["best: no evaluation succeeded" if len(result) else "best: no evaluations yet"]
    params = result.space.params
    shown = [name for name, p in params.items() if not isinstance(p, Constant)]
    header = ["#", result.metric, "id", "island", *shown]
    rows = [
        [str(rank), format_value(r.value), str(r.id), str(r.island)]
        + [format_param(r.params.get(name, INACTIVE)) for name in shown]
        for rank, r in enumerate(top, 1)
    ]
    n_ok = int(np.count_nonzero(result.ok & (result.rows["kind"] != Kind.CONFIRMATION)))
    lines = [f"best {len(top)} of {n_ok} successful evaluations ({result.direction})"]
    if result.winner is not None:  # then result.best is the confirmed winner, not row 1
        lines[0] += " by their search value; the winner is the best confirmed (below)"
    aligned = table(header, rows)
    if max(map(len, aligned)) > _MAX_WIDTH:
        columns = list(zip(*rows, strict=True))
        named = zip(header[1:], columns[1:], strict=True)
        aligned = table(["#", *columns[0]], [[name, *cells] for name, cells in named])
    lines += aligned
    constants = {name: p.value for name, p in params.items() if isinstance(p, Constant)}
    if constants:  # the same in every row: said once
        lines.append("  constant: " + ", ".join(f"{k}={v!r}" for k, v in constants.items()))
    return lines


def failure_table(result: Result, full: bool) -> list[str]:
    """Failures grouped by their message's headline, most frequent first."""
    failed = [r for r in result.records if r.status == "failed"]
    if not failed:
        return ["failures: none"]
    kinds: dict[str, list[Record]] = {}
    for r in failed:
        # numbers masked: "diverged at lr=0.3" and "diverged at lr=0.7" are one kind
        kinds.setdefault(_NUMBER.sub("#", error_headline(r.error)), []).append(r)
    ranked = sorted(kinds.values(), key=len, reverse=True)  # stable: first seen first
    shown = ranked[:_MAX_KINDS]
    rows = [[str(len(rs)), str(rs[0].id), _shorten(error_headline(rs[0].error))] for rs in shown]
    plural = "s" * (len(kinds) > 1)
    lines = [f"failures: {len(failed)} ({len(kinds)} kind{plural})"]
    lines += table(["count", "example id", "error"], rows)
    rest = ranked[_MAX_KINDS:]
    if rest:
        n_rest = sum(len(rs) for rs in rest)
        lines.append(f"  ... {len(rest)} more kinds ({n_rest} failures): propagate export")
    if not full:
        lines.append("  (--errors prints the full message of each example)")
        return lines
    for rs in shown:
        kind = f"{len(rs)} failure{'s' * (len(rs) > 1)} of this kind"
        lines += ["", f"--- id {rs[0].id} ({kind}) ---", rs[0].error]
    return lines


def _shorten(line: str) -> str:
    return line if len(line) <= _MAX_HEADLINE else line[: _MAX_HEADLINE - 3] + "..."


# --- export, plot, optuna ----------------------------------------------------------------------
def _export(args: argparse.Namespace) -> int:
    from .export import STDOUT, export, format_for

    fmt = format_for(args.output, args.format)  # before loading: a typo fails fast
    run = open_run(args.run_dir)
    n = export(run.result, args.output, fmt)
    if args.output != STDOUT:  # on stdout only the rows, for a pipe
        print(f"wrote {n} evaluations to {args.output}")
    return 0


def _plot(args: argparse.Namespace) -> int:
    from .plots import write_plots

    run = open_run(args.run_dir)
    out = args.output if args.output is not None else run.path / "plots"
    resumed = [s.began - run.origin for s in run.sessions[1:]]
    for path in write_plots(run.result, out, resumed):
        print(path)
    return 0


def _optuna(args: argparse.Namespace) -> int:
    from .export import to_optuna

    run = open_run(args.run_dir)
    name = args.study or run.path.resolve().name
    to_optuna(run.result, args.output, name, args.overwrite, run.origin)
    n_failed = run.result.n_failed
    print(  # the run's count: reading every trial back would take longer than the copy
        f"copied {len(run.result)} evaluations ({n_failed} failed) into the Optuna study "
        f"{name!r} in {args.output}\nsee it with: optuna-dashboard {args.output}"
    )
    return 0
