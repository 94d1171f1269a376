"""EASGD against DOWNPOUR as the communication period τ grows (the thesis's Figs. 4.1-4.4:
DOWNPOUR is "highly unstable" at τ = 16 while EASGD keeps working).

Each method first gets its best learning rate at τ = 1 from a small grid (one seed), the way
the thesis tuned η per method; then both run at τ = 1, 4, 16 with that η over several seeds,
on one worker of ``--ranks`` ranks (p), every rank sampling all of ``digits``.

    python jobs/bench/easgd.py [--ranks 4] [--seeds 0 1 2] [--epochs 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _trainers import compare, print_medians

GRID = {"easgd": [1.0, 0.3, 0.1], "downpour": [0.1, 0.03, 0.01]}
KEYS = ["val_acc", "val_loss", "bytes_sent"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, default=4)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--taus", type=int, nargs="+", default=[1, 4, 16])
    args = parser.parse_args()
    base = {"dataset": "digits", "epochs": args.epochs, "batch_size": 32, "depth": 2}

    print(f"learning-rate grid at tau = 1 (seed {args.seeds[0]}):")
    best = {}
    for method, grid in GRID.items():
        runs = {
            f"{method} lr={lr}": ("easgd", {**base, "method": method, "tau": 1, "lr": lr})
            for lr in grid
        }
        table = compare(runs, args.ranks, args.seeds[:1], KEYS)
        label = min(table, key=lambda k: table[k]["val_loss"][0])
        best[method] = runs[label][1]["lr"]
    print(f"chosen: {best}\n")

    runs = {
        f"{method} tau={tau} lr={lr}": ("easgd", {**base, "method": method, "tau": tau, "lr": lr})
        for tau in args.taus
        for method, lr in best.items()
    }
    table = compare(runs, args.ranks, args.seeds, KEYS)
    print_medians(table)
    for method in best:
        first, last = (f"{method} tau={t} lr={best[method]}" for t in (args.taus[0], args.taus[-1]))
        drop = statistics.median(table[first]["val_acc"]) - statistics.median(
            table[last]["val_acc"]
        )
        print(
            f"{method}: accuracy drop from tau={args.taus[0]} to tau={args.taus[-1]}: {drop:+.3f}"
        )


if __name__ == "__main__":
    main()
