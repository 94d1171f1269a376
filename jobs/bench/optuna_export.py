"""Optuna export speed: one run of 2,674 evaluations copied to SQLite and to a journal file.

    python jobs/bench/optuna_export.py                    # this tree's export
    python jobs/bench/optuna_export.py --before 53024cb   # and export.py of that commit

The run (2 islands on 2 ranks, a cheap objective that reports 3 intermediate values, with
pruned and failed evaluations) is made once under mpiexec and kept in ``--run-dir``
(default /tmp/propagate-bench-optuna/run); every timing copies that same run. ``--before``
loads ``git show REV:propagator/results/export.py`` as a module of its own (next to this
tree's package, whose helpers it imports), so both are timed on one machine in one go. Each
export goes to a fresh file; its trial count is checked against the run's.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import io
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).parent))
from _launch import launch, parse

EVALUATIONS = 2674
REPO = Path(__file__).resolve().parents[2]


def objective(params: dict, trial) -> float:
    """A quadratic bowl that reports 3 steps; pruned past x > 0.8, failed below y < -0.95."""
    import propagator as pg

    loss = (params["x"] - 0.3) ** 2 + (params["y"] + 0.1) ** 2 + 0.01 * params["width"]
    for step in range(3):
        trial.report(step, loss * (3 - step))
        if step == 1 and params["x"] > 0.8:
            raise pg.Pruned
    if params["y"] < -0.95:
        raise RuntimeError("diverged")
    return loss if params["act"] == "tanh" else loss + 0.05


def _make(args: argparse.Namespace) -> None:
    """The mpiexec half: the search whose run directory is exported."""
    import json

    from mpi4py import MPI

    import propagator as pg

    space = pg.Space(
        {
            "x": pg.Float(-1, 1),
            "y": pg.Float(-1, 1),
            "width": pg.Int(4, 64, log=True),
            "act": pg.Categorical(["tanh", "relu"]),
        }
    )
    result = pg.search(
        objective,
        space,
        budget=EVALUATIONS,
        islands=2,
        strategy="ga",
        seed=0,
        run_dir=args.run_dir,
    )
    if MPI.COMM_WORLD.rank == 0:
        Path(args.out).write_text(json.dumps({"evaluations": len(result)}))


def _module(source: str, name: str) -> ModuleType:
    """``source`` as the module ``propagator.results.<name>`` (its relative imports resolve)."""
    path = Path(tempfile.mkdtemp()) / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"propagator.results.{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _time(label: str, to_optuna, run, storage: str) -> float:
    t = time.perf_counter()
    study = to_optuna(run.result, storage, "bench", False, run.origin)
    seconds = time.perf_counter() - t
    assert len(study.trials) == len(run.result), (len(study.trials), len(run.result))
    print(f"{label:<34} {seconds:8.2f} s  ({len(run.result) / seconds:,.0f} trials/s)")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, default=Path("/tmp/propagate-bench-optuna/run"))
    parser.add_argument("--before", metavar="REV", help="also time export.py of this commit")
    args = parse(parser, _make)
    if args is None:
        return
    if not args.run_dir.exists():
        made = launch(__file__, 2, ["--run-dir", str(args.run_dir)], timeout=900)
        print(f"made {args.run_dir}: {made['evaluations']} evaluations")

    from propagator.results.optuna_export import to_optuna
    from propagator.results.report import open_run

    run = open_run(args.run_dir)
    counts = {s: sum(r.status == s for r in run.result.records) for s in ("ok", "pruned", "failed")}
    print(f"run: {len(run.result)} evaluations {counts}")
    quiet = functools.partial(to_optuna, progress=io.StringIO())  # its progress lines aside
    exports = [("now", quiet)]
    if args.before:
        old = subprocess.run(
            ["git", "show", f"{args.before}:propagator/results/export.py"],
            cwd=REPO,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        exports.insert(0, (args.before, _module(old, "_export_before").to_optuna))
    with tempfile.TemporaryDirectory() as tmp:
        for label, export in exports:
            _time(f"{label}: sqlite", export, run, f"sqlite:///{tmp}/{label}.db")
            _time(f"{label}: journal", export, run, f"{tmp}/{label}.log")


if __name__ == "__main__":
    main()
