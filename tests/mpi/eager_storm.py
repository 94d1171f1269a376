"""Every rank sends records above MPI's eager limit at the same moment (the test lowers the
limit): ``mpiexec -n N python eager_storm.py OUT RUN_DIR ISLANDS BUDGET GENES [SLOW]``; with
``SLOW`` seconds, rank 0's second evaluation sleeps that long (no MPI call) after it has sent
its first record.

Each rank writes ``OUT/rank{r}.json``: whether a one-record message went by rendezvous (ranks 0
and 1 check before the search), the search's counts, what the run store holds (rank 0), and
the rank's "mailbox closed" log line (leaders).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sys
import time
from pathlib import Path

import numpy as np
from log_lines import LogLines
from mpi4py import MPI

import propagator as pg

WORLD = MPI.COMM_WORLD
TICK = 0.01  # seconds: every evaluation ends on a multiple of it, on every rank at once
_calls: list[int] = []
_slow = [0.0]
_CLOSED = re.compile(r"mailbox closed: (\d+) messages sent, (\d+) received, (\d+) left")


def rendezvous(nbytes: int) -> bool:
    """Ranks 0 and 1: whether an ``Isend`` of ``nbytes`` stays incomplete while its receive
    is not posted (rendezvous) rather than completing at once (eager); None elsewhere."""
    data = np.zeros(nbytes, dtype=np.uint8)
    go = np.zeros(1, dtype=np.uint8)
    WORLD.Barrier()
    verdict = None
    if WORLD.rank == 0:
        request = WORLD.Isend([data, MPI.BYTE], 1, 7)
        until = time.perf_counter() + 0.05
        done = False
        while not done and time.perf_counter() < until:
            done = request.Test()
        WORLD.Send([go, MPI.BYTE], 1, 8)
        request.Wait()
        verdict = not done
    elif WORLD.rank == 1:
        WORLD.Recv([go, MPI.BYTE], 0, 8)
        WORLD.Recv([data, MPI.BYTE], 0, 7)
    WORLD.Barrier()
    return verdict


def storm(params: dict, trial: pg.Trial) -> dict:
    """A no-op that ends on the next tick of the wall clock, so that every rank finishes,
    and sends, at the same moment; with a large metrics dict for the final gather."""
    _calls.append(trial.id)
    if WORLD.rank == 0 and len(_calls) == 2:
        time.sleep(_slow[0])
    time.sleep(TICK - time.time() % TICK)
    return {"loss": float(params["x0"]) ** 2, **{f"m{i}": float(i) for i in range(64)}}


def main() -> None:
    out, run_dir = Path(sys.argv[1]), Path(sys.argv[2])
    islands, budget, genes = (int(a) for a in sys.argv[3:6])
    _slow[0] = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
    space = pg.Space({f"x{i}": pg.Float(-1, 1) for i in range(genes)})
    handler = LogLines()
    logger = logging.getLogger("propagate")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    row_bytes = genes * 8  # the genes alone: a record on the wire is larger
    data: dict = {"rendezvous": rendezvous(row_bytes)}
    migration = pg.Migration(probability=1.0, migrants=2, pollination=False)
    result = pg.search(
        storm,
        space,
        metric="loss",
        budget=budget,
        islands=islands,
        migration=migration if islands > 1 else None,
        strategy={"name": "ga", "population": 4},
        seed=7,
        run_dir=run_dir,
    )
    logger.removeHandler(handler)
    closed = [m.groups() for m in map(_CLOSED.search, handler.lines) if m]
    data.update(
        ids=sorted(result.rows["id"].tolist()),
        workers=result.rows["worker"].tolist(),
        start=result.rows["start"].tolist(),
        end=result.rows["end"].tolist(),
        info=result.info.__dict__,
        metrics=len(result.records[0].metrics),
        digest=hashlib.sha256(result.rows.tobytes()).hexdigest(),
        closed=[int(n) for n in closed[0]] if closed else None,
        warnings=[line for line in handler.lines if "in flight" in line],
        stored=sorted(pg.load(run_dir).rows["id"].tolist()) if WORLD.rank == 0 else None,
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank{WORLD.rank}.json").write_text(json.dumps(data))


if __name__ == "__main__":
    main()
