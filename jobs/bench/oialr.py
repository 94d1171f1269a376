"""OIALR against full-rank data-parallel training on digits: accuracy and trainable parameters.

    python jobs/bench/oialr.py [--seeds 3] [--ranks 1] [--epochs 5]

The same MLP (3 hidden layers of 256 units, wide enough for low rank to pay off) and the same
optimizer (SGD, lr 0.05, momentum 0.9, batch 64) for both; OIALR with its defaults (delay one
third of the steps, an update every 1/20 of them, layer fraction 0.1, last layer full-rank)
except ``sigma_cutoff`` 0.2. Target: OIALR within 2 accuracy points of the baseline with at
least 50 % fewer trainable parameters (counted at the end, after the switch).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _trainers import compare, print_medians

MODEL = {"dataset": "digits", "depth": 3, "width": 256, "batch_size": 64}
OPTIMIZER = {"lr": 0.05, "momentum": 0.9}
OIALR = {"sigma_cutoff": 0.2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--ranks", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    # ranks share few cores: one thread each, or they oversubscribe them
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    seeds = list(range(args.seeds))
    common = {**MODEL, **OPTIMIZER, "epochs": args.epochs}
    shared = ["val_acc", "val_loss", "parameters", "bytes_sent", "train_time"]
    base = compare({"baseline": ("baseline", common)}, args.ranks, seeds, shared)
    low = compare(
        {"oialr": ("oialr", {**common, **OIALR})},
        args.ranks,
        seeds,
        [*shared, "trainable_parameters", "trainable_share", "compression", "mean_rank"],
    )
    base["baseline"]["trainable_parameters"] = base["baseline"]["parameters"]
    print_medians({**base, **low})
    full = statistics.median(base["baseline"]["trainable_parameters"])
    trainable = statistics.median(low["oialr"]["trainable_parameters"])
    gap = statistics.median(
        b - o for b, o in zip(base["baseline"]["val_acc"], low["oialr"]["val_acc"], strict=True)
    )
    fewer = 1 - trainable / full
    print(f"\noialr trainable parameters: {trainable:.0f} of {full:.0f} ({fewer:.1%} fewer)")
    print(f"median accuracy gap (baseline - oialr, per seed): {100 * gap:.2f} points")
    met = gap <= 0.02 and fewer >= 0.5
    print(f"target (gap <= 2 points, >= 50 % fewer trainable): {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
