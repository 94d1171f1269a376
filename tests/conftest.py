"""Shared test helpers: launching MPI scenarios as subprocesses with a hard timeout."""

from __future__ import annotations

import importlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# A property's examples are drawn however loaded the machine is (CI shares its cores with
# the MPI scenarios): no deadline per example and no "data too slow to generate" failure by
# default, for every test that does not set them itself.
settings.register_profile("propagate", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("propagate")

SCENARIOS = Path(__file__).parent / "mpi" / "scenarios.py"
_SIGNALS = [s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGUSR1", None)) if s]


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    """No test leaks process state into the next: signal handlers, environment variables, the
    working directory, the global random generators and torch's thread count are put back
    after each test, so the suite passes in any order and whatever the dispositions it
    inherited."""
    handlers = {s: signal.getsignal(s) for s in _SIGNALS}
    environ, cwd = dict(os.environ), os.getcwd()
    py_random, np_random = random.getstate(), np.random.get_state()
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else None
    try:
        yield
    finally:
        if threads is not None:
            torch.set_num_threads(threads)
        for s, handler in handlers.items():
            signal.signal(s, handler)
        os.environ.clear()
        os.environ.update(environ)
        os.chdir(cwd)
        random.setstate(py_random)
        np.random.set_state(np_random)


def run_mpi(n: int, scenario: str, out: Path, *args: str, timeout: float = 120) -> list[dict]:
    """Run ``tests/mpi/scenarios.py SCENARIO OUT ARGS`` on ``n`` ranks; return each rank's JSON.

    A hang fails the test (the whole process group is killed at ``timeout``) instead of
    hanging the suite.
    """
    out.mkdir(parents=True, exist_ok=True)
    return mpiexec_json(n, [str(SCENARIOS), scenario, str(out), *args], out, timeout)


def mpiexec_json(
    n: int, argv: list[str], out: Path, timeout: float, env: dict[str, str] | None = None
) -> list[dict]:
    """Run ``mpiexec -n N python ARGV`` (one thread per rank); return each rank's
    ``OUT/rank{r}.json``. A hang fails the test: the whole process group is killed at
    ``timeout`` seconds."""
    cmd = ["mpiexec", "-n", str(n), sys.executable, *argv]
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env=env,
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"mpiexec -n {n} {argv} hung for {timeout}s:\n{output[-4000:]}")
    exited = f"mpiexec -n {n} {argv} exited {proc.returncode}:\n{output[-4000:]}"
    assert proc.returncode == 0, exited
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(n)]


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Torch on one thread in this process, as the MPI ranks of ``run_trainer`` are: results
    compared with ``==`` must add in the same order."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_trainer(
    tmp: Path, n: int, k: int, name: str, params: dict, backend: str = "mpi"
) -> list[dict]:
    """The records of a search on ``n`` ranks in workers of ``k`` running trainer ``name`` once
    per worker with ``params`` (the ``trainer`` scenario); each must have succeeded."""
    ranks = run_mpi(n, "trainer", tmp, name, backend, str(k), json.dumps(params))
    records = ranks[0]["records"]
    assert len(records) == n // k
    assert all(r["status"] == "ok" for r in records), records
    return records


# The propagate command, for subprocesses under mpiexec (the console script's entry point).
PROPAGATE = ["-c", "import sys; from propagator._entry import main; sys.exit(main())"]
DATA = Path(__file__).parent / "data"


def search_file(tmp: Path, evaluations: int, islands: int = 2, extra: str = "") -> Path:
    """A search file over ``tests/data/crash_objective.py`` storing its run in ``tmp/run``
    (with the GA: these searches test the engine and the store, and a strategy that takes
    seconds to start, as TPE importing Optuna, would leave some workers without work)."""
    path = tmp / "search.yaml"
    path.write_text(
        f"""
objective: {DATA / "crash_objective.py"}:objective
space:
  x: {{type: float, low: -1, high: 1}}
  y: {{type: float, low: -1, high: 1}}
metric: loss
budget: {{evaluations: {evaluations}}}
islands: {islands}
strategy: ga
run_dir: {tmp / "run"}
seed: 3
{extra}"""
    )
    return path


BENCH = Path(__file__).resolve().parents[1] / "jobs" / "bench"


@contextmanager
def bench_modules(*names: str) -> Iterator[dict[str, ModuleType]]:
    """Modules of ``jobs/bench`` (dotted names allowed), imported by name; ``sys.path`` and
    the imported modules are restored afterwards, so nothing leaks into other tests."""
    saved = list(sys.path)
    sys.path.insert(0, str(BENCH))
    try:
        yield {name: importlib.import_module(name) for name in names}
    finally:
        sys.path[:] = saved
        roots = {name.split(".")[0] for name in names}
        for name in [m for m in sys.modules if m.split(".")[0] in roots]:
            del sys.modules[name]


def traced_calls(folder: Path) -> list[dict]:
    """Every objective call traced so far in ``folder/trace.*`` (one file per process, one
    JSON line per call; a line still being written is left out)."""
    lines = (x for f in folder.glob("trace.*") for x in f.read_text().splitlines())
    return [json.loads(x) for x in lines if x.endswith("}")]


def run_traced(
    folder: Path,
    script: str,
    ranks: int,
    args: list[str],
    env: dict[str, str],
    kill_after: int | None = None,
) -> tuple[int, str]:
    """Run the Python ``script`` (text, written to ``folder/search.py``) on ``ranks`` ranks
    with ``args``; its objective traces its calls in ``folder/trace.*`` (see
    :func:`traced_calls`). ``kill_after``: kill -9 the whole job once that many more calls
    are traced. Returns the exit status and the output."""
    path = folder / "search.py"
    path.write_text(script)
    cmd = ["mpiexec", "-n", str(ranks), sys.executable, str(path), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", **env}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        start_new_session=True,
    )  # fmt: skip
    try:
        if kill_after is not None:  # kill -9 once this run has made some progress
            before = len(traced_calls(folder))
            deadline = time.monotonic() + 120
            while len(traced_calls(folder)) < before + kill_after and time.monotonic() < deadline:
                time.sleep(0.05)
            os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"{cmd} hung:\n{proc.communicate()[0][-3000:]}")
    return proc.returncode, out
