"""The ``propagate`` command.

    propagate SEARCH.yaml [--fresh]      run (again: resume) a search; also under mpirun/srun
    propagate validate SEARCH.yaml [-n N] check a file; show the configuration and the layout
    propagate report RUN_DIR              best configurations, islands, failures, throughput
    propagate export RUN_DIR -o FILE      every evaluation as CSV or JSON lines (.jsonl)
    propagate plot RUN_DIR [-o DIR]       PNG figures of the search
    propagate optuna RUN_DIR -o URL       copy the run into an Optuna study (optuna-dashboard)

Exit status: 0 success (also an interrupted run, which resumes when run again), 1 the search
failed (its objective is broken), 2 a mistake in the command line or the search file.
"""

from __future__ import annotations

import argparse
import json
import logging
import secrets
import shutil
import sys
import time
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError, ObjectiveError, PropagateError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_COMMANDS = ("run", "validate", "report", "export", "plot", "optuna")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] not in _COMMANDS and not argv[0].startswith("-"):
        argv = ["run", *argv]
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.handler(args)
    except (ConfigError, PropagateError) as exc:
        _error(str(exc), args)
        return EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_FAILED
    except Exception:
        _abort_others()
        raise


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
    run.set_defaults(handler=_run)
    validate = sub.add_parser("validate", help="check a search file and show what it would do")
    validate.add_argument("file", type=Path)
    validate.add_argument("-n", "--ranks", type=int, default=1, help="ranks to lay out (default 1)")
    validate.set_defaults(handler=_validate)
    from ..results import report  # the read-side commands live there

    report.add_commands(sub)
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

    if args.ranks < 1:
        raise ConfigError(f"--ranks must be at least 1, got {args.ranks}")
    search = config.load(args.file)
    search.objective()
    settings = search.settings
    layout = make_layout(args.ranks, settings.ranks_per_worker, settings.islands)
    settings.migration.matrix(layout.n_islands)
    print(f"# {args.file}: valid\n")
    print(yaml.safe_dump(search.resolved(), sort_keys=False), end="")
    print(f"\n# layout for {args.ranks} rank{'s' * (args.ranks > 1)}:")
    print("\n".join(f"#   {line}" for line in layout.describe().splitlines()))
    return EXIT_OK


# --- run ---------------------------------------------------------------------------------------
def _run(args: argparse.Namespace) -> int:
    from .. import config

    args.rank = _world_rank()
    search = config.load(args.file)
    objective = search.objective()
    from mpi4py import MPI

    from ..api import Session, run
    from ..engine.comm.collect import broadcast_bytes
    from ..engine.layout import make_layout
    from ..engine.records import wire_dtype
    from ..engine.signals import StopOnSignal
    from ..store.resume import decode_plan, encode_plan

    comm = MPI.COMM_WORLD
    settings = search.settings
    layout = make_layout(comm.size, settings.ranks_per_worker, settings.islands)
    settings.migration.matrix(layout.n_islands)
    failure, data = None, None
    if comm.rank == 0:
        try:
            data = encode_plan(_prepare(search, layout, args.fresh))
        except ConfigError as exc:
            failure = ("config", str(exc))
        except Exception:  # every rank must hear of it, or they wait for rank 0 forever
            failure = ("internal", f"preparing {search.run_dir} failed:\n{traceback.format_exc()}")
    failure = comm.bcast(failure)
    if failure is not None:
        raise (ConfigError if failure[0] == "config" else PropagateError)(failure[1])
    plan = decode_plan(broadcast_bytes(comm, data), wire_dtype(search.space.dim))
    seed = json.loads(
        broadcast_bytes(comm, json.dumps(_stored_seed(search)).encode() if comm.rank == 0 else None)
    )
    if plan.budget is None:
        _say(
            comm,
            f"the budget of {search.run_dir} is already spent ({plan.done} evaluations); "
            "raise budget in the search file to continue",
        )
        return EXIT_OK
    _log_to(search.run_dir / "logs" / f"rank-{comm.rank:05d}.log")
    stop = StopOnSignal()
    monitor = _monitor_factory(search, plan) if comm.rank == 0 else None
    session = Session(
        run_dir=search.run_dir,
        number=plan.session,
        next_id=plan.next_id,
        pools=plan.pools,
        rng_states=plan.rng_states,
        should_stop=stop,
        monitor=monitor,
    )
    try:
        result = run(
            objective,
            search.space,
            replace(settings, budget=plan.budget, seed=seed),
            layout,
            comm,
            session,
        )
    except ObjectiveError as exc:
        if comm.rank == 0:
            _event(search.run_dir, plan.session, "failed", str(exc).splitlines()[0])
        _error(str(exc), args)
        return EXIT_FAILED
    finally:
        stop.restore()
    if comm.rank == 0:
        _finish(search, plan.session, result, stop.received)
    return EXIT_OK


def _world_rank() -> int:
    import os

    for var in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID"):
        if var in os.environ:
            return int(os.environ[var])
    return 0


