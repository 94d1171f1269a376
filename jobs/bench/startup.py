"""Start-up: seconds from ``mpiexec`` to each rank's first evaluation (issue 17, item 5).

    python jobs/bench/startup.py                      # 2, 8, 32, 64, 128 ranks, 1 island
    python jobs/bench/startup.py --ranks 2 8 --islands half --repeat 3
    python jobs/bench/startup.py --base /tmp/startup_base --repeat 3   # A/B against a tree

Each size runs ``mpiexec -n N propagate search.yaml`` on a generated search file whose
objective writes, on every rank, the wall time of its first call and the CPU seconds (user +
system) its process has used so far; each call sleeps 0.5 s and the budget is 4 evaluations a
rank, so that every worker gets one even when some start 2 s after the others. Beside it, the
same ``mpiexec`` of a bare Python that only imports mpi4py and initialises MPI: what the
launcher and MPI cost before propagate does anything. With ``--base TREE``, the same search
also runs with ``PYTHONPATH=TREE`` (e.g. a ``git worktree`` of an older commit), in turn with
this tree: new, base, bare, new, base, bare, ...

Prints, per size and variant, the median and the last rank's first evaluation (seconds after
``mpiexec`` started) and the median rank's CPU seconds by then, each the median over the
repeats, and the 1-minute load average before the size started. Oversubscribed on a small
machine, the wall times grow with ranks per core: compare the columns, not the machines. The
CPU seconds per rank are what every rank repeats, and the least noisy figure.

This machine's environment sets ``PYTHONDONTWRITEBYTECODE=1``: every rank then compiles
propagate's ~100 modules from source at each start (an installed package has its bytecode).
``--bytecode`` runs every variant with a bytecode cache instead (``PYTHONPYCACHEPREFIX`` in a
temporary directory, filled by one warm-up run of each variant).

Measured 2026-12-07 on this 2-core machine, shared with other benchmarks (the load column:
the 1-minute load average before each size; it was 25-120), 1 island, ``strategy: ga``,
medians of 3 repeats interleaved; base = e5ba6cf, new = this tree (moocore, jsonschema and
the dashboard's wsgiref imported where used; under a launcher the schema checked on rank 0
only; the world communicator duplicated with a polled Idup; agree's error broadcast polled):

    python jobs/bench/startup.py --base /tmp/startup_base --repeat 3

    ranks  run     median    last  CPU/rank   load
        2  new       2.52    2.52      0.95    75.2
        2  base      3.33    3.33      1.10
        2  bare      0.49    0.49      0.17
        8  new       7.41    7.42      1.09    44.0
        8  base      7.80    7.81      1.17
        8  bare      1.11    1.14      0.15
       32  new      17.03   17.04      0.88    24.8
       32  base     20.66   20.70      1.08
       32  bare      3.47    3.53      0.17
       64  new      40.80   40.85      1.11    39.0
       64  base     50.04   50.08      1.10
       64  bare      8.55    9.16      0.24
      128  new      68.96   69.15      1.01   117.5
      128  base     72.66   72.84      1.07
      128  bare     17.21   18.14      0.23

With a bytecode cache (what an installed package has), 2 repeats:

    python jobs/bench/startup.py --base /tmp/startup_base --repeat 2 --bytecode \
        --ranks 2 8 32 128

    ranks  run     median    last  CPU/rank   load
        2  new       4.32    4.32      0.66    19.0
        2  base      6.03    6.03      0.93
        2  bare      0.96    0.96      0.14
        8  new       7.75    7.76      0.74    17.0
        8  base      7.61    7.61      0.77
        8  bare      1.55    1.56      0.14
       32  new      14.38   14.42      0.69    17.4
       32  base     18.59   18.63      0.89
       32  bare      4.27    4.34      0.20
      128  new      62.02   62.26      0.85    34.5
      128  base     77.73   77.97      1.01
      128  bare     25.53   26.93      0.29

The CPU the median rank spends before its first evaluation falls by 0.03-0.27 s in every row
but one (64 ranks without bytecode: equal); the last rank's first evaluation comes 0.77x-0.95x
as late at 32-128 ranks; at 2 ranks 0.72x-0.76x; at 8 ranks the two are within the noise. The
load of the other benchmarks moved every figure by tens of percent between sizes: read the
rows of one size together.

Where the rest goes (``python -X importtime``, one rank, with a bytecode cache): numpy
~190 ms of CPU, mpi4py and MPI_Init ~90-150 ms, h5py ~40 ms (every worker writes its own
HDF5 file 2 s into the run, so it stays), yaml ~20 ms, propagate's own modules ~100-150 ms.
Every rank's set-up collectives that MPICH cannot do asleep (the two ``Win.Allocate`` of the
ticket counter and the claim tables, the progress check's ``Split_type``) cost 0.2-2 s each
at 64-128 ranks here, as the waiting ranks spin; merging the two windows would save one. With
the default strategy (the portfolio with its CMA-ES member), every leader's ``import cmaes``
imported ``scipy.stats``: about 1.1 s of CPU and 70 MB per rank, more than all of the above
together. Since 1c8acb7 cmaes is imported without it (the package's own normal CDF and
chi-squared quantile, which agree with scipy's to 1e-9 relative:
``tests/test_cmaes_library.py``). Measured 2026-12-08 (load 13-19, another benchmark
running; base = 2ffd108, new = 1c8acb7, medians of 2 repeats):

    python jobs/bench/startup.py --strategy default --base /tmp/snapA --ranks 2 8 32 --repeat 2

    ranks  run     median    last  CPU/rank   load
        2  new       4.13    4.13      0.75    13.5
        2  base     10.61   10.61      1.87
        2  bare      0.68    0.68      0.11
        8  new       6.83    6.85      0.68    15.7
        8  base     16.64   16.66      1.77
        8  bare      1.06    1.07      0.12
       32  new      19.25   19.32      0.86    19.1
       32  base     43.15   43.18      2.01
       32  bare      2.96    3.12      0.12

With the default strategy each rank now spends 0.40-0.43x the CPU before its first
evaluation, and the last rank starts 0.39-0.45x as late.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
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
            f.write(f"{{time.time()!r}} {{sum(os.times()[:2])!r}}")
    time.sleep(0.5)
    return params["x"] ** 2
"""

