"""Termination stress: many short searches with random evaluation times; none may hang.

    python jobs/bench/stress_termination.py [--runs 200] [--ranks 8]

Each run is ``tests/mpi/scenarios.py termination`` (2 islands or 1, random sleeps up to 20 ms,
a budget drawn per run) under ``mpiexec`` with a 60 s timeout; the script counts runs that
finished with exactly the budget, unique ids and the same result on every rank.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

SCENARIOS = Path(__file__).parents[2] / "tests" / "mpi" / "scenarios.py"


def one(ranks: int, budget: int, islands: int, out: Path) -> str:
    cmd = ["mpiexec", "-n", str(ranks), sys.executable, str(SCENARIOS), "termination", str(out)]
    try:
        subprocess.run(
            [*cmd, str(budget), "0.02", str(islands)], check=True, timeout=60, capture_output=True
        )
    except subprocess.TimeoutExpired:
        return "hang"
    except subprocess.CalledProcessError:
        return "error"
    ranks_data = [json.loads((out / f"rank{r}.json").read_text()) for r in range(ranks)]
    ids = ranks_data[0]["ids"]
    ok = sorted(ids) == list(range(budget)) and len({d["digest"] for d in ranks_data}) == 1
    return "ok" if ok else "wrong"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--ranks", type=int, default=8)
    args = parser.parse_args()
    rng = random.Random(0)
    counts: dict[str, int] = {}
    for i in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            outcome = one(args.ranks, rng.randint(1, 300), rng.choice([1, 2]), Path(tmp))
        counts[outcome] = counts.get(outcome, 0) + 1
        if outcome != "ok":
            print(f"run {i}: {outcome}", flush=True)
    print(f"{args.runs} runs on {args.ranks} ranks: {counts}")


if __name__ == "__main__":
    main()