def _prepare(search: Any, layout: Any, fresh: bool) -> Any:
    """Rank 0: create or reopen the run directory; the plan of this session."""
    from ..engine.records import wire_dtype
    from ..store import META, read_run
    from ..store.hdf5 import add_event, read_meta, update_meta, versions, write_meta
    from ..store.resume import Plan, config_change, plan

    run_dir = search.run_dir
    meta = run_dir / META
    if fresh and run_dir.exists():
        aside = run_dir.with_name(f"{run_dir.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
        shutil.move(str(run_dir), aside)
        print(f"propagate: moved the old run to {aside}", file=sys.stderr)
    layout_json = json.dumps(
        {
            "world_size": layout.world_size,
            "n_workers": layout.n_workers,
            "n_islands": layout.n_islands,
        }
    )
    if not meta.exists():
        for torn in run_dir.glob(f".{META}.tmp-*"):  # a kill while the run was being created
            torn.unlink()
        if run_dir.exists() and any(run_dir.iterdir()):
            raise ConfigError(
                f"run_dir {str(run_dir)!r} exists but holds no propagate run; "
                "choose another run_dir or empty it"
            )
        run_dir.mkdir(parents=True, exist_ok=True)
        settings = search.settings
        seed = settings.seed if settings.seed is not None else secrets.randbits(63)
        start = {"time": time.time(), "session": 0, "kind": "start", "detail": layout_json}
        write_meta(
            meta,
            {
                "config_yaml": search.text,
                "config": json.dumps(search.resolved()),
                "space": json.dumps(search.space.to_dict()),
                "seed": seed,
                "metric": settings.metric or "",
                "direction": settings.direction,
                "n_genes": search.space.dim,
                "versions": versions(),
                "created": start["time"],
            },
            [start],
        )
        return Plan(0, 0, 0, settings.budget)
    attrs, _ = read_meta(meta)
    change = config_change(json.loads(attrs["config"]), search.resolved())
    if change is not None:
        raise ConfigError(
            f"{search.path} differs from the run stored in {run_dir}; only a larger budget may "
            f"change when resuming:\n{change}\nRun with --fresh to start over (the old run is "
            "kept aside)."
        )
    stored = read_run(run_dir, wire_dtype(search.space.dim), repair=True)
    for problem in stored.problems:
        print(f"propagate: warning: {problem}", file=sys.stderr)
    p = plan(stored, search.settings, layout, search.space)
    update_meta(meta, {"config": json.dumps(search.resolved()), "config_yaml": search.text})
    if p.budget is not None:
        add_event(meta, p.session, "resume", layout_json)
        print(
            f"propagate: resuming {run_dir}: {p.done} evaluations done, ids from {p.next_id}",
            file=sys.stderr,
        )
    return p


def _stored_seed(search: Any) -> int:
    from ..store import META
    from ..store.hdf5 import read_meta

    return int(read_meta(search.run_dir / META)[0]["seed"])


def _monitor_factory(search: Any, plan: Any) -> Any:
    from ..results.progress import ProgressMonitor

    total = search.settings.budget.evaluations

    def make(_session_budget: int | None) -> ProgressMonitor:
        return ProgressMonitor(
            total=total,
            done_before=plan.done,
            time_left=plan.budget.time,
            metric=search.settings.metric or "value",
            sign=search.settings.sign,
        )

    return make


def _log_to(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("propagate")
    for old in [h for h in logger.handlers if isinstance(h, logging.FileHandler)]:
        logger.removeHandler(old)  # an earlier run in this process
        old.close()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def _event(run_dir: Path, session: int, kind: str, detail: str = "") -> None:
    from ..store import META
    from ..store.hdf5 import add_event

    add_event(run_dir / META, session, kind, detail)


def _say(comm: Any, message: str) -> None:
    if comm.rank == 0:
        print(f"propagate: {message}", file=sys.stderr, flush=True)


def _finish(search: Any, session: int, result: Any, signal_name: str | None) -> None:
    """Rank 0: record how the session ended and print the outcome."""
    from ..store import load

    info = {k: v for k, v in result.info.__dict__.items()}
    interrupted = result.info.interrupted
    _event(search.run_dir, session, "interrupted" if interrupted else "stop", json.dumps(info))
    everything = load(search.run_dir)
    metric = everything.metric
    print(
        f"propagate: {len(result)} evaluations in {result.info.wall_time:.1f} s this session, "
        f"{len(everything)} in the run ({everything.n_failed} failed); store: {search.run_dir}",
        file=sys.stderr,
    )
    if everything.ok.any():
        for r in everything.top(3):
            print(f"  {metric} {r.value:.6g}  id {r.id}  {json.dumps(r.params)}")
    if interrupted:
        why = f" by {signal_name}" if signal_name else ""
        print(
            f"propagate: interrupted{why}; finished evaluations are stored. "
            f"Run `propagate {search.path}` again to resume.",
            file=sys.stderr,
            flush=True,
        )