BARE = """
import os, sys, time
from mpi4py import MPI
rank = MPI.COMM_WORLD.rank
with open(os.path.join(sys.argv[1], f"rank-{rank}"), "w") as f:
    f.write(f"{time.time()!r} {sum(os.times()[:2])!r}")
"""


@dataclass
class Launch:
    """One ``mpiexec`` of a variant: every rank's first evaluation (s after ``mpiexec``)
    and CPU seconds by then, in rank order of the first."""

    first: list[float]
    cpu: list[float]


def _read(out: Path, t0: float, ranks: int) -> Launch:
    files = sorted(out.glob("rank-*"))
    if len(files) != ranks:
        raise RuntimeError(f"{len(files)} of {ranks} ranks wrote their time in {out}")
    pairs = sorted(tuple(map(float, f.read_text().split())) for f in files)
    return Launch([t - t0 for t, _ in pairs], [c for _, c in pairs])


def _launch(cmd: list[str], env: dict[str, str], out: Path, n: int, timeout: float) -> Launch:
    t0 = time.time()
    done = subprocess.run(cmd, env=env, timeout=timeout, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr}")
    return _read(out, t0, n)


def _propagate(tmp: Path, n: int, args: argparse.Namespace, env: dict[str, str]) -> Launch:
    out = tmp / "first"
    islands = 1 if args.islands == "one" else max(1, n // 2)
    strategy = "" if args.strategy == "default" else f"strategy: {args.strategy}"
    out.mkdir()
    (tmp / "objective.py").write_text(OBJECTIVE.format(out=str(out)))
    (tmp / "search.yaml").write_text(
        textwrap.dedent(
            f"""\
            objective: objective.py:first
            space: {{x: {{type: float, low: -1, high: 1}}}}
            budget: {4 * n}
            islands: {islands}
            seed: 0
            {strategy}
            """
        )
    )
    cmd = ["mpiexec", "-n", str(n), "propagate", str(tmp / "search.yaml"), "--progress", "none"]
    return _launch(cmd, env, out, n, args.timeout)


def _bare(tmp: Path, n: int, env: dict[str, str], timeout: float) -> Launch:
    out = tmp / "bare"
    out.mkdir()
    (tmp / "bare.py").write_text(BARE)
    cmd = ["mpiexec", "-n", str(n), sys.executable, str(tmp / "bare.py"), str(out)]
    return _launch(cmd, env, out, n, timeout)


def _envs(base: str | None, bytecode: Path | None) -> dict[str, dict[str, str]]:
    """The environment of each variant: this tree, ``base`` (if any), the bare baseline."""
    env = dict(os.environ)
    if bytecode is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    variants = {"new": dict(env), "bare": dict(env)}
    if base is not None:
        variants["base"] = {**env, "PYTHONPATH": base}
    for name, variant in variants.items():
        if bytecode is not None:  # one cache per variant: the trees' modules share names
            variant["PYTHONPYCACHEPREFIX"] = str(bytecode / name)
    return variants


def _run(name: str, n: int, args: argparse.Namespace, env: dict[str, str]) -> Launch:
    with tempfile.TemporaryDirectory() as tmp:
        if name == "bare":
            return _bare(Path(tmp), n, env, args.timeout)
        return _propagate(Path(tmp), n, args, env)


def _row(n: int, name: str, runs: list[Launch], load: float) -> str:
    med = statistics.median
    first = med(med(r.first) for r in runs)
    last = med(r.first[-1] for r in runs)
    cpu = med(med(r.cpu) for r in runs)
    return f"{n:5d}  {name:5s} {first:8.2f} {last:7.2f} {cpu:9.2f}   {load:5.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, nargs="+", default=[2, 8, 32, 64, 128])
    parser.add_argument("--islands", choices=["one", "half"], default="one")
    parser.add_argument(
        "--strategy", default="ga", help="the search file's strategy (default ga; default: none)"
    )
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--base", help="a tree to compare with (run with PYTHONPATH=BASE)")
    parser.add_argument("--bytecode", action="store_true", help="with a bytecode cache")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        envs = _envs(args.base, Path(cache) if args.bytecode else None)
        for name, env in envs.items():  # warm-up: fills the bytecode cache, the file cache
            _run(name, 2, args, env)
        print("first evaluation, s after mpiexec: median and last rank; CPU s of the median rank")
        print("ranks  run     median    last  CPU/rank   load")
        for n in args.ranks:
            load = os.getloadavg()[0]
            runs: dict[str, list[Launch]] = {name: [] for name in envs}
            for _ in range(args.repeat):
                for name, env in envs.items():
                    runs[name].append(_run(name, n, args, env))
            for name, launches in runs.items():
                print(_row(n, name, launches, load), flush=True)


if __name__ == "__main__":
    main()
