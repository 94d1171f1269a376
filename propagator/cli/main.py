"""The ``propagate`` command.

    propagate SEARCH.yaml [--fresh] [--progress auto|bar|lines|none]
                                          run (again: resume) a search; also under mpirun/srun
    propagate validate SEARCH.yaml [-n N] check a file; show the configuration and the layout
    propagate report RUN_DIR              best configurations, islands, failures, throughput
    propagate export RUN_DIR -o FILE      every evaluation as CSV or JSON lines (.jsonl)
    propagate plot RUN_DIR [-o DIR]       PNG figures of the search
    propagate optuna RUN_DIR -o URL       copy the run into an Optuna study (optuna-dashboard)
    propagate watch RUN_DIR [--interval S] a live view of a running search, from any terminal
    propagate dashboard RUN_DIR [--port P] a running search, live in the browser (127.0.0.1)

A command that reads a RUN_DIR takes the search file in its place too, and reads the run in the
file's ``run_dir`` (as ``propagate SEARCH.yaml`` resolves it).

Exit status: 0 success (also an interrupted run, which resumes when run again), 1 the search
failed (its objective is broken), 2 a mistake in the command line or the search file.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError, PropagateError
from ..results.progress import PROGRESS_MODES

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_COMMANDS = (
    "run",
    "validate",
    "report",
    "export",
    "plot",
    "optuna",
    "watch",
    "replay",
    "dashboard",
)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    if argv is None:  # the propagate command itself, not a call from Python
        _whole_lines()
    try:
        status = _main(sys.argv[1:] if argv is None else argv)
        sys.stdout.flush()  # now, not at exit, so that a reader gone away is handled below
        return status
    except BrokenPipeError:  # e.g. `propagate report RUN | head`: the reader has enough
        _discard_output()
        return EXIT_OK


def _main(argv: list[str]) -> int:
    mistyped = _mistyped_command(argv)
    if mistyped is not None:
        print(f"propagate: error: {mistyped}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    if argv and argv[0] not in _COMMANDS and not argv[0].startswith("-"):
        argv = ["run", *argv]
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        if getattr(args, "run_dir", None) is not None:  # a read command
            from ..config import run_dir_of

            args.run_dir = run_dir_of(args.run_dir)
        return args.handler(args)
    except BrokenPipeError:
        raise
    except (ConfigError, PropagateError) as exc:
        _error(str(exc), args)
        return EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_FAILED
    except Exception:
        _abort_others()
        raise


def _whole_lines() -> None:
    """Write stdout and stderr a line at a time. Unbuffered (stderr, or any stream under
    PYTHONUNBUFFERED), ``print`` makes two writes, the text and then the newline, and an MPI
    launcher relaying a rank's stdout and stderr may put a line of the other between them."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(line_buffering=True, write_through=False)


def _mistyped_command(argv: list[str]) -> str | None:
    """The message for a first word that is no command and no file but close to a command
    (``propagate exprot runs/x``), else ``None`` (the word is taken for a search file)."""
    if not argv or argv[0] in _COMMANDS or argv[0].startswith("-"):
        return None
    word = argv[0]
    if Path(word).suffix or Path(word).exists():
        return None
    close = difflib.get_close_matches(word, _COMMANDS, n=1)
    if not close:
        return None
    return (
        f"unknown command {word!r}; did you mean {close[0]!r}? "
        f"(commands: {', '.join(_COMMANDS)}; or give a search file to run)"
    )


