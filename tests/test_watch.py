"""``propagate watch``: a live view of a running search, and a single one of a finished run."""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest

import propagator as pg
from propagator.cli import main
from propagator.results import watch

TIMEOUT = 120
_MAIN = "import sys; from propagator.cli import main; sys.exit(main())"
SEARCH = """
objective: objective.py:f
space: {{x: {{type: float, low: -1, high: 1}}, y: {{type: categorical, choices: [a, b]}}}}
metric: loss
budget: {{evaluations: {evaluations}{time}}}
seed: 7
"""
# Evaluations from id 6 on wait for the gate file: the test looks at the run meanwhile.
GATED = """
import os
import time


def f(params, trial):
    if trial.id >= 6:
        while not os.path.exists({gate!r}):
            time.sleep(0.02)
    if params["y"] == "b" and params["x"] > 0.5:
        raise RuntimeError("diverged")
    return params["x"] ** 2
"""


def _search(root: Path, evaluations: int, gate: Path, time_budget: str = "") -> Path:
    (root / "objective.py").write_text(GATED.format(gate=str(gate)))
    path = root / "search.yaml"
    time = f", time: {time_budget}" if time_budget else ""
    path.write_text(SEARCH.format(evaluations=evaluations, time=time))
    return path


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("watch")
    gate = root / "open"
    gate.touch()
    assert main(["run", str(_search(root, 24, gate)), "--progress", "none"]) == 0
    return root / "runs" / "search"


def _field(block: str, name: str) -> str:
    line = next(line for line in block.splitlines() if line.startswith(f"{name} "))
    return line[len(name) :].strip()


def _no_sleep(_seconds: float) -> None:
    raise AssertionError("watch waited on a run that is not running")


def test_watch_on_a_finished_run_prints_once(finished):
    out = io.StringIO()
    assert watch.follow(finished, 0.01, stream=out, sleep=_no_sleep) == 0
    block = out.getvalue()
    result = pg.load(finished)
    assert _field(block, "status") == "finished"
    assert _field(block, "evaluations") == "24 of 24 (100%)"
    failed = [r for r in result.records if r.status == "failed"]
    assert failed, "the objective should fail on some points"
    assert _field(block, "failed") == f"{len(failed)} (first: RuntimeError: diverged)"
    best = result.best
    assert _field(block, "best") == f"loss {best.value:.6g} (id {best.id}, island 0)"
    assert _field(block, "params") == f"x={best.params['x']:.6g}, y={best.params['y']}"
    starts = {line.split(" ")[0] for line in block.splitlines()}
    assert "throughput" in starts and "rate" not in starts and "(refreshed" not in starts
    header = [
        "island",
        "evaluations",
        "failed",
        "best",
        "loss",
        "best",
        "id",
        "evals",
        "to",
        "best",
        "strategy",
    ]
    lines = [line.split() for line in block.splitlines()]
    assert header in lines
    island = lines[lines.index(header) + 1]
    assert island[0] == "0" and " ".join(island[6:]) == "portfolio (ga, cmaes, tpe)"


def test_watch_command_on_a_finished_run(finished, capsys):
    assert main(["watch", str(finished)]) == 0
    assert _field(capsys.readouterr().out, "status") == "finished"


def test_watch_on_a_run_that_was_killed_prints_once(finished, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(finished, copy)
    with h5py.File(copy / "run.h5", "a") as f:  # no stop event after the last start
        f["events"].resize((len(f["events"]) - 1,))
    out = io.StringIO()
    assert watch.follow(copy, 0.01, stream=out, sleep=_no_sleep) == 0
    assert _field(out.getvalue(), "status").startswith("not running, and no end was recorded")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_view_is_redrawn_and_ctrl_c_ends_it(finished, tmp_path, monkeypatch):
    monkeypatch.setattr(watch, "running", lambda run: True)
    calls = []

    def interrupt(seconds: float) -> None:
        calls.append(seconds)
        if len(calls) == 2:
            raise KeyboardInterrupt

    out = _Terminal()
    assert watch.follow(finished, 3.0, stream=out, sleep=interrupt) == 0
    shown = out.getvalue()
    assert calls == [3.0, 3.0]
    assert shown.startswith("\x1b[H\x1b[2J") and shown.count("\x1b[H\x1b[2J") == 2
    assert "(refreshed every 3 s; Ctrl-C to stop watching)" in shown and shown.endswith("\n")


def _wait_for(condition, what: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{what}: search ended or hung: {proc.communicate()}")
        time.sleep(0.05)


def _records(run_dir: Path) -> int:
    try:
        return len(pg.load(run_dir))
    except Exception:  # not created yet, or caught halfway through creation
        return -1


def test_watch_follows_a_running_search_to_its_end(tmp_path):
    gate = tmp_path / "open"
    path = _search(tmp_path, 20, gate, time_budget="1h")
    run_dir = tmp_path / "runs" / "search"
    search = subprocess.Popen(
        [sys.executable, "-c", _MAIN, str(path), "--progress", "none"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _wait_for(lambda: _records(run_dir) == 6, "6 evaluations", search)
        naps = []

        def nap(seconds: float) -> None:
            naps.append(seconds)
            gate.touch()  # the search goes on once the first view is shown
            time.sleep(seconds)

        out = io.StringIO()
        assert watch.follow(run_dir, 0.2, stream=out, sleep=nap) == 0
        _, err = search.communicate(timeout=TIMEOUT)
    finally:
        if search.poll() is None:
            os.killpg(search.pid, signal.SIGKILL)
    assert search.returncode == 0, err
    blocks = out.getvalue().split("\nrun ")  # each view starts with its "run" line
    assert len(blocks) == len(naps) + 1 >= 2
    first, last = blocks[0], blocks[-1]
    assert _field(first, "status").startswith("running (session 0, since ")
    assert _field(first, "evaluations") == "6 of 20 (30%)"
    # below one per second (a loaded machine) the rate says per hour too
    assert re.fullmatch(
        r"[\d.e+]+ evaluations/s( \([\d.e+]+ per hour\))? this session", _field(first, "rate")
    ), _field(first, "rate")
    assert _field(first, "time left").startswith("~")
    assert "(refreshed every 0.2 s; Ctrl-C to stop watching)" in first
    assert _field(last, "status") == "finished"
    assert _field(last, "evaluations") == "20 of 20 (100%)"
    assert len(pg.load(run_dir)) == 20  # watching did not disturb the search
