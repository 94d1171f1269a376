"""Rank 0's progress display: bar, lines and none, and what ``auto`` picks, also under mpiexec.

A terminal behind ``mpiexec`` is made with ``script`` (util-linux), which runs a command on a
pseudo-terminal and copies what it shows to its stdout.
"""

from __future__ import annotations

import fcntl
import io
import logging
import os
import re
import shlex
import shutil
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from propagator.results.progress import ProgressMonitor

TIMEOUT = 120
MONITOR = """
import sys
from mpi4py import MPI
from propagator.results.progress import ProgressMonitor

if MPI.COMM_WORLD.rank == 0:
    m = ProgressMonitor(5, 0, None, "loss", 1.0, mode=sys.argv[1], interval=3600)
    for done in range(1, 6):
        m.update(done, 0, 1.0 / done)
    m.close()
    sys.stderr.write(f"mode {m.mode}\\n")
"""
_MAIN = "import sys; from propagator.cli import main; sys.exit(main())"


def _monitor(mode: str, stream: io.StringIO, interval: float = 3600.0) -> ProgressMonitor:
    return ProgressMonitor(10, 0, None, "loss", 1.0, stream=stream, interval=interval, mode=mode)


def test_bar_mode_redraws_in_place_and_ends_its_line():
    out = io.StringIO()
    m = _monitor("bar", out)
    assert m.mode == "bar"
    for done in range(1, 11):
        m.update(done, 1, 1.0 / done)
    text = out.getvalue()
    assert text.count("\r") >= 10 and "10/10" in text and "best loss=0.1" in text
    assert text.endswith("\n") and text.count("\n") == 1  # reaching the budget ended it
    m.update(10, 1, 0.1)
    m.close()
    assert out.getvalue() == text


def test_lines_mode_prints_the_last_line_once():
    out = io.StringIO()
    m = _monitor("lines", out)
    for done in range(1, 11):
        m.update(done, 2, 0.25)
    m.update(10, 2, 0.25)  # the engine may report the final state again
    m.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("10/10 evaluations, best loss 0.25, ") and "2 failed" in lines[0]
    assert out.getvalue().endswith("\n") and "\r" not in out.getvalue()


def test_lines_mode_prints_at_each_interval_and_the_final_state_on_close():
    out = io.StringIO()
    m = ProgressMonitor(None, 5, 60.0, "acc", -1.0, stream=out, interval=0.0, mode="lines")
    for done in (1, 2, 3):
        m.update(done, 0, -0.5)
    lines = out.getvalue().splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == ["6", "7", "8"]  # 5 done before
    assert all("best acc 0.5" in line for line in lines)  # the sign turns the loss back
    m.close()  # a time budget: close() shows the end, here already shown
    assert out.getvalue().splitlines() == lines

    out = io.StringIO()
    m = ProgressMonitor(None, 0, 60.0, "loss", 1.0, stream=out, interval=3600.0, mode="lines")
    m.update(4, 1, 0.5)
    assert out.getvalue() == ""
    m.close()
    assert out.getvalue().startswith("4 evaluations, best loss 0.5, ")


def test_none_mode_writes_nothing_but_logs(caplog):
    out = io.StringIO()
    m = _monitor("none", out)
    with caplog.at_level(logging.INFO, logger="propagate"):
        for done in range(1, 11):
            m.update(done, 0, 0.5)
    assert out.getvalue() == ""
    assert [r.getMessage()[:5] for r in caplog.records if r.name == "propagate"] == ["10/10"]


def test_auto_is_lines_on_a_file_and_a_bar_on_a_terminal():
    assert _monitor("auto", io.StringIO()).mode == "lines"
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 97, 0, 0))
    try:
        with os.fdopen(slave, "w") as terminal:
            m = ProgressMonitor(10, 0, None, "loss", 1.0, stream=terminal, mode="auto")
            assert m.mode == "bar"
            for done in range(1, 11):
                m.update(done, 0, 0.5)
        shown = _drain(master)
    finally:
        os.close(master)
    drawn = [part for part in shown.replace("\n", "\r").split("\r") if part]
    assert drawn and max(map(len, drawn)) <= 97  # the terminal's width
    assert "10/10" in shown


def _drain(master: int) -> str:
    """Everything written to a pseudo-terminal whose other end is closed."""
    chunks = []
    while True:
        try:
            chunk = os.read(master, 1 << 16)
        except OSError:  # EIO: nothing left, and no writer
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode()


