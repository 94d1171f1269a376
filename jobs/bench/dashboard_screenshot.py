"""docs/dashboard.png: ``propagate dashboard`` on a running search, as headless Chromium shows it.

    python jobs/bench/dashboard_screenshot.py [--out docs/dashboard.png]

Starts a search in the background (``mpiexec -n 2``, 2 islands, an objective that reports a
learning curve of 5 steps in about 0.1 s, some evaluations pruned and some failed), waits
until ``--after`` evaluations have landed, serves the run with ``propagate dashboard`` on a
free port, and has Chromium (``/usr/bin/chromium``) take a screenshot of the study's page.
The helpers (the search, the dashboard, the browser) serve tests/test_dashboard.py too.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# the propagate command, as its console script runs it
PROPAGATE = [
    sys.executable,
    "-c",
    "import sys; from propagator._entry import main; sys.exit(main())",
]
OBJECTIVE = """
import time

import propagator as pg


def f(params, trial):
    loss = (params["lr"] - 0.01) ** 2 * 1e4 + 0.1 * params["layers"]
    for step in range(5):
        time.sleep({delay} / 5)
        trial.report(step, loss * (5 - step))
        if step == 2 and params["act"] == "sigmoid" and params["layers"] > 3:
            raise pg.Pruned
    if params["lr"] > 0.08:
        raise RuntimeError("diverged")
    return loss
"""
SEARCH = """
objective: objective.py:f
space:
  lr: {{type: float, low: 0.0001, high: 0.1, log: true}}
  layers: {{type: int, low: 1, high: 6}}
  act: {{type: categorical, choices: [relu, tanh, sigmoid]}}
metric: loss
budget: {{evaluations: {evaluations}}}
islands: 2
strategy: ga
seed: 1
run_dir: {run_dir}
"""


def find_chromium() -> str | None:
    """The Chromium (or Chrome) program on PATH, or ``None``."""
    names = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
    return next((path for path in map(shutil.which, names) if path), None)


def start_search(root: Path, evaluations: int, delay: float = 0.1) -> tuple[subprocess.Popen, Path]:
    """A search of ``evaluations`` evaluations of about ``delay`` seconds each on 2 ranks,
    running in the background; returns the ``mpiexec`` process and the run directory."""
    root.mkdir(parents=True, exist_ok=True)
    run_dir = root / "live-search"
    (root / "objective.py").write_text(OBJECTIVE.format(delay=delay))
    search = root / "search.yaml"
    search.write_text(SEARCH.format(evaluations=evaluations, run_dir=run_dir))
    cmd = ["mpiexec", "-n", "2", *PROPAGATE, str(search), "--progress", "none"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    return proc, run_dir


def wait_for_records(run_dir: Path, n: int, timeout: float = 120) -> int:
    """Wait until ``run_dir`` holds at least ``n`` evaluations; returns how many it holds.

    Raises:
        TimeoutError: it holds fewer after ``timeout`` seconds.
    """
    import propagator as pg

    deadline = time.monotonic() + timeout
    while True:
        held = len(pg.load(run_dir)) if (run_dir / "run.h5").exists() else 0
        if held >= n:
            return held
        if time.monotonic() > deadline:
            raise TimeoutError(f"{run_dir} holds {held} evaluations after {timeout} s, not {n}")
        time.sleep(0.2)


def start_dashboard(run_dir: Path, timeout: float = 60) -> tuple[subprocess.Popen, str]:
    """``propagate dashboard RUN_DIR --port 0`` in the background; returns the process and
    the dashboard's address (from the line it prints)."""
    proc = subprocess.Popen(
        [*PROPAGATE, "dashboard", str(run_dir), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = _first_line(proc, timeout)
    url = re.search(r"http://\S+", line)
    if url is None:
        stop(proc)
        raise RuntimeError(f"propagate dashboard said {line!r}; stderr: {proc.stderr.read()}")
    return proc, url.group(0)


def _first_line(proc: subprocess.Popen, timeout: float) -> str:
    """The first line ``proc`` prints, or what it printed when it ended or ``timeout`` passed."""
    import selectors

    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            return ""
    return proc.stdout.readline()


def browse(chromium: str, url: str, *flags: str, budget_ms: int = 10_000) -> str:
    """Load ``url`` in headless Chromium (a fresh profile) with ``flags`` and ``budget_ms``
    milliseconds of the page's own time; returns what Chromium printed (``--dump-dom``: the
    page as rendered)."""
    with tempfile.TemporaryDirectory() as profile:
        cmd = [
            chromium,
            "--headless=new",
            "--no-sandbox",  # as root, Chromium runs only without its sandbox
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={budget_ms}",
            *flags,
            url,
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return done.stdout


def page_text(html: str) -> str:
    """The words a page shows: its DOM without styles, scripts and tags."""
    html = re.sub(r"<(style|script)\b.*?</\1>", " ", html, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def trials_page(chromium: str, url: str) -> str:
    """The words of the dashboard's trial list (``url``: the dashboard's ``.../dashboard/``)."""
    return page_text(browse(chromium, url + "studies/0/trials", "--dump-dom"))


def trials_shown(text: str) -> int | None:
    """How many trials the trial list whose words are ``text`` counts (``None``: no count)."""
    shown = re.search(r"(\d+) Trials", text)
    return int(shown.group(1)) if shown else None


def stop(proc: subprocess.Popen, timeout: float = 30) -> int:
    """Ctrl-C ``proc`` (its whole group if it leads one) and wait; kill it past ``timeout``.
    Returns its exit status."""
    if proc.poll() is not None:
        return proc.returncode
    group = os.getpgid(proc.pid) == proc.pid  # started in a session of its own
    _signal(proc, signal.SIGINT, group)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        _signal(proc, signal.SIGKILL, group)
        return proc.wait()


def _signal(proc: subprocess.Popen, sig: int, group: bool) -> None:
    if group:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    repo = Path(__file__).resolve().parents[2]
    parser.add_argument("--out", type=Path, default=repo / "docs" / "dashboard.png")
    parser.add_argument("--after", type=int, default=150, help="evaluations before the shot")
    args = parser.parse_args()
    chromium = find_chromium()
    if chromium is None:
        sys.exit("no chromium on PATH: apt-get install chromium")
    with tempfile.TemporaryDirectory() as tmp:
        search, run_dir = start_search(Path(tmp), evaluations=args.after * 3)
        try:
            wait_for_records(run_dir, args.after)
            dashboard, url = start_dashboard(run_dir)
            try:
                shot = ["--hide-scrollbars", "--window-size=1400,1800", f"--screenshot={args.out}"]
                browse(chromium, url + "studies/0", *shot, budget_ms=15_000)
            finally:
                stop(dashboard)
        finally:
            stop(search)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
