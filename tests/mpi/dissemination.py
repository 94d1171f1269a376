"""The same light search with ``dissemination: all`` and ``gossip``, then gossip on two
islands with migration (departures): ``mpiexec -n N python dissemination.py OUT``.

Each rank writes ``OUT/rank{r}.json``: per search, the ids of the result, its traffic counts,
the wire record's size, and the rank's "mailbox closed" log line (leaders).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from pathlib import Path

from log_lines import LogLines
from mpi4py import MPI

import propagator as pg
from propagator.engine.records import wire_dtype

_CLOSED = re.compile(r"mailbox closed: (\d+) messages sent, (\d+) received, (\d+) left")
BUDGET = 400


def sphere(params: dict) -> float:
    """2 ms without CPU (every record leaves in a batch of its own), then the sphere."""
    time.sleep(0.002)
    return params["x0"] ** 2 + params["x1"] ** 2


def one(dissemination: str, islands: int) -> dict:
    handler = LogLines()
    logger = logging.getLogger("propagate")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    space = pg.Space({"x0": pg.Float(-5, 5), "x1": pg.Float(-5, 5)})
    result = pg.search(
        sphere,
        space,
        budget=BUDGET,
        islands=islands,
        strategy="ga",
        migration={"probability": 1.0, "pollination": False},
        seed=11,
        dissemination=dissemination,
    )
    logger.removeHandler(handler)
    closed = [m.groups() for m in map(_CLOSED.search, handler.lines) if m]
    return {
        "ids": result.rows["id"].tolist(),
        "info": result.info.__dict__,
        "itemsize": wire_dtype(2).itemsize,
        "closed": [int(n) for n in closed[0]] if closed else None,
    }


def main() -> None:
    out = Path(sys.argv[1])
    data = {
        "all": one("all", 1),
        "gossip": one("gossip", 1),
        "gossip_islands": one("gossip", 2),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank{MPI.COMM_WORLD.rank}.json").write_text(json.dumps(data))


if __name__ == "__main__":
    main()
