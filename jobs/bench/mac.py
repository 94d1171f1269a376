"""MAC against plain SGD and Adam at equal wall time (the thesis's Fig. 4.1a, check C1 of the
notes), and a search's best MAC settings against Table 4.4's.

``--compare`` (default): the 6-layer MLP of Table 4.1 with its width scaled from 256 to 64 for
the 16k-sample ``teacher`` set (40 features, 62 classes, a synthetic stand-in for TIMIT frames),
grouping (1,5), both variants with Table 4.4's (1,5) settings (67 W-iterations per group, one
Z-iteration), against SGD at Table C.1's learning rate 2.7 (and, since that rate was tuned on
TIMIT, at 0.3 and 0.1) and Adam at Table C.1's 5e-3; batch 512 for all (the thesis's).
Each run trains for the same wall time on one rank, one after the other in this process; the
training loss of the whole network on the whole training set is read after every epoch (MAC
epoch, or SGD/Adam epoch), the time of these evaluations excluded. SGD and Adam are ``mac``
with one group, which the tests show is plain minibatch training.

``--search FILE``: the best settings of the search FILE's run and Table 4.4's (1,5) settings
(iterations scaled like the space's, see ``search_spaces/mac.py``), each re-evaluated on
``--seeds`` with FILE's fixed values.

    python jobs/bench/mac.py [--seeds 0 1 2] [--epochs 5]
    python jobs/bench/mac.py --search jobs/mac_teacher.yaml [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import math
import statistics
from pathlib import Path
from typing import Any

import torch
import yaml
from mpi4py import MPI

import propagator as pg
from propagator.engine.evaluation import Trial
from search_spaces.mac import TABLE_4_4
from trainers.mac import fit

DATA = {"dataset": "teacher", "n_samples": 20000, "n_features": 40, "n_classes": 62}
MLP = {**DATA, "depth": 5, "width": 64, "w_batch": 512}
RUNS = {
    "MAC 1-term (1,5)": {"variant": "1-term", "w_lr1": 2.8e-2, "w_lr2": 2.5e-3, "z_lr": 1.4e-5},
    "MAC 2-term (1,5)": {"variant": "2-term", "w_lr1": 3.4e-4, "w_lr2": 6.7e-3, "z_lr": 3e-5},
    "SGD lr 2.7 (Table C.1)": {"w_optimizer": "sgd", "w_lr": 2.7},
    "SGD lr 0.3": {"w_optimizer": "sgd", "w_lr": 0.3},
    "SGD lr 0.1": {"w_optimizer": "sgd", "w_lr": 0.1},
    "Adam lr 5e-3 (Table C.1)": {"w_lr": 5e-3},
}


class _Enough(Exception):
    """Raised from the epoch callback once a run has had its wall time."""


def curve(params: dict[str, Any], seed: int, seconds: float) -> list[tuple[float, float]]:
    """(training seconds, training loss) after every epoch, for at most ``seconds``."""
    points: list[tuple[float, float]] = []

    def note(epoch: int, spent: float, loss: float) -> None:
        points.append((spent, loss))
        if spent >= seconds:
            raise _Enough

    try:
        fit(params, Trial(0, MPI.COMM_SELF, 0, 0, seed), on_epoch=note)
    except _Enough:
        pass
    except FloatingPointError:  # diverged: the loss is infinite from then on
        points.append((points[-1][0] if points else 0.0, math.inf))
    return points


def loss_at(points: list[tuple[float, float]], t: float) -> float:
    """The loss of the last epoch finished by time ``t`` (NaN before the first)."""
    done = [loss for spent, loss in points if spent <= t]
    return done[-1] if done else math.nan


def compare(seeds: list[int], epochs: int) -> None:
    table: dict[str, list[list[float]]] = {label: [] for label in RUNS}
    for seed in seeds:
        mac = {"split": 1, "w_iters": 67, "z_iters": 1, "epochs": epochs}
        curves = {
            label: curve({**MLP, **mac, **RUNS[label]}, seed, math.inf)
            for label in RUNS
            if label.startswith("MAC")
        }
        horizon = min(points[-1][0] for points in curves.values())
        for label, params in RUNS.items():
            if label not in curves:
                single = {"modules": 1, "w_iters": 1, "epochs": 100_000}
                curves[label] = curve({**MLP, **single, **params}, seed, horizon)
        grid = [horizon * f for f in (0.25, 0.5, 0.75, 1.0)]
        for label, points in curves.items():
            table[label].append([loss_at(points, t) for t in grid])
        shown = "  ".join(f"{t:.1f}s" for t in grid)
        print(f"seed {seed}: training loss at {shown}", flush=True)
        for label in curves:
            print(f"  {label:<26}" + "".join(f"{v:9.4f}" for v in table[label][-1]), flush=True)
    print("\nmedian over seeds, at 1/4, 1/2, 3/4 and all of the shorter MAC run's wall time:")
    for label, rows in table.items():
        medians = [statistics.median(col) for col in zip(*rows, strict=True)]
        print(f"  {label:<26}" + "".join(f"{v:9.4f}" for v in medians))


def search(path: Path, seeds: list[int]) -> None:
    config = yaml.safe_load(path.read_text())
    run_dir = Path(config.get("run_dir", f"runs/{path.stem}"))
    result = pg.load(run_dir)
    best = result.best
    print(
        f"{run_dir}: {len(result)} evaluations, best {best.value:.4f} (id {best.id}): {best.params}"
    )
    runs = {"search best": best.params, **TABLE_4_4}
    fixed = config.get("fixed", {})
    print(f"re-evaluated on seeds {seeds} with {fixed}:")
    for label, params in runs.items():
        losses = [
            fit({**fixed, **params}, Trial(0, MPI.COMM_SELF, 0, 0, s))["train_loss"] for s in seeds
        ]
        shown = " ".join(f"{v:.4f}" for v in losses)
        print(
            f"  {label:<16} train_loss median {statistics.median(losses):.4f}  ({shown})",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=5, help="MAC epochs (--compare)")
    parser.add_argument("--search", type=Path, metavar="FILE", help="a MAC search file")
    args = parser.parse_args()
    torch.set_num_threads(1)  # one core per run, as a rank of the search would have
    if args.search:
        search(args.search, args.seeds)
    else:
        compare(args.seeds, args.epochs)


if __name__ == "__main__":
    main()
