"""A failing rank never hangs a job, BaseExceptions from the objective never vanish, a failed
search says so, and the API's run store resumes (issue 12, items 2, 3, 4, 11).

Every search runs under ``mpiexec`` in a subprocess with a timeout: a hang fails the test.
"""

from __future__ import annotations

import json
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

SCRIPT = Path(__file__).parent / "data" / "reliability.py"
pytestmark = pytest.mark.mpi


def _search(n: int, case: str, run_dir: Path | str, budget: int = 6, timeout: float = 90):
    """Run a case of ``tests/data/reliability.py``; (exit code, output, its JSON line)."""
    cmd = ["mpiexec", "-n", str(n), sys.executable, str(SCRIPT), case, str(run_dir), str(budget)]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, start_new_session=True
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{case} hung for {timeout} s:\n{exc.output}")
    output = proc.stdout + proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return proc.returncode, output, lines[0] if lines else None


def test_a_rank_failing_while_its_worker_waits_in_a_collective_stops_the_job(tmp_path):
    """Rank 1 raises while rank 0 waits in Barrier: within seconds (failure_grace=2) the job
    stops with a message naming the rank and the error; the failure is recorded; a re-run
    takes over the stale lock and finishes the budget."""
    run_dir = tmp_path / "run"
    code, out, payload = _search(2, "rank1_raises_while_rank0_waits", run_dir)
    assert code != 0 and payload is None
    assert "rank 1 (rank 1 of worker 0) failed in evaluation 2" in out
    assert "MPI cannot cancel" in out and "RuntimeError: rank 1 breaks" in out
    stored = pg.load(run_dir)
    assert [(r.id, r.status) for r in stored.records] == [(0, "ok"), (1, "ok"), (2, "failed")]
    assert "rank 1 breaks" in stored.records[2].error

    code, out, payload = _search(2, "rank1_raises_while_rank0_waits", run_dir)
    assert code == 0, out
    assert "taking over the lock" in out and "resuming" in out
    ids = [r["id"] for r in payload["records"]]
    assert ids == list(range(6))
    assert [r["status"] for r in payload["records"]].count("failed") == 1


def test_the_leader_failing_while_a_follower_waits_stops_the_job(tmp_path):
    run_dir = tmp_path / "run"
    code, out, _ = _search(2, "rank0_raises_while_rank1_waits", run_dir)
    assert code != 0 and "rank 0 (rank 0 of worker 0) failed in evaluation 1" in out
    stored = pg.load(run_dir)
    assert [(r.id, r.status) for r in stored.records] == [(0, "ok"), (1, "failed")]
    assert "RuntimeError: rank 0 breaks" in stored.records[1].error


def test_a_rank_failing_alone_is_recorded_and_the_search_goes_on():
    code, out, payload = _search(2, "rank1_raises_without_collectives", "-")
    assert code == 0, out
    records = payload["records"]
    assert len(records) == 6
    failed = [r for r in records if r["status"] == "failed"]
    assert [r["id"] for r in failed] == [1]
    assert "rank 1 of worker 0 failed" in failed[0]["error"]
    assert "rank 1 breaks alone" in failed[0]["error"]


def test_sys_exit_in_the_objective_is_a_failed_evaluation():
    code, out, payload = _search(1, "sys_exit", "-")
    assert code == 0, out
    for r in payload["records"]:
        if r["id"] % 2:
            assert r["status"] == "failed" and "SystemExit(3)" in r["error"]
        else:
            assert r["status"] == "ok"
    assert len(payload["records"]) == 6


def test_keyboard_interrupt_in_the_objective_stops_the_search_cleanly():
    code, out, payload = _search(1, "keyboard_interrupt", "-", budget=20)
    assert code == 0, out
    assert payload["interrupted"] is True
    assert [r["id"] for r in payload["records"]] == [0, 1, 2]  # 3 was interrupted, not recorded


def test_a_search_in_which_nothing_succeeds_is_an_objective_error(tmp_path):
    """Fewer evaluations than max_initial_failures, all failed: an error quoting the first
    failure, in memory and with a run store; a re-run says the budget is spent and how to
    start over."""
    code, out, payload = _search(1, "always_fails", "-", budget=3)
    assert code == 0 and "no evaluation succeeded (3 failed)" in payload["objective_error"]
    assert "ValueError: bad x" in payload["objective_error"]
    run_dir = tmp_path / "run"
    code, out, payload = _search(1, "always_fails", run_dir, budget=3)
    assert "no evaluation of" in payload["objective_error"] and "bad x" in out
    code, out, payload = _search(1, "always_fails", run_dir, budget=3)
    assert "evaluation budget of" in out and "every evaluation failed" in out
    assert "fresh=True" in out


def _wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("timed out waiting")
        time.sleep(0.1)


def _stored(run_dir: Path) -> int:
    try:
        return len(pg.load(run_dir))
    except Exception:
        return 0


def test_an_api_search_with_a_run_dir_resumes_after_kill_9(tmp_path):
    run_dir = tmp_path / "run"
    cmd = ["mpiexec", "-n", "2", sys.executable, str(SCRIPT), "slow", str(run_dir), "80"]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        _wait_for(lambda: _stored(run_dir) >= 10)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = pg.load(run_dir)
    code, out, payload = _search(2, "slow", run_dir, budget=80)
    assert code == 0, out
    ids = [r["id"] for r in payload["records"]]
    assert len(ids) == 80 and len(set(ids)) == 80
    assert set(before.rows["id"].tolist()) <= set(ids)
    assert pg.load(run_dir).rows["id"].tolist() == sorted(ids)


