"""``propagate watch RUN_DIR``: a live report of a running search, from another terminal.

Every ``--interval`` seconds (5 by default) it reads the run directory and shows the
evaluations done of the budget, failures (with the first one's message; a pruned
evaluation's note is no failure), the rate, the time left, the best value with its params
(the confirmed winner's mean once winners are confirmed), and each island's best and
strategy, until the search ends or Ctrl-C. On a terminal the view is redrawn in place;
into a file or a pipe each refresh is appended. On a run that is not running it prints once.

It only reads, as ``report`` does (see :mod:`propagator.store`): the search is never
blocked or disturbed. A search is running while its last session has no end event and the
job holding its run directory's lock is alive (a running job holds it from before its start
event until after its end event; a job killed with -9 leaves a lock nobody holds).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from ..engine.evaluation import error_headline
from ..errors import ConfigError, PropagateError
from ..space import Constant
from ..store.lock import live_holder
from .format import format_duration, format_param, format_rate, format_value
from .islands import island_strategies, island_table
from .report import Run, Session, open_run
from .result import Result

_CLEAR = "\x1b[H\x1b[2J"  # cursor home, clear the screen: a terminal redraws in place
_MAX_ERROR = 100  # characters of the first failure's message shown


def add_command(sub: argparse._SubParsersAction) -> None:
    """Add ``watch`` to the ``propagate`` subcommands."""
    watch = sub.add_parser("watch", help="a live view of a running search (any terminal)")
    watch.add_argument("run_dir", type=Path, help="the run directory, or its search file")
    watch.add_argument(
        "--interval",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="seconds between refreshes (default 5)",
    )
    watch.add_argument("--once", action="store_true", help="print the view once and exit")
    watch.set_defaults(handler=_watch)


def _watch(args: argparse.Namespace) -> int:
    if not args.interval > 0:
        raise ConfigError(f"--interval must be a positive number of seconds, got {args.interval}")
    return follow(args.run_dir, args.interval, once=args.once)


def follow(
    run_dir: Path,
    interval: float = 5.0,
    *,
    once: bool = False,
    stream: TextIO | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Show the view of ``run_dir`` every ``interval`` seconds until the search is not
    running any more (or once, with ``once``); Ctrl-C ends it quietly. Returns 0.

    Raises:
        ConfigError: ``run_dir`` is missing or holds no run.
        PropagateError: the run cannot be read.
    """
    stream = stream or sys.stdout
    redraw = stream.isatty()
    try:
        run = open_run(Path(run_dir))
        while True:
            live = running(run)
            lines = render(run, time.time(), live)
            if live and not once:
                lines.append(f"(refreshed every {interval:g} s; Ctrl-C to stop watching)")
            stream.write((_CLEAR if redraw else "") + "\n".join(lines) + "\n")
            stream.flush()
            if once or not live:
                for problem in run.result.problems:
                    print(f"propagate: warning: {problem}", file=sys.stderr)
                return 0
            if not redraw:
                stream.write("\n")
            sleep(interval)
            run = _reread(Path(run_dir), run)
    except KeyboardInterrupt:
        stream.write("\n")
        return 0


def _reread(run_dir: Path, previous: Run) -> Run:
    """The run read again, or ``previous`` when a file was caught in the middle of an update
    (the next refresh reads it again)."""
    try:
        return open_run(run_dir)
    except PropagateError:
        return previous


def running(run: Run) -> bool:
    """Whether a job is searching in ``run`` now (see the module docstring)."""
    return (
        bool(run.sessions) and run.sessions[-1].ended is None and live_holder(run.path) is not None
    )


def render(run: Run, now: float, live: bool) -> list[str]:
    """The view of ``run`` at epoch second ``now``; ``live``: a job is searching in it."""
    result = run.result
    session = run.sessions[-1] if run.sessions else None
    lines = [f"run          {run.path}", f"status       {_status(run, now, live)}"]
    lines.append(f"evaluations  {_done(len(result), run.budget)}")
    lines.append(f"failed       {_failures(result)}")
    if live and session is not None:
        elapsed = now - session.began
        lines.append(f"rate         {format_rate(session.evaluations, elapsed)} this session")
        left = _time_left(run, session, now)
        if left is not None:
            lines.append(f"time left    {left}")
    else:
        wall = sum(s.wall_time for s in run.sessions)
        lines.append(f"wall time    {format_duration(wall)}")
        lines.append(f"throughput   {format_rate(len(result), wall)}")
    lines += _best(result)
    lines += ["", *island_table(result, island_strategies(run.config, result))]
    return lines


def _status(run: Run, now: float, live: bool) -> str:
    if live:
        s = run.sessions[-1]
        began = time.strftime("%H:%M:%S", time.localtime(s.began))
        return f"running (session {s.number}, since {began}, {format_duration(now - s.began)})"
    if run.sessions and run.sessions[-1].ended is None:
        return "not running, and no end was recorded (killed?); run the search file to resume"
    return run.status


def _done(n: int, budget: int | None) -> str:
    if not budget:
        return str(n)
    return f"{n} of {budget} ({100 * n / budget:.0f}%)"


def _failures(result: Result) -> str:
    failed = result.n_failed
    first = result.first_error
    if not failed or first is None:
        return str(failed)
    message = error_headline(first)
    if len(message) > _MAX_ERROR:
        message = message[: _MAX_ERROR - 3] + "..."
    return f"{failed} (first: {message})"


def _time_left(run: Run, session: Session, now: float) -> str | None:
    """The sooner of: the evaluations left at this session's rate, the time budget left."""
    estimates = []
    elapsed = now - session.began
    if run.budget and session.evaluations and elapsed > 0:
        rate = session.evaluations / elapsed
        left = max(0, run.budget - len(run.result))
        estimates.append((left / rate, "evaluation budget, at this rate"))
    limit = run.config["budget"].get("time")
    if limit is not None:
        used = sum(s.wall_time for s in run.sessions[:-1]) + elapsed
        estimates.append((max(0.0, limit - used), "time budget"))
    if not estimates:
        return None
    seconds, which = min(estimates)
    return f"~{format_duration(seconds)} ({which})"


def _best(result: Result) -> list[str]:
    if result.multi and result.ok.any():
        goals = ", ".join(result.objectives)
        return [f"front        {len(result.pareto_front)} non-dominated over {goals}"]
    if not result.ok.any():
        return ["best         - (no evaluation succeeded yet)"]
    best, winner = result.best, result.winner
    constants = {n for n, p in result.space.params.items() if isinstance(p, Constant)}
    params = ", ".join(
        f"{k}={format_param(v)}" for k, v in best.params.items() if k not in constants
    )
    value = format_value(best.value)
    if winner is not None:  # result.best: the confirmed winner
        n = len(winner.values)
        value = f"{format_value(winner.mean)} confirmed over {n} seed{'s' * (n > 1)}"
    return [
        f"best         {result.metric} {value} (id {best.id}, island {best.island})",
        f"params       {params}",
    ]
