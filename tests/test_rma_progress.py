"""RMA progress while a window's host runs its objective without MPI calls (issue 17, item 3).

Rank 0 hosts the ticket counter and the claim table; its first objective call sleeps
``BLOCK`` seconds. The other three workers must go on getting tickets and claims meanwhile,
through shared memory and through MPICH's network path (``MPIR_CVAR_NOLOCAL=1``, as between
nodes), where an atomic aimed at rank 0 completes only if something drives rank 0's progress.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from conftest import mpiexec_json

SCENARIO = Path(__file__).parent / "mpi" / "rma_progress.py"
BLOCK = 6.0  # seconds rank 0's first evaluation blocks
NETWORK = {"MPIR_CVAR_NOLOCAL": "1"}


def _run(
    tmp: Path, block: float, env: dict[str, str], thread_level: str, budget: int
) -> list[dict]:
    argv = [str(SCENARIO), str(tmp), str(block), thread_level, str(budget)]
    return mpiexec_json(4, argv, tmp, timeout=90, env=env)


@pytest.mark.mpi
@pytest.mark.parametrize(
    "env",
    # shared memory is the control (MPICH's atomics need no progress there): slow, for CI's time
    [
        pytest.param({}, id="shared-memory", marks=pytest.mark.slow),
        pytest.param(NETWORK, id="network"),
    ],
)
def test_workers_go_on_while_the_window_host_blocks(tmp_path, env):
    ranks = _run(tmp_path, BLOCK, env, "multiple", 400)
    records = ranks[0]["records"]
    assert len(records["worker"]) == 400
    rows = list(zip(records["worker"], records["start"], records["end"], strict=True))
    start, end = min((s, e) for w, s, e in rows if w == 0)  # rank 0's first evaluation
    assert end - start >= BLOCK
    during = [w for w, _, e in rows if w != 0 and start < e <= end]
    # Unblocked, the three other workers spend the rest of the budget meanwhile (399 here);
    # stalled on rank 0's windows, each finishes at most the evaluation it had begun.
    assert len(during) >= 50, f"{len(during)} evaluations by ranks 1-3 while rank 0 blocked"
    assert all(r["warnings"] == [] for r in ranks)


@pytest.mark.mpi
def test_without_thread_multiple_the_search_runs_and_says_progress_is_up_to_mpi(tmp_path):
    ranks = _run(tmp_path, 0.0, NETWORK, "serialized", 40)
    assert len(ranks[0]["records"]["worker"]) == 40
    assert [r["thread_level"] for r in ranks] == [2] * 4  # MPI_THREAD_SERIALIZED
    (warning,) = ranks[0]["warnings"]
    assert "MPI_THREAD_MULTIPLE" in warning and "MPIR_CVAR_ASYNC_PROGRESS=1" in warning
    assert all(r["warnings"] == [] for r in ranks[1:])  # only window hosts need progress


def test_the_progress_thread_pokes_until_stopped():
    from mpi4py import MPI

    from propagator.engine.comm.progress import ProgressThread

    thread = ProgressThread(MPI.COMM_SELF, period=0.001)
    deadline = time.monotonic() + 30
    while thread.pokes < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    thread.stop()
    assert thread.pokes >= 3
    assert not any(t.name == "propagate-mpi-progress" for t in threading.enumerate())


def test_no_progress_thread_where_every_rank_shares_the_node():
    from mpi4py import MPI

    from propagator.engine.comm.progress import start_progress

    assert start_progress(MPI.COMM_SELF, hosting=True) is None