def test_an_api_search_with_a_run_dir_stops_cleanly_on_sigterm(tmp_path):
    run_dir = tmp_path / "run"
    cmd = ["mpiexec", "-n", "2", sys.executable, str(SCRIPT), "slow", str(run_dir), "100000"]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    _wait_for(lambda: _stored(run_dir) >= 5)
    os.killpg(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, out + err
    payload = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
    assert payload["interrupted"] is True
    assert len(payload["records"]) == len(pg.load(run_dir)) < 100000


def test_a_run_dir_in_use_refuses_a_second_job_and_names_the_first(tmp_path):
    run_dir = tmp_path / "run"
    cmd = ["mpiexec", "-n", "2", sys.executable, str(SCRIPT), "slow", str(run_dir), "100000"]
    first = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        _wait_for(lambda: _stored(run_dir) >= 2)
        code, out, payload = _search(1, "slow", run_dir, budget=100000)
        assert code != 0 and payload is None and "is in use by another propagate job" in out
        holder = json.loads((run_dir / "lock").read_text())
        assert f"pid {holder['pid']}" in out
    finally:
        os.killpg(first.pid, signal.SIGTERM)
        first.wait(timeout=60)
    assert not (run_dir / "lock").exists()
    assert np.unique(pg.load(run_dir).rows["id"]).size == len(pg.load(run_dir))


def test_the_same_search_file_started_twice_refuses_the_second(tmp_path):
    """A job resubmitted while the first still runs: the second exits 2 naming the first, and
    the run holds only the first job's evaluations, once each."""
    path = search_file(tmp_path, 100000, islands=1)
    env = {**os.environ, "PROPAGATE_TEST_LOG": str(tmp_path)}
    cmd = ["mpiexec", "-n", "2", sys.executable, *PROPAGATE, str(path)]
    first = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env
    )
    try:
        _wait_for(lambda: _stored(tmp_path / "run") >= 2)
        second = subprocess.run(
            [sys.executable, *PROPAGATE, str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert second.returncode == 2, second.stderr
        assert second.stderr.count("propagate: error:") == 1
        assert "is in use by another propagate job" in second.stderr
        assert f"pid {json.loads((tmp_path / 'run' / 'lock').read_text())['pid']}" in second.stderr
    finally:
        os.killpg(first.pid, signal.SIGTERM)
        first.wait(timeout=60)
    assert first.returncode == 0
    stored = pg.load(tmp_path / "run")
    assert np.unique(stored.rows["id"]).size == len(stored)
    assert stored_events(tmp_path / "run") == ["start", "interrupted"]


def stored_events(run_dir: Path) -> list[str]:
    from propagator.store import read

    return [e["kind"] for e in read(run_dir).events]


def test_a_dict_without_metric_stops_at_once_and_the_fixed_file_starts_over(tmp_path):
    """Item 9: the first evaluation tells, in the search file's words, exit 2, nothing spent;
    with metric added, the same command starts (the run held no evaluation to keep)."""
    (tmp_path / "obj.py").write_text("def f(p):\n    return {'loss': p['x'] ** 2, 'acc': 1.0}\n")
    path = tmp_path / "s.yaml"
    text = (
        "objective: obj.py:f\n"
        "space: {x: {type: float, low: -1, high: 1}}\n"
        "budget: {evaluations: 20}\n"
    )
    path.write_text(text)
    cmd = [sys.executable, *PROPAGATE, str(path)]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert first.returncode == 2, first.stderr
    assert "propagate: error:" in first.stderr and "metric: in the search file" in first.stderr
    assert len(pg.load(tmp_path / "runs" / "s")) == 0
    path.write_text(text + "metric: loss\n")
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert "starting over" in second.stderr
    assert len(pg.load(tmp_path / "runs" / "s")) == 20


def _file_search(tmp_path: Path, objective: str, budget: str) -> list[str]:
    (tmp_path / "obj.py").write_text(objective)
    path = tmp_path / "s.yaml"
    path.write_text(
        f"objective: obj.py:f\nspace: {{x: {{type: float, low: -1, high: 1}}}}\n"
        f"budget: {budget}\nstrategy: random\n"
    )
    return [sys.executable, *PROPAGATE, str(path)]


def test_a_search_file_whose_evaluations_all_fail_exits_1_and_hints_fresh(tmp_path):
    """Items 11 and 12: fewer failures than max_initial_failures still make a failed search
    (exit 1, the first error); the re-run says the budget went to failures and how to start
    over after fixing the objective."""
    cmd = _file_search(tmp_path, "def f(p):\n    raise ValueError('broken')\n", "{evaluations: 3}")
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert first.returncode == 1, first.stderr
    assert first.stderr.count("propagate: error:") == 1
    assert "no evaluation of" in first.stderr and "ValueError: broken" in first.stderr
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert "evaluation budget of" in again.stderr and "every evaluation failed" in again.stderr
    assert "start over with --fresh" in again.stderr


def test_a_spent_time_budget_says_which_budget_and_how_to_extend_it(tmp_path):
    """Item 10."""
    objective = "import time\ndef f(p):\n    time.sleep(0.05)\n    return p['x'] ** 2\n"
    cmd = _file_search(tmp_path, objective, "{time: 1}")
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0
    assert "the time budget of" in again.stderr and "budget.time = 1 s" in again.stderr
    assert "raise budget.time in the search file" in again.stderr
