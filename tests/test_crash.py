"""kill -9 of a whole ``mpiexec`` job at random moments, then resume, until the budget is done.

At the end: exactly the budget of evaluations is stored, ids are unique, and every evaluation
the objective had finished is in the store except at most one in flight per worker per kill.
``PROPAGATE_CRASH_ROUNDS`` sets the number of kills (CI runs a few; run more by hand).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import PROPAGATE, search_file

import propagator as pg

pytestmark = pytest.mark.mpi
RANKS, BUDGET = 4, 600


def _launch(path: Path, log_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "PROPAGATE_TEST_LOG": str(log_dir)}
    cmd = ["mpiexec", "-n", str(RANKS), sys.executable, *PROPAGATE, str(path)]
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )


def _shm() -> set[Path]:
    return set(Path("/dev/shm").glob("mpich_shm_*")) if Path("/dev/shm").is_dir() else set()


def _finished_ids(log_dir: Path) -> list[int]:
    return [int(line) for f in log_dir.glob("*.log") for line in f.read_text().split()]


def crash_and_resume(
    tmp: Path, rounds: int, seed: int = 0, budget: int = BUDGET, islands: int = 2, extra: str = ""
) -> dict:
    rng = random.Random(seed)
    path, log_dir = search_file(tmp, budget, islands, extra), tmp / "finished"
    log_dir.mkdir()
    kills = 0
    for _ in range(rounds):
        before = _shm()
        proc = _launch(path, log_dir)
        # kill once a random number of further evaluations has finished (not after a fixed
        # time, which a fast machine outruns): kills land mid-run, between or within writes
        target = len(_finished_ids(log_dir)) + rng.randint(10, budget // 6)
        while proc.poll() is None and len(_finished_ids(log_dir)) < target:
            time.sleep(rng.uniform(0.001, 0.02))
        if proc.poll() is not None:
            break
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
        for leaked in _shm() - before:  # MPICH cannot clean up after kill -9
            leaked.unlink(missing_ok=True)
    while True:  # finish the budget (a resume may itself complete it)
        proc = _launch(path, log_dir)
        try:
            out, _ = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        assert proc.returncode == 0, out.decode()[-3000:]
        if b"is spent:" in out or len(pg.load(tmp / "run")) >= budget:
            break
    result = pg.load(tmp / "run")
    finished = _finished_ids(log_dir)
    stored = set(result.rows["id"].tolist())
    return {"kills": kills, "result": result, "finished": finished, "lost": set(finished) - stored}


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    ("islands", "extra"), [(2, ""), (1, "dissemination: gossip")], ids=["all", "gossip"]
)
def test_kill_9_and_resume_loses_only_evaluations_in_flight(tmp_path, islands, extra):
    """Also with gossip, where a record reaches most of its island only through relays that
    the kill may cut short: the resume reads every stored record whoever sent it."""
    rounds = int(os.environ.get("PROPAGATE_CRASH_ROUNDS", "3"))
    outcome = crash_and_resume(tmp_path, rounds, islands=islands, extra=extra)
    result = outcome["result"]
    ids = result.rows["id"]
    assert len(result) == BUDGET
    assert len(set(ids.tolist())) == len(ids)
    assert outcome["kills"] >= 1
    assert len(outcome["lost"]) <= outcome["kills"] * RANKS, outcome["lost"]
    # every stored evaluation carries its metrics, whether it came from HDF5 or the journal
    assert all(r.metrics["aux"] == r.id for r in result.records if r.ok)
