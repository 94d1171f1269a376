"""Start-up: seconds from ``mpiexec`` to each rank's first evaluation (issue 17, item 5).

    python jobs/bench/startup.py                      # 2, 8, 32, 64, 128 ranks, 1 island
    python jobs/bench/startup.py --ranks 2 8 --islands half --repeat 3

Each size runs ``mpiexec -n N propagate search.yaml`` on a generated search file whose
objective writes the wall time of its first call on every rank and then sleeps 0.5 s (so
every worker gets an evaluation). Beside it, the same ``mpiexec`` of a bare Python that only
imports mpi4py and initialises MPI: what the launcher and MPI cost before propagate does
anything. Prints, per size, the median and the last rank's first evaluation and the bare
baseline's median and last rank (seconds after ``mpiexec`` started; medians over repeats).
Oversubscribed on a small machine, the numbers grow with ranks per core: compare the columns,
not the machines.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

OBJECTIVE = """
import os, time

_seen = False


def first(params, trial):
    global _seen
    if not _seen:
        _seen = True
        rank = os.environ.get("PMI_RANK") or os.environ.get("OMPI_COMM_WORLD_RANK") or "0"
        with open(os.path.join({out!r}, f"rank-{{rank}}"), "w") as f:
            f.write(repr(time.time()))
        time.sleep(0.5)
    return params["x"] ** 2
"""

BARE = """
import os, sys, time
from mpi4py import MPI
rank = MPI.COMM_WORLD.rank
with open(os.path.join(sys.argv[1], f"rank-{rank}"), "w") as f:
    f.write(repr(time.time()))
"""


def _times(out: Path, t0: float, ranks: int) -> list[float]:
    files = sorted(out.glob("rank-*"))
    if len(files) != ranks:
        raise RuntimeError(f"{len(files)} of {ranks} ranks wrote their time in {out}")
    return sorted(float(f.read_text()) - t0 for f in files)


def _launch(cmd: list[str], out: Path, ranks: int, timeout: float) -> list[float]:
    t0 = time.time()
    done = subprocess.run(cmd, timeout=timeout, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr}")
    return _times(out, t0, ranks)


def _propagate(tmp: Path, ranks: int, islands: int, timeout: float) -> list[float]:
    out = tmp / "first"
    out.mkdir()
    (tmp / "objective.py").write_text(OBJECTIVE.format(out=str(out)))
    (tmp / "search.yaml").write_text(
        textwrap.dedent(
            f"""\
            objective: objective.py:first
            space: {{x: {{type: float, low: -1, high: 1}}}}
            budget: {2 * ranks}
            islands: {islands}
            strategy: ga
            seed: 0
            """
        )
    )
    cmd = ["mpiexec", "-n", str(ranks), "propagate", str(tmp / "search.yaml"), "--progress", "none"]
    return _launch(cmd, out, ranks, timeout)


def _bare(tmp: Path, ranks: int, timeout: float) -> list[float]:
    out = tmp / "bare"
    out.mkdir()
    (tmp / "bare.py").write_text(BARE)
    cmd = ["mpiexec", "-n", str(ranks), sys.executable, str(tmp / "bare.py"), str(out)]
    return _launch(cmd, out, ranks, timeout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, nargs="+", default=[2, 8, 32, 64, 128])
    parser.add_argument("--islands", choices=["one", "half"], default="one")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    print("ranks  first eval: median  last  | bare MPI init: median  last   (s after mpiexec)")
    for n in args.ranks:
        islands = 1 if args.islands == "one" else max(1, n // 2)
        ours, bare = [], []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                ours.append(_propagate(Path(tmp), n, islands, args.timeout))
            with tempfile.TemporaryDirectory() as tmp:
                bare.append(_bare(Path(tmp), n, args.timeout))
        med = statistics.median
        print(
            f"{n:5d}  {med(statistics.median(t) for t in ours):17.2f}  "
            f"{med(t[-1] for t in ours):5.2f} | {med(statistics.median(t) for t in bare):20.2f}  "
            f"{med(t[-1] for t in bare):5.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
