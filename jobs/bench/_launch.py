"""Shared by the benchmark drivers: run this file's ``--run`` half under mpiexec, get JSON back."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
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


def parse(
    parser: argparse.ArgumentParser, run: Callable[[argparse.Namespace], None]
) -> argparse.Namespace | None:
    """Parse a benchmark's arguments; under ``--run`` (the mpiexec half) run it and return None."""
    parser.add_argument("--run", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        run(args)
        return None
    return args
