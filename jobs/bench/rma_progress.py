"""RMA progress while a window's host evaluates (issue 17, item 3): the stall and the cost.

    python jobs/bench/rma_progress.py                  # both experiments, every variant
    python jobs/bench/rma_progress.py --only stall     # or --only cost

Variants: ``before`` (no progress thread, as before the fix), ``thread`` (the engine's
progress thread, :mod:`propagator.engine.comm.progress`, where it starts by itself),
``thread-forced`` (also between ranks of one node, to price it where it is not needed) and
``async`` (MPICH's own progress thread, ``MPIR_CVAR_ASYNC_PROGRESS=1``, ours off).

stall: 4 ranks, the GA, de-duplication on, 400 evaluations; rank 0's first evaluation sleeps
``--block`` seconds without MPI calls, every other one 10 ms. Counts the evaluations ranks
1-3 complete during that sleep, through shared memory and through MPICH's network path
(``MPIR_CVAR_NOLOCAL=1``, as between nodes).

cost: a no-op objective, the GA, ``--evaluations`` evaluations on 2 and 8 ranks: evaluations/s
and the CPU seconds of all ranks per 1,000 evaluations. Variants alternate, ``--repeats``
rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _launch import parse

NETWORK = {"MPIR_CVAR_NOLOCAL": "1"}
ASYNC = {"MPIR_CVAR_ASYNC_PROGRESS": "1"}


def _apply(variant: str) -> None:
    """Switch the engine's progress thread as ``variant`` says (in the ``--run`` half)."""
    import propagator.engine.run as engine_run
    from propagator.engine.comm import progress

    if variant in ("before", "async"):
        engine_run.start_progress = lambda comm, hosting: None  # type: ignore[assignment]
    elif variant == "thread-forced":
        progress._has_remote_ranks = lambda comm: True  # type: ignore[assignment]


def _run(args: argparse.Namespace) -> None:
    _apply(args.variant)
    from mpi4py import MPI

    import propagator as pg

    comm = MPI.COMM_WORLD
    block = [comm.rank != 0 or args.block <= 0]
    block_cpu = [0.0]  # CPU seconds rank 0's process (all its threads) spent while it blocked

    def objective(params: dict) -> float:
        if not block[0]:
            block[0] = True
            cpu = time.process_time()
            time.sleep(args.block)
            block_cpu[0] = time.process_time() - cpu
        elif args.block > 0:
            time.sleep(0.01)
        return params["x"] ** 2 + params["y"] ** 2

    space = {"x": pg.Float(-1, 1), "y": pg.Float(-1, 1)}
    comm.Barrier()
    started, cpu = time.perf_counter(), time.process_time()
    result = pg.search(objective, space, budget=args.evaluations, strategy="ga", seed=1)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    cpus = comm.gather(cpu)
    if comm.rank == 0:
        rows = result.rows
        w, s, e = rows["worker"], rows["start"], rows["end"]
        first = s[w == 0].argmin()
        t0, t1 = s[w == 0][first], e[w == 0][first]
        during = int(((w != 0) & (e > t0) & (e <= t1)).sum())
        out = {"n": len(result), "wall": wall, "cpu": sum(cpus), "during": during}
        out["block_cpu"] = block_cpu[0]
        Path(args.out).write_text(json.dumps(out))


def _launch(ranks: int, variant: str, env: dict[str, str], extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        cmd = ["mpiexec", "-n", str(ranks), sys.executable, __file__, "--run"]
        cmd += ["--variant", variant, *extra, "--out", str(out)]
        full = {**os.environ, "OMP_NUM_THREADS": "1", **env}
        full.update(ASYNC if variant == "async" else {})
        subprocess.run(cmd, check=True, timeout=600, env=full, stdout=subprocess.DEVNULL)
        return json.loads(out.read_text())


def _stall(args: argparse.Namespace) -> None:
    print(
        f"stall: 4 ranks, rank 0 blocks {args.block:g} s; evaluations by ranks 1-3 meanwhile, "
        "and the CPU rank 0's process used meanwhile"
    )
    for path, env in (("shared memory", {}), ("network (NOLOCAL)", NETWORK)):
        for variant in ("before", "thread", "async"):
            r = _launch(4, variant, env, ["--block", str(args.block), "--evaluations", "400"])
            cpu = r["block_cpu"]
            print(
                f"  {path:18s} {variant:8s} {r['during']:4d} of {r['n'] - 1}, "
                f"{1e3 * cpu:6.1f} ms CPU ({100 * cpu / args.block:.2f} % of a core)"
            )


def _cost(args: argparse.Namespace) -> None:
    n = args.evaluations
    print(f"cost: no-op objective, the GA, {n} evaluations (evaluations/s, CPU s per 1,000)")
    for path, env in (("shared memory", {}), ("network (NOLOCAL)", NETWORK)):
        for ranks in (2, 8):
            rates: dict[str, list[tuple[float, float]]] = {}
            for _ in range(args.repeats):
                for variant in ("before", "thread", "thread-forced", "async"):
                    r = _launch(ranks, variant, env, ["--block", "0", "--evaluations", str(n)])
                    rates.setdefault(variant, []).append((r["n"] / r["wall"], 1e3 * r["cpu"] / n))
            for variant, runs in rates.items():
                shown = ", ".join(f"{rate:7.0f}/s {cpu:5.2f} s" for rate, cpu in runs)
                rate, cpu = (statistics.median(x) for x in zip(*runs, strict=True))
                print(
                    f"  {path:18s} {ranks} ranks {variant:13s} median {rate:7.0f}/s "
                    f"{cpu:5.3f} s; runs: {shown}"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=("stall", "cost"))
    parser.add_argument("--block", type=float, default=8.0, help="seconds rank 0 blocks")
    parser.add_argument("--evaluations", type=int, default=20_000, help="cost: evaluations")
    parser.add_argument("--repeats", type=int, default=2, help="cost: rounds of variants")
    parser.add_argument("--variant", default="thread", help=argparse.SUPPRESS)
    args = parse(parser, _run)
    if args is None:
        return
    if args.only in (None, "stall"):
        _stall(args)
    if args.only in (None, "cost"):
        _cost(args)


if __name__ == "__main__":
    main()
