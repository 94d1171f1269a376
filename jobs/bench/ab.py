"""AB training against the baseline on digits: validation accuracy and bytes sent per rank.

    python jobs/bench/ab.py [--seeds 3] [--ranks 4]

Both trainers train the same MLP (3 hidden layers of 128) for 10 epochs at global batch 64 on
one worker of ``ranks`` ranks. AB uses the thesis's defaults except the phase lengths: the
§5.3.3 guidelines (independent phases of 3.33 % of the run, an LR rebound of half of one)
were tuned for 45,000-step ImageNet runs; in a 220-step run they reset the optimizer every
few steps, so here a phase is 15 % of the run and the LR rebound 10 % of a phase.
Target: AB sends at least 50 % fewer bytes than the baseline at accuracy within 1-2 points.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _trainers import compare, print_medians

COMMON = {
    "dataset": "digits",
    "depth": 3,
    "width": 128,
    "epochs": 10,
    "batch_size": 64,
    "lr": 0.05,
    "momentum": 0.9,
}
AB = {"ab_steps": 0.15, "ab_lr_rebound": 0.1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--ranks", type=int, default=4)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # the ranks share the cores
    runs = {"baseline": ("baseline", COMMON), "ab": ("ab", {**COMMON, **AB})}
    keys = ["val_acc", "val_loss", "bytes_sent"]
    table = compare(runs, args.ranks, list(range(args.seeds)), keys)
    print_medians(table)
    base, ab = table["baseline"], table["ab"]
    saved = 1 - statistics.median(ab["bytes_sent"]) / statistics.median(base["bytes_sent"])
    gap = statistics.median(ab["val_acc"]) - statistics.median(base["val_acc"])
    print(f"\nAB sends {100 * saved:.1f} % fewer bytes per rank; val_acc {100 * gap:+.2f} points")


if __name__ == "__main__":
    main()