def _discard_output() -> None:
    """Send what is still buffered for stdout to /dev/null, so that exiting does not fail on
    the closed pipe again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a file (e.g. captured in a test)
        pass
    finally:
        os.close(devnull)


def _abort_others() -> None:
    """An unexpected error on one rank of an MPI job: take the whole job down, so that no
    rank waits forever for this one."""
    mpi = sys.modules.get("mpi4py.MPI")
    running = mpi is not None and mpi.Is_initialized() and not mpi.Is_finalized()
    if running and mpi.COMM_WORLD.size > 1:
        traceback.print_exc()
        sys.stderr.flush()
        mpi.COMM_WORLD.Abort(1)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="propagate",
        description="Asynchronous island-model evolutionary search over MPI.",
        epilog="Run a search with: mpirun -n N propagate SEARCH.yaml",
    )
    parser.add_argument("--version", action="version", version=f"propagate {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser("run", help="run or resume a search (the default command)")
    run.add_argument("file", type=Path, help="the search file (YAML)")
    run.add_argument("--fresh", action="store_true", help="start over; the old run is moved aside")
    run.add_argument(
        "--progress",
        choices=PROGRESS_MODES,
        default="auto",
        help="rank 0's progress display: a live bar, a line every 10 s, or none; auto (the "
        "default): a bar when a terminal shows the output, also through mpirun/mpiexec",
    )
    run.set_defaults(handler=_run)
    validate = sub.add_parser("validate", help="check a search file and show what it would do")
    validate.add_argument("file", type=Path)
    validate.add_argument(
        "-n",
        "--ranks",
        type=int,
        help="ranks to lay out, as in mpirun -n (default: the fewest the file allows)",
    )
    validate.set_defaults(handler=_validate)
    from ..results import replay, report, watch  # the read-side commands live there

    report.add_commands(sub)
    watch.add_command(sub)
    replay.add_command(sub)
    return parser


def _error(message: str, args: argparse.Namespace) -> None:
    if getattr(args, "rank", 0) == 0:
        print(f"propagate: error: {message}", file=sys.stderr, flush=True)


def _version() -> str:
    from .. import __version__

    return __version__


# --- validate ----------------------------------------------------------------------------------
def _validate(args: argparse.Namespace) -> int:
    from .. import config
    from ..engine.layout import make_layout

    if args.ranks is not None and args.ranks < 1:
        raise ConfigError(f"--ranks must be at least 1, got {args.ranks}")
    search = config.load(args.file)
    search.objective()
    settings = search.settings
    ranks = _fewest_ranks(settings) if args.ranks is None else args.ranks
    layout = make_layout(ranks, settings.ranks_per_worker, settings.islands)
    settings.migration.matrix(layout.n_islands)
    warm = _warm_start(search)  # read now: a source that cannot seed this search is refused
    effective = _effective(search)
    automatic = _fill_populations(effective, search, layout)
    print(f"# {args.file}: valid; in effect (itself a search file; null: the default):\n")
    print(yaml.safe_dump(effective, sort_keys=False), end="")
    print(f"# run_dir: {search.run_dir} (relative paths start at the search file's directory)")
    if warm is not None:
        print(f"# {warm}")
    if automatic:
        print(
            "# population: automatic, shown for the layout below (null in the file and in "
            "the stored run: a resume on more ranks may grow it)"
        )
    fewest = " (the fewest this file allows; -n N shows N ranks)" if args.ranks is None else ""
    print(f"\n# layout for {ranks} rank{'s' * (ranks > 1)}{fewest}:")
    print("\n".join(f"#   {line}" for line in layout.describe().splitlines()))
    return EXIT_OK


def _effective(search: Any) -> dict[str, Any]:
    """The configuration in effect, as a search file: the stored one, with ``failure_grace``
    (which a resume may change, so the stored configuration leaves it out)."""
    effective = search.resolved()
    at = list(effective).index("max_initial_failures") + 1
    items = list(effective.items())
    items.insert(at, ("failure_grace", search.settings.failure_grace))
    return dict(items)


def _warm_start(search: Any) -> str | None:
    """What the warm start brings, in words (``None`` without one).

    Raises:
        ConfigError: the source cannot be read or cannot seed this search.
    """
    warm = search.settings.warm_start
    if warm is None:
        return None
    from ..store.warm import load_warm

    dtype = search.settings.wire_dtype(search.space)
    try:
        return load_warm(warm, search.space, search.settings.metric, dtype).describe()
    except ConfigError as exc:
        raise ConfigError(f"{search.path}: {exc}") from None


def _fewest_ranks(settings: Any) -> int:
    """Ranks for one worker per island (or exactly the workers an island list names)."""
    islands = settings.islands
    workers = sum(islands) if isinstance(islands, tuple) else islands
    return workers * settings.ranks_per_worker


def _fill_populations(effective: dict[str, Any], search: Any, layout: Any) -> bool:
    """Replace each automatic (``null``) strategy population of ``effective`` by the one the
    strategy uses on ``layout``; whether there was one."""
    automatic = False
    for island, (shown, spec) in enumerate(
        zip(effective["strategy"], search.settings.strategy, strict=True)
    ):
        if "population" in shown and shown["population"] is None:
            breeder = spec.create(search.space, layout.island_sizes[island])
            shown["population"] = breeder.pool_size
            automatic = True
    return automatic


# --- run ---------------------------------------------------------------------------------------
def _run(args: argparse.Namespace) -> int:
    args.rank = _world_rank()
    search = _load_once(args.file)
    objective = search.objective()
    from mpi4py import MPI

    from ..engine.layout import make_layout
    from ..store.session import StoredSearch, run_stored

    comm = MPI.COMM_WORLD
    settings = search.settings
    layout = make_layout(comm.size, settings.ranks_per_worker, settings.islands)
    settings.migration.matrix(layout.n_islands)
    _hint_old_location(search, comm.rank)
    stored = StoredSearch(
        run_dir=search.run_dir,
        config=search.resolved(),
        text=search.text,
        again=f"propagate {search.path}",
        fresh=args.fresh,
        monitor=_monitor_factory(search, args.progress) if comm.rank == 0 else None,
    )
    outcome = run_stored(objective, search.space, settings, layout, comm, stored)
    if comm.rank == 0:
        _finish(search, outcome)
    return EXIT_OK


def _world_rank() -> int:
    for var in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID"):
        if var in os.environ:
            return int(os.environ[var])
    return 0


def _launched_ranks() -> int:
    """Ranks of the job as its launcher (MPICH/Hydra, Open MPI, SLURM) reports them before MPI
    starts; 1 where none does."""
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "SLURM_NTASKS"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 1


def _load_once(path: Path) -> Any:
    """The search file, read and resolved on every rank but checked against the schema once.

    Alone, the file is checked before any MPI work. Under a launcher of several ranks, MPI
    starts first, rank 0 checks the file and every rank hears its verdict (its
    :class:`ConfigError`, raised on every rank): the schema check (``jsonschema``, about 75 ms
    of CPU) would otherwise run on every rank, about 5 s of a 128-rank start on 2 cores.
    """
    from .. import config

    if _launched_ranks() <= 1:
        return config.load(path)
    from mpi4py import MPI

    from ..engine.comm.collect import agree

    checked: list[Any] = []

    def check() -> bytes:  # rank 0
        checked.append(config.load(path))
        return b""

    agree(MPI.COMM_WORLD, check)
    return checked[0] if checked else config.load(path, check=False)


def _hint_old_location(search: Any, rank: int) -> None:
    """Runs made before relative paths followed the search file lie under the working
    directory: say where, rather than silently start a new run next to the file."""
    old = Path("runs") / search.path.stem
    if rank or search.run_dir.exists() or not (old / "run.h5").exists():
        return
    if old.resolve() != search.run_dir.resolve():
        print(
            f"propagate: note: {old} holds a run of this name; relative paths in a search file "
            f"now follow the file, so this search stores its run in {search.run_dir} (set "
            f"run_dir in the file to continue the old one)",
            file=sys.stderr,
            flush=True,
        )


def _monitor_factory(search: Any, mode: str) -> Any:
    from ..results.progress import ProgressMonitor

    def make(plan: Any) -> ProgressMonitor:
        return ProgressMonitor(
            total=search.settings.budget.evaluations,
            done_before=plan.done,
            time_left=plan.budget.time,
            metric=search.settings.objectives[0],
            sign=search.settings.sign,
            mode=mode,
        )

    return make


def _finish(search: Any, outcome: Any) -> None:
    """Rank 0: print how the session ended."""
    if outcome.spent is not None:
        print(f"propagate: {outcome.spent}", file=sys.stderr, flush=True)
        return
    run, session = outcome.run, outcome.session
    print(
        f"propagate: {len(session)} evaluations in {session.info.wall_time:.1f} s this session, "
        f"{len(run)} in the run ({run.n_failed} failed); store: {search.run_dir}",
        file=sys.stderr,
        flush=True,
    )
    if run.n_failed:
        from ..engine.evaluation import error_headline

        print(
            f"propagate: first failure: {error_headline(run.first_error)} (propagate report "
            f"{search.run_dir} --errors shows every kind)",
            file=sys.stderr,
            flush=True,
        )
    if run.multi and run.ok.any():
        print(
            f"  Pareto front: {len(run.pareto_front)} configurations (propagate report and "
            f"plot {search.run_dir} show them); its ends and the most spread:",
            flush=True,
        )
    winner = None if run.multi else run.winner  # result.best is then the confirmed winner
    for r in [] if winner is not None else run.top(3):
        values = "  ".join(f"{m} {v:.6g}" for m, v in zip(run.objectives, r.values, strict=True))
        print(f"  {values}  id {r.id}  {json.dumps(r.params)}", flush=True)
    for c in run.confirmed[:3]:
        search, at = ("-", "-") if c.search is None else (f"{c.search.value:.6g}", c.search.id)
        print(
            f"  {'best: ' * (c is winner)}confirmed {run.metric} {c.mean:.6g} ± {c.std:.2g} "
            f"over {len(c.values)} seeds (in the search {search})  id {at}  "
            f"{json.dumps(c.params)}",
            flush=True,
        )
    if session.info.duplicates_avoided:
        print(
            f"propagate: {session.info.duplicates_avoided} proposals repeated a configuration "
            "already evaluated and were bred again",
            file=sys.stderr,
            flush=True,
        )
    if session.info.exhausted:
        print(
            "propagate: every configuration of the search space has been evaluated; the "
            "search ended before its budget",
            file=sys.stderr,
            flush=True,
        )
    if session.info.interrupted:
        why = f" by {outcome.signal}" if outcome.signal else ""
        print(
            f"propagate: interrupted{why}; finished evaluations are stored. "
            f"Run `propagate {search.path}` again to resume.",
            file=sys.stderr,
            flush=True,
        )
