"""A data-parallel trainer (baseline, daso, oialr, ab, easgd) paused after an epoch and resumed
from its checkpoints goes on exactly as if it had never been paused: the resumed run reports
the uninterrupted run's values at every epoch and returns its metrics (all but the wall-clock
``train_time``), compared with ``==``, on one rank in-process and on two under ``mpiexec``.
A trial that is not resumed ignores a checkpoint left for its id.

The runs themselves are in ``tests/mpi/checkpoint_trainers.py`` (its cases say which state
each one exercises); the comparisons are exact because every run of a case takes the same
steps in the same order on one thread per rank.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import mpiexec_json
from mpi4py import MPI

from propagator.engine.evaluation import PAUSED_PREFIX

sys.path.insert(0, str(Path(__file__).parent / "mpi"))
import checkpoint_trainers as driver

DRIVER = Path(__file__).parent / "mpi" / "checkpoint_trainers.py"
ROOT = Path(__file__).resolve().parents[1]
TWO_RANK_CASES = [c for c in driver.CASES if c not in driver.ONE_RANK_ONLY]


def _equal(a: Any, b: Any) -> bool:
    both_nan = isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
    return a == b or both_nan


def _same_metrics(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    differ = {
        k: (got[k], want[k]) for k in want if k != "train_time" and not _equal(got[k], want[k])
    }
    assert not differ, f"metrics (got, uninterrupted) that differ: {differ}"


def _check(runs: dict, ranks: int) -> None:
    """One rank's four runs of a case (see the driver's docstring)."""
    whole, paused, stale, resumed = (runs[k] for k in ("whole", "paused", "stale", "resumed"))
    assert whole["stopped"] is None
    assert [step for step, _ in whole["reports"]] == list(range(1, driver.EPOCHS + 1))
    # paused after epoch PAUSE, having saved a shard on every rank
    assert paused["stopped"].startswith(PAUSED_PREFIX)
    assert paused["metrics"]["epochs_run"] == driver.PAUSE
    assert paused["reports"] == whole["reports"][: driver.PAUSE]
    assert paused["files"] == [True] * ranks
    # not resumed: the checkpoint left for the same id is not read
    assert stale["reports"] == whole["reports"]
    _same_metrics(stale["metrics"], whole["metrics"])
    # resumed: the reports before the pause and after it, as if never paused
    assert resumed["stopped"] is None
    assert resumed["reports"] == whole["reports"]
    assert resumed["metrics"]["epochs_run"] == driver.EPOCHS
    _same_metrics(resumed["metrics"], whole["metrics"])


@pytest.mark.parametrize("case", list(driver.CASES))
def test_a_paused_training_resumes_as_if_never_paused_on_one_rank(case, tmp_path, one_thread):
    _check(driver.pause_and_resume(case, MPI.COMM_SELF, tmp_path, 0), ranks=1)


def _mpiexec(n: int, out: Path, timeout: float) -> list[dict]:
    """Every case of the driver on ``n`` ranks; each rank's JSON. A hang fails the test."""
    # the checkout under test, whatever is installed
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return mpiexec_json(n, [str(DRIVER), str(out)], out, timeout, {"PYTHONPATH": path})


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """The driver's runs of every two-rank case, once for all the tests that judge them."""
    return _mpiexec(2, tmp_path_factory.mktemp("checkpoints"), timeout=180)


@pytest.mark.mpi
@pytest.mark.timeout(240)
@pytest.mark.parametrize("case", TWO_RANK_CASES)
def test_a_paused_training_resumes_as_if_never_paused_on_two_ranks(case, two_ranks):
    for rank in two_ranks:
        _check(rank[case], ranks=2)
