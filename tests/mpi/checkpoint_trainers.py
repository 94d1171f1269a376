"""Pause and resume of the data-parallel trainers (baseline, daso, oialr, ab, easgd) on a
worker of all ranks: ``mpiexec -n N python checkpoint_trainers.py OUT [CASE ...]``.

Every rank runs each case (if none is named, all of :data:`CASES` that suit this many ranks)
four times, with the same trial id and run seed: uninterrupted; paused after epoch
:data:`PAUSE` by a stub stopping; afresh with that paused run's checkpoint left in the store
(a trial that is not resumed must not read it); resumed from the checkpoint. It writes what
each run reported and returned to ``OUT/rank{r}.json``; ``tests/test_trainer_checkpoints.py``
judges it, and calls :func:`pause_and_resume` in-process for one rank.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from mpi4py import MPI

import propagator as pg
from propagator.config import load_objective
from propagator.store.checkpoints import Checkpoints

EPOCHS, PAUSE, SEED = 4, 2, 11
# digits, a tiny MLP: 11 steps an epoch on one rank (batch 128) and on two (64 each)
BASE = {"dataset": "digits", "epochs": EPOCHS, "depth": 2, "width": 16, "batch_size": 128}
MOMENTUM = {"optimizer": "sgd", "momentum": 0.9}
# (trainer, params): each sets the method up so that its own state matters after the pause
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    # batch norm's buffers, dropout's random draws, momentum, the schedule's position
    "baseline": (
        "baseline",
        {**BASE, **MOMENTUM, "norm": "batch", "dropout": 0.1, "schedule": "cosine"},
    ),
    # two nodes: epochs 1-3 cycle, B and S adapt after every one (a plateau each time), and a
    # global sync sent in epoch 2 is still in flight when the training pauses after it
    "daso": (
        "daso",
        {
            **BASE,
            **MOMENTUM,
            "dropout": 0.1,
            "node_size": 1,
            "global_sync_period": 3,
            "stale_steps": 3,
            "warmup_epochs": 1,
            "cooldown_epochs": 0,
            "stability_level": 0.9,
            "patience": 1,
            "max_sync_period": 3,
        },
    ),
    # switch at step 10, updates every 5 steps, before and after the pause at step 22; Adam's
    # moments follow Σ into its bases
    "oialr": (
        "oialr",
        {**BASE, "optimizer": "adam", "lr": 0.01, "delay": 10, "frequency": 5, "sigma_cutoff": 0.2},
    ),
    # warm-up 4 steps, independent phases of 13 steps (4-16, 20-32) with rebounds of 3: the
    # pause at step 22 falls inside the second phase, after the first merge
    "ab": (
        "ab",
        {**BASE, **MOMENTUM, "ab_warmup": 0.1, "ab_steps": 0.3, "ab_full_rank_first": False},
    ),
    # exchanges every 3 steps, so not at an epoch's first step after the pause
    "easgd": ("easgd", {**BASE, "method": "easgd", "tau": 3}),
    "eamsgd": ("easgd", {**BASE, "method": "eamsgd", "tau": 3, "delta": 0.9}),
    "downpour": ("easgd", {**BASE, "method": "downpour", "tau": 2}),
    # one rank only: with several, the one-sided exchanges interleave as the ranks' timing
    # has it, so two uninterrupted runs differ already
    "easgd_async": ("easgd", {**BASE, "method": "easgd", "variant": "async", "tau": 3}),
}
ONE_RANK_ONLY = ("easgd_async",)


class PauseAfter:
    """A stopping (:class:`propagator.engine.evaluation.Stopping`) that pauses the training
    once step ``step`` has been reported."""

    def __init__(self, step: int) -> None:
        self.step, self.last = step, 0

    def start(self, repeat: int) -> str | None:
        return None

    def reported(self, trial: pg.Trial, step: int, value: float) -> None:
        self.last = step

    def decide(self, trial: pg.Trial) -> str | None:
        return f"paused at step {self.last}" if self.last >= self.step else None

    def finish(self) -> None:
        return None


def pause_and_resume(case: str, comm: MPI.Comm, root: Path, record_id: int) -> dict[str, Any]:
    """The four runs of ``case`` on the ranks of ``comm`` (see the module docstring), with
    checkpoints under ``root``: each run's reports and metrics, and the paused run's stop
    reason and which ranks' checkpoint files exist after it."""
    name, params = CASES[case]
    trainer = load_objective(name)
    store = Checkpoints(root)

    def run(stopping: PauseAfter | None, checkpoints: Checkpoints | None, resumed=None) -> dict:
        trial = pg.Trial(
            record_id, comm, 0, 0, SEED, stopping, checkpoints=checkpoints, resumed=resumed
        )
        metrics = trainer(params, trial)
        reports = [list(r) for r in trial.reports]
        return {"reports": reports, "metrics": metrics, "stopped": trial.stopped}

    whole = run(None, None)
    paused = run(PauseAfter(PAUSE), store)
    comm.Barrier()  # every rank has saved its shard
    paused["files"] = [store.path(record_id, r).is_file() for r in range(comm.size)]
    stale = run(None, store)
    prior = [tuple(r) for r in paused["reports"]]
    resumed = run(None, store, resumed=prior)
    return {"whole": whole, "paused": paused, "stale": stale, "resumed": resumed}


def main(out: Path, cases: list[str]) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    comm = MPI.COMM_WORLD
    cases = cases or [c for c in CASES if comm.size == 1 or c not in ONE_RANK_ONLY]
    return {
        case: pause_and_resume(case, comm, out / "checkpoints", i) for i, case in enumerate(cases)
    }


if __name__ == "__main__":
    target = Path(sys.argv[1])
    target.mkdir(parents=True, exist_ok=True)
    result = main(target, sys.argv[2:])
    (target / f"rank{MPI.COMM_WORLD.rank}.json").write_text(json.dumps(result))
