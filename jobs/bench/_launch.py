"""Shared by the benchmark drivers: run this file's ``--run`` half under mpiexec, get JSON back."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path


def launch(
    script: str, ranks: int, args: list[str], python: str = sys.executable, timeout: float = 1800
) -> dict:
    """``mpiexec -n ranks python script --run ARGS --out FILE``; returns rank 0's JSON."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        cmd = ["mpiexec", "-n", str(ranks), python, script, "--run", *args, "--out", str(out)]
        subprocess.run(cmd, check=True, timeout=timeout)
        return json.loads(out.read_text())
