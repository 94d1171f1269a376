"""Resuming runs from the command line: other rank counts, changed files, signals, --fresh."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import PROPAGATE, search_file

import propagator as pg
from propagator.store import read

pytestmark = pytest.mark.mpi


def _propagate(tmp: Path, ranks: int, *args: str, timeout: float = 120) -> tuple[int, str]:
    env = {**os.environ, "PROPAGATE_TEST_LOG": str(tmp)}
    cmd = ["mpiexec", "-n", str(ranks), sys.executable, *PROPAGATE, *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr


def test_resume_with_other_rank_counts_continues_ids_pools_and_budget(tmp_path):
    path = search_file(tmp_path, 200)
    assert _propagate(tmp_path, 4, str(path))[0] == 0
    first = pg.load(tmp_path / "run")
    assert len(first) == 200
    path = search_file(tmp_path, 500)  # only the budget grew: allowed
    code, out = _propagate(tmp_path, 6, str(path))
    assert code == 0, out
    assert "resuming" in out and "200 evaluations done" in out
    second = pg.load(tmp_path / "run")
    ids = second.rows["id"]
    assert len(second) == 500 and len(np.unique(ids)) == 500
    assert ids[200:].min() >= first.rows["id"].max() + 1  # new ids after the old ones
    assert set(second.rows["worker"][ids >= 200].tolist()) == set(range(6))
    # The pools were seeded from the first session: its GA breeds from the stored best at
    # once, and a child keeps the genes it does not mutate bit for bit, which neither a
    # uniform sample nor a child of the new session's own records can have. Six ranks on two
    # islands make pools of six (2 x 3 workers), seeded with each island's six best.
    carried = _genes_of(second.rows[ids >= 200]) & _genes_of(first.rows)
    island = first.rows["island"]
    best = [first.rows[island == j][np.argsort(first.values[island == j])[:6]] for j in (0, 1)]
    assert len(carried) >= 3 and carried <= _genes_of(np.concatenate(best))
    stored = read(tmp_path / "run")
    kinds = [e["kind"] for e in stored.events]
    assert kinds == ["start", "stop", "resume", "stop"]
    code, out = _propagate(tmp_path, 2, str(path))
    assert code == 0 and "evaluation budget of" in out and "is spent: 500 of" in out


def _genes_of(rows: np.ndarray) -> set[tuple[int, float]]:
    """Every gene value of ``rows``, with its position."""
    return {(j, g) for genes in rows["genes"].tolist() for j, g in enumerate(genes)}


def test_changed_search_file_is_refused_with_a_diff_then_fresh_keeps_the_old_run(tmp_path):
    path = search_file(tmp_path, 100)
    assert _propagate(tmp_path, 2, str(path))[0] == 0
    path = search_file(tmp_path, 100, islands=1)
    code, out = _propagate(tmp_path, 2, str(path))
    assert code == 2
    assert "only a larger budget may change" in out
    assert "-islands: 2" in out and "+islands: 1" in out
    assert "Traceback" not in out
    path = search_file(tmp_path, 50)  # a smaller budget is a change too
    assert _propagate(tmp_path, 2, str(path))[0] == 2
    path = search_file(tmp_path, 100, islands=1)
    code, out = _propagate(tmp_path, 2, str(path), "--fresh")
    assert code == 0, out
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("run.old-")]
    assert len(aside) == 1 and len(pg.load(aside[0])) == 100
    assert len(pg.load(tmp_path / "run")) == 100


# SIGUSR1 takes SIGTERM's path (engine/signals.py); outside CI only, for its time
@pytest.mark.parametrize(
    "sig", [signal.SIGTERM, pytest.param(signal.SIGUSR1, marks=pytest.mark.slow), signal.SIGINT]
)
def test_signal_stops_every_rank_cleanly(tmp_path, sig):
    path = search_file(tmp_path, 100_000)
    env = {**os.environ, "PROPAGATE_TEST_LOG": str(tmp_path)}
    cmd = ["mpiexec", "-n", "4", sys.executable, *PROPAGATE, str(path)]
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    deadline = time.time() + 60
    while not (tmp_path / "run" / "workers").exists() and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(1.5)
    os.killpg(proc.pid, sig)
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("ranks did not exit after the signal")
    assert proc.returncode == 0, out
    assert f"interrupted by {sig.name}" in out and "again to resume" in out
    result = pg.load(tmp_path / "run")
    finished = {int(x) for f in tmp_path.glob("rank-*.log") for x in f.read_text().split()}
    assert finished == set(result.rows["id"].tolist())  # nothing finished was lost
    assert read(tmp_path / "run").events[-1]["kind"] == "interrupted"


def test_reading_a_running_search_never_disturbs_it(tmp_path):
    path = search_file(tmp_path, 1500, extra="max_initial_failures: 5\n")
    env = {**os.environ, "PROPAGATE_TEST_LOG": str(tmp_path)}
    cmd = ["mpiexec", "-n", "3", sys.executable, *PROPAGATE, str(path)]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    reads, seen = 0, []
    while proc.poll() is None:
        if (tmp_path / "run" / "run.h5").exists():
            report = subprocess.run(
                [sys.executable, *PROPAGATE, "report", str(tmp_path / "run")],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert report.returncode == 0, report.stderr
            seen.append(len(pg.load(tmp_path / "run")))
            reads += 1
        time.sleep(0.05)
    out, _ = proc.communicate()
    assert proc.returncode == 0, out
    assert reads >= 3 and seen == sorted(seen)  # the store only ever grows
    assert len(pg.load(tmp_path / "run")) == 1500
