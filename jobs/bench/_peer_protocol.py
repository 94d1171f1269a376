"""How ``quality.py`` hands runs to a tool's runner process and gets results back, one by one.

The driver writes the runs (:class:`Job`) to a JSON file and starts the runner (under
``mpiexec`` or alone); the runner appends one JSON line per finished run to an output file,
which the driver follows (:func:`stream`), so every finished run is cached at once and an
interrupted benchmark continues where it stopped. Standard library only: the runners also
run in the peers' virtual environment.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

_POLL_S = 1.0


@dataclass(frozen=True)
class Job:
    """One run: ``tool`` on ``problem`` with ``budget`` evaluations in total and ``seed``."""

    tool: str
    problem: str
    budget: int
    seed: int

    @property
    def key(self) -> str:
        """The run's key in the results file."""
        return f"{self.tool}|{self.problem}|{self.budget}|{self.seed}"


def outcome(keys: Sequence[str], values: Sequence[float]) -> dict[str, Any]:
    """What is kept of a run: best value, evaluations, duplicates and failures.

    Args:
        keys: each evaluation's canonical params (``Problem.key``), in any order.
        values: each evaluation's value (NaN or inf for a failed one).

    Returns:
        ``best`` (the smallest finite value, None if there is none), ``evaluations``,
        ``duplicates`` (evaluations whose params equal an earlier one's: evaluations minus
        distinct points, which does not depend on the order) and ``failed``.
    """
    finite = [v for v in values if math.isfinite(v)]
    return {
        "best": min(finite) if finite else None,
        "evaluations": len(keys),
        "duplicates": len(keys) - len(set(keys)),
        "failed": len(values) - len(finite),
    }


def runner_args(extra: Sequence[str] = ()) -> argparse.Namespace:
    """A runner's command line: ``--jobs FILE --out FILE`` plus the named ``extra`` options."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    for name in extra:
        parser.add_argument(name)
    return parser.parse_args()


def read_jobs(path: Path) -> list[Job]:
    """The runs the driver wrote to ``path``."""
    return [Job(**j) for j in json.loads(path.read_text())]


def prefixed(jobs: Sequence[Job]) -> list[tuple[Job, list[Job]]]:
    """The runs to make: per tool, problem and seed the largest budget, with the jobs of
    smaller budgets to read off its first evaluations (in the order they started). A run's
    first ``n`` evaluations are a run of budget ``n`` for every tool here: none of them
    breeds differently for a larger budget, and each evaluation started on what the ones
    before it left."""
    groups: dict[tuple[str, str, int], list[Job]] = {}
    for job in jobs:
        groups.setdefault((job.tool, job.problem, job.seed), []).append(job)
    out = []
    for group in groups.values():
        group.sort(key=lambda j: j.budget, reverse=True)
        out.append((group[0], group[1:]))
    return out


def emit(out: Path, job: Job, result: dict[str, Any], seconds: float) -> None:
    """Append one finished run to the runner's output (one line, flushed at once)."""
    line = json.dumps({"job": asdict(job), **result, "seconds": round(seconds, 3)})
    with out.open("a") as f:
        f.write(line + "\n")


def stream(cmd: Sequence[str], jobs: Sequence[Job], env: dict[str, str]) -> Iterator[dict]:
    """Run ``cmd --jobs FILE --out FILE`` and yield each finished run as the runner emits it.

    The runner runs in its own process group, which is killed if the caller stops early
    (Ctrl-C); a runner that fails raises ``subprocess.CalledProcessError`` after the runs it
    finished have been yielded.
    """
    with tempfile.TemporaryDirectory(prefix="quality-") as tmp:
        job_file, out = Path(tmp) / "jobs.json", Path(tmp) / "out.jsonl"
        job_file.write_text(json.dumps([asdict(j) for j in jobs]))
        out.touch()
        full = [*cmd, "--jobs", str(job_file), "--out", str(out)]
        proc = subprocess.Popen(full, env=env, start_new_session=True)
        try:
            with out.open() as lines:
                yield from _follow(lines, proc)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if proc.returncode:
            raise subprocess.CalledProcessError(proc.returncode, full)


def _follow(lines: Any, proc: subprocess.Popen) -> Iterator[dict]:
    pending = ""
    while True:
        done = proc.poll() is not None  # read after the exit check: nothing is missed
        pending += lines.read()
        *complete, pending = pending.split("\n")
        for line in complete:
            yield json.loads(line)
        if done:
            return
        time.sleep(_POLL_S)