def test_an_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="progress mode must be one of"):
        _monitor("fancy", io.StringIO())


# --- under mpiexec -------------------------------------------------------------------------------
def _run(cmd: list[str], cwd: Path) -> tuple[int, str, str]:
    proc = subprocess.run(
        cmd, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, timeout=TIMEOUT
    )
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


def _on_a_terminal(cmd: list[str], cwd: Path) -> str:
    """What a terminal running ``cmd`` shows (``\\r\\n`` ends its lines)."""
    if shutil.which("script") is None:
        pytest.skip("needs script (util-linux) to give mpiexec a terminal")
    rc, shown, err = _run(["script", "-qc", shlex.join(cmd), "/dev/null"], cwd)
    assert rc == 0, shown + err
    return shown


def _mpiexec(*args: str) -> list[str]:
    return ["mpiexec", "-n", "2", sys.executable, *args]


@pytest.mark.mpi
def test_forced_bar_under_mpiexec_writes_carriage_return_updates(tmp_path):
    (tmp_path / "monitor.py").write_text(MONITOR)
    rc, _, err = _run(_mpiexec("monitor.py", "bar"), tmp_path)
    assert rc == 0, err
    assert "mode bar" in err and err.count("\r") >= 5 and "5/5" in err


@pytest.mark.mpi
def test_auto_under_mpiexec_is_a_bar_on_a_terminal_and_lines_into_a_pipe(tmp_path):
    (tmp_path / "monitor.py").write_text(MONITOR)
    rc, _, err = _run(_mpiexec("monitor.py", "auto"), tmp_path)
    assert rc == 0, err
    assert "mode lines" in err and "\r" not in err
    assert err.count("5/5 evaluations, best loss 0.2, ") == 1

    shown = _on_a_terminal(_mpiexec("monitor.py", "auto"), tmp_path)
    assert "mode bar" in shown and shown.count("\r") > shown.count("\n") and "5/5" in shown

    piped = _on_a_terminal(
        ["sh", "-c", f"{shlex.join(_mpiexec('monitor.py', 'auto'))} 2>&1 | cat"], tmp_path
    )
    assert "mode lines" in piped  # cat reads the launcher's stderr, not a terminal: no bar


SEARCH = """
objective: objective.py:f
space: {x: {type: float, low: 0, high: 1}}
metric: loss
budget: {evaluations: 40}
islands: 2
seed: 4
"""


@pytest.mark.mpi
def test_a_run_under_mpiexec_shows_whole_lines(tmp_path):
    """The last progress line once, and the summary on a line of its own, with lines (a pipe)
    and with a bar (a terminal)."""
    (tmp_path / "objective.py").write_text("def f(params, trial):\n    return params['x']\n")
    (tmp_path / "search.yaml").write_text(SEARCH)
    rc, _, err = _run(_mpiexec("-c", _MAIN, "search.yaml"), tmp_path)
    assert rc == 0, err
    progress = [line for line in err.splitlines() if re.match(r"\d+/40 evaluations, ", line)]
    assert progress and len(set(progress)) == len(progress), err  # the last one not twice
    assert all(line.startswith("propagate: ") for line in err.splitlines() if line not in progress)

    shown = _on_a_terminal(_mpiexec("-c", _MAIN, "search.yaml", "--fresh"), tmp_path)
    assert "40/40" in shown
    lines = shown.split("\r\n")
    summary = [line for line in lines if "evaluations in" in line]
    assert len(summary) == 1 and summary[0].startswith("propagate: "), lines
    tops = [line for line in lines if "  loss " in line]
    assert len(tops) == 3 and all(line.startswith("  loss ") for line in tops), lines


@pytest.mark.mpi
def test_progress_bar_on_the_command_line_reaches_rank_0_with_the_final_count(tmp_path):
    """``--progress bar`` forces the live bar through mpiexec's pipes; its last update shows
    every worker's evaluations (the final counts arrive after the last publish)."""
    (tmp_path / "objective.py").write_text("def f(params, trial):\n    return params['x']\n")
    (tmp_path / "search.yaml").write_text(SEARCH)
    rc, _, err = _run(_mpiexec("-c", _MAIN, "search.yaml", "--progress", "bar"), tmp_path)
    assert rc == 0, err
    assert "\r" in err and "40/40" in err
    last = err.split("\r")[-1]
    assert "40/40" in last or "40/40" in err.split("\r")[-2]
