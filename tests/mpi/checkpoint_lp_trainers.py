"""Pause and resume of the layer-parallel trainers (mac, auxnet, ddg, fr) from checkpoints:
``mpiexec -n N python checkpoint_lp_trainers.py OUT K CASES``, ``CASES`` a JSON object of
labels and their ``[trainer, params]``.

Every rank runs :func:`pause_and_resume` for each case on a worker of all ranks (one launch
for all of them: starting the ranks costs more than these tiny trainings) and writes
``OUT/rank{r}.json``, the results by label; ``tests/test_trainer_checkpoints_lp.py``
judges them, and calls the same function in-process for one rank.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from mpi4py import MPI

from propagator.engine.evaluation import PAUSED_PREFIX, Trial
from propagator.store.checkpoints import Checkpoints

RUN_SEED, TRIAL_ID = 11, 4


class PauseAfter:
    """A stopping rule for tests: pause the training once step ``step`` has been reported.
    Deterministic, so every rank of a worker decides alike without the engine's broadcast."""

    def __init__(self, step: int) -> None:
        self.step, self.last = step, 0

    def start(self, repeat: int) -> str | None:
        return None

    def reported(self, trial: Trial, step: int, value: float) -> None:
        self.last = step

    def decide(self, trial: Trial) -> str | None:
        return f"{PAUSED_PREFIX} at step {self.step}" if self.last >= self.step else None

    def finish(self) -> None:
        pass


def pause_and_resume(
    name: str, params: dict[str, Any], k: int, comm: MPI.Comm, root: Path
) -> dict[str, Any]:
    """Trainer ``name`` with ``params`` on the worker of ``comm``, each time a new call with a
    new trial of the same id and run seed: uninterrupted; paused after epoch ``k``; afresh
    (not resumed) while the pause's checkpoint lies in its store; resumed from it; and resumed
    from it again but paused after epoch ``k + 1`` (the run must have more than ``k + 1``
    epochs), then resumed from that second checkpoint. Returns each run's reports and metrics
    and whether this rank's checkpoint file exists after the first pause (and every rank's)."""
    from propagator.config import load_objective

    trainer = load_objective(name)
    store = Checkpoints(root / "checkpoints")
    out: dict[str, Any] = {}

    def run(key: str, **kwargs: Any) -> Trial:
        trial = Trial(TRIAL_ID, comm, 0, 0, RUN_SEED, checkpoints=store, **kwargs)
        metrics = trainer(params, trial)
        out[key] = {"reports": trial.reports, "metrics": metrics, "stopped": trial.stopped}
        return trial

    run("full")
    paused = run("paused", stopping=PauseAfter(k))
    comm.Barrier()  # every rank has saved its shard
    out["own_file"] = store.path(TRIAL_ID, comm.rank).is_file()
    out["all_files"] = store.complete(TRIAL_ID, comm.size)
    run("afresh")
    run("resumed", resumed=paused.reports)
    again = run("paused_again", stopping=PauseAfter(k + 1), resumed=paused.reports)
    run("resumed_again", resumed=again.reports)
    return out


def main(argv: list[str]) -> None:
    import torch

    torch.set_num_threads(1)
    out, k, cases = Path(argv[0]), int(argv[1]), json.loads(argv[2])
    world = MPI.COMM_WORLD
    results = {
        label: pause_and_resume(name, params, k, world, out / label)
        for label, (name, params) in cases.items()
    }
    (out / f"rank{world.rank}.json").write_text(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1:])
