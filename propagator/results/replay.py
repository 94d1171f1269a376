"""``propagate replay RUN``: a search file that trains a PBT run's winning schedule again,
from scratch, on fresh seeds, to confirm that the schedule, not the luck of one training,
made the winner.

The schedule is the chain of segments that the chosen training (by default the best) went
through (:func:`propagator.pbt.schedule`), merged into stretches of steps with the same
params. The search file is the run's own, with ``pbt.replay`` set to those stretches (every
member follows them and none copies another), a budget of ``--members`` trainings and a run
directory of its own; run it with ``mpirun -n N propagate FILE``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from ..errors import PropagateError
from ..pbt import schedule
from .pbt_report import is_pbt
from .pbt_report import stretches as merged
from .result import Result

EXIT_OK = 0


def add_command(sub: argparse._SubParsersAction) -> None:
    """Add ``replay`` to the ``propagate`` subcommands."""
    cmd = sub.add_parser("replay", help="a search file replaying a PBT run's winning schedule")
    cmd.add_argument("run_dir", type=Path, help="a PBT search's run directory, or its search file")
    cmd.add_argument(
        "--record", type=int, help="the evaluation whose training to replay (default: the best)"
    )
    cmd.add_argument(
        "--members",
        type=int,
        default=4,
        help="trainings that follow the schedule, each on its own seed (default 4)",
    )
    cmd.add_argument(
        "-o",
        "--output",
        type=Path,
        help="the search file (default: stdout); put it beside the run's own search file, "
        "whose relative paths it keeps",
    )
    cmd.set_defaults(handler=_replay)


def stretches(result: Result, record_id: int | None = None) -> list[dict[str, Any]]:
    """The schedule the training that ended in ``record_id`` (default: the best) was trained
    with: ``{step, params}`` from its first step, one per stretch of unchanged params.

    Raises:
        PropagateError: not a PBT run, no such record, or no complete training.
    """
    if not is_pbt(result):
        raise PropagateError("this run did not use pbt: it has no schedule to replay")
    if record_id is None:
        if not result.top(1):
            raise PropagateError("no training of this run is complete yet: give --record")
        record_id = result.best.id  # the best confirmed, where winners were confirmed
    rows = {int(r["id"]): r for r in result.rows}
    if record_id not in rows:
        raise PropagateError(f"the run has no evaluation {record_id}")
    chain = schedule(rows, record_id, result.space.decode)
    return [{"step": s.first_step, "params": s.params} for s in merged(chain, result.space.params)]


def replay_config(config: dict[str, Any], steps: list[dict[str, Any]], members: int) -> dict:
    """The run's search ``config`` set to replay ``steps`` with ``members`` trainings."""
    if members < 1:
        raise PropagateError(f"--members must be at least 1, got {members}")
    out = {k: v for k, v in config.items() if k != "seed"}  # fresh seeds
    out["pbt"] = {**out.get("pbt", {}), "replay": steps}
    out["budget"] = {"evaluations": members * len(steps)}
    out["run_dir"] = f"{config.get('run_dir', 'runs/pbt')}-replay"
    return out


def _replay(args: argparse.Namespace) -> int:
    from ..store.hdf5 import read_meta
    from ..store.load import load
    from ..store.run_store import META

    result = load(args.run_dir)
    meta, _ = read_meta(args.run_dir / META)
    config = yaml.safe_load(meta["config_yaml"])
    config.setdefault("run_dir", str(args.run_dir))
    text = yaml.safe_dump(
        replay_config(config, stretches(result, args.record), args.members), sort_keys=False
    )
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text)
        print(f"wrote {args.output}: run it with mpirun -n N propagate {args.output}")
    return EXIT_OK
