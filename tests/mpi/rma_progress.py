"""A search in which rank 0's objective blocks without MPI calls (``tests/test_rma_progress.py``).

    mpiexec -n N python rma_progress.py OUT BLOCK_SECONDS THREAD_LEVEL BUDGET

Rank 0 hosts the ticket counter and the island's claim table; its first evaluation sleeps
``BLOCK_SECONDS``, every other evaluation 10 ms. Each rank writes ``OUT/rank{r}.json``: the
warnings the engine logged on it, and on rank 0 the search's records (worker, start, end).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import mpi4py

mpi4py.rc.thread_level = sys.argv[3]  # before MPI starts
from log_lines import LogLines  # noqa: E402
from mpi4py import MPI  # noqa: E402

import propagator as pg  # noqa: E402


def main() -> None:
    out, block, budget = Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[4])
    rank = MPI.COMM_WORLD.rank
    blocked = [rank != 0]

    def objective(params: dict) -> float:
        if not blocked[0]:
            blocked[0] = True
            time.sleep(block)  # no MPI call on this rank meanwhile
        else:
            time.sleep(0.01)
        return params["x"] ** 2 + params["y"] ** 2

    warnings = LogLines(logging.WARNING)
    logging.getLogger("propagate").addHandler(warnings)
    space = {"x": pg.Float(-1, 1), "y": pg.Float(-1, 1)}
    result = pg.search(objective, space, budget=budget, strategy="ga", seed=5, deduplicate=True)
    data: dict = {"warnings": warnings.lines, "thread_level": MPI.Query_thread()}
    if rank == 0:
        rows = result.rows
        data["records"] = {k: rows[k].tolist() for k in ("worker", "start", "end")}
    (out / f"rank{rank}.json").write_text(json.dumps(data))


if __name__ == "__main__":
    main()
