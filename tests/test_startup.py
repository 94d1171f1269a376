"""Start-up (issue 17, item 5): what every rank imports before its first evaluation.

Heavy modules that a search does not need on every rank are imported where they are used:
``moocore`` (fronts and hypervolumes of several objectives), ``jsonschema`` (the search file's
schema check, made on rank 0 only under a launcher) and ``wsgiref`` (``propagate dashboard``'s
server). Timings are in ``jobs/bench/startup.py``; these tests check which modules load.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import PROPAGATE

TIMEOUT = 120
HEAVY = ("moocore", "jsonschema", "wsgiref")

# Records, on each rank, at its first evaluation, which of HEAVY its process has imported;
# the first evaluation lasts 0.5 s, so that every worker gets one.
OBJECTIVE = """
import json, os, sys, time

HEAVY = {heavy!r}


def first(params, trial):
    rank = os.environ.get("PMI_RANK", "0")
    path = os.path.join({out!r}, f"rank-{{rank}}.json")
    if not os.path.exists(path):
        with open(path, "w") as f:
            json.dump(sorted(m for m in HEAVY if m in sys.modules), f)
        time.sleep(0.5)
    return params["x"] ** 2
"""


def _search(tmp: Path, extra: str = "") -> Path:
    out = tmp / "loaded"
    out.mkdir()
    (tmp / "objective.py").write_text(OBJECTIVE.format(heavy=HEAVY, out=str(out)))
    path = tmp / "search.yaml"
    path.write_text(
        "objective: objective.py:first\n"
        "space: {x: {type: float, low: -1, high: 1}}\n"
        f"budget: 8\nstrategy: ga\nseed: 0\n{extra}"
    )
    return path


def _loaded(tmp: Path) -> dict[int, list[str]]:
    files = (tmp / "loaded").glob("rank-*.json")
    return {int(f.stem.split("-")[1]): json.loads(f.read_text()) for f in files}


def test_the_run_path_imports_no_heavy_module_it_does_not_use():
    """The command's parser and every module a stored search runs through, imported: none of
    the heavy modules comes with them."""
    check = (
        "import sys\n"
        "from propagator.cli.main import _parser\n"
        "import propagator.config, propagator.store.session, propagator.engine.run\n"
        "import propagator.strategies, propagator.results.result\n"
        "_parser()\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, timeout=TIMEOUT
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "[]"


def test_under_mpiexec_only_rank_0_checks_the_schema(tmp_path):
    path = _search(tmp_path)
    cmd = ["mpiexec", "-n", "2", sys.executable, *PROPAGATE, str(path), "--progress", "none"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, env=env)
    assert proc.returncode == 0, proc.stderr
    assert _loaded(tmp_path) == {0: ["jsonschema"], 1: []}


def test_alone_the_schema_is_checked_before_mpi_starts(tmp_path):
    """One rank, no launcher: the file is checked (jsonschema loaded) with mpi4py made
    unimportable, so a mistake is reported before any MPI work."""
    path = _search(tmp_path, "islands: 0\n")
    main = "import sys; sys.modules['mpi4py'] = None; " + PROPAGATE[1]
    launcher = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "SLURM_NTASKS")
    env = {k: v for k, v in os.environ.items() if k not in launcher}
    proc = subprocess.run(
        [sys.executable, "-c", main, str(path)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
    )
    assert proc.returncode == 2, proc.stderr
    assert "islands" in proc.stderr and "Traceback" not in proc.stderr


def test_under_mpiexec_a_mistake_rank_0_finds_ends_every_rank(tmp_path):
    """Rank 1 skips the schema check; it hears rank 0's verdict and exits with it (status 2),
    the message said once."""
    path = _search(tmp_path, "islandz: 1\n")
    cmd = ["mpiexec", "-n", "2", sys.executable, *PROPAGATE, str(path), "--progress", "none"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, env=env)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("unknown key 'islandz'; did you mean 'islands'?") == 1, proc.stderr
    assert _loaded(tmp_path) == {}
