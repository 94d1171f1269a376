"""A TPE search whose workers announce their candidates in flight:
``mpiexec -n N python pending.py OUT``.

Each rank writes ``OUT/rank{r}.json``: the result's ids and workers, its traffic counts, the
wire record's size, how many peers' candidates the rank's leader heard in flight and its
"mailbox closed" counts.
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
_HEARD = re.compile(r"heard (\d+) of its peers' candidates")
BUDGET = 48


def bowl(params: dict) -> float:
    """5 ms without CPU (the workers' evaluations overlap), then a bowl."""
    time.sleep(0.005)
    return (params["x"] - 0.3) ** 2 + (params["c"] != "a")


def main() -> None:
    handler = LogLines()
    logger = logging.getLogger("propagate")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    space = pg.Space({"x": pg.Float(0.0, 1.0), "c": pg.Categorical(["a", "b", "c"])})
    result = pg.search(
        bowl, space, budget=BUDGET, strategy={"name": "tpe", "startup": 4, "pending": True}, seed=3
    )
    logger.removeHandler(handler)
    closed = [m.groups() for m in map(_CLOSED.search, handler.lines) if m]
    heard = [int(m.group(1)) for m in map(_HEARD.search, handler.lines) if m]
    data = {
        "budget": BUDGET,
        "ids": result.rows["id"].tolist(),
        "workers": result.rows["worker"].tolist(),
        "info": result.info.__dict__,
        "itemsize": wire_dtype(space.dim).itemsize,
        "heard": sum(heard),
        "closed": [int(n) for n in closed[0]] if closed else None,
    }
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank{MPI.COMM_WORLD.rank}.json").write_text(json.dumps(data))


if __name__ == "__main__":
    main()
