"""DASO's global-sync period against accuracy and traffic: B = 1, S = 0 (a blocking parameter
average every step) against the thesis's production B = 4, S = 1 (Table 3.1), with the
baseline trainer for reference.

One worker of ``--ranks`` ranks simulating nodes of ``--node-size``; the same MLP, data,
SGD settings, epochs and seeds for all; B and S held constant in the cycling epochs (between
one warm-up and one cool-down epoch), bfloat16 transfers. Target: B = 4, S = 1 sends fewer
bytes than B = 1, S = 0 at an accuracy within 1-2 points.

    python jobs/bench/daso.py [--ranks 4] [--node-size 2] [--seeds 0 1 2] [--epochs 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _trainers import compare, print_medians

KEYS = ["val_acc", "val_loss", "bytes_sent"]
DASO_KEYS = [*KEYS, "bytes_local", "bytes_global"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, default=4)
    parser.add_argument("--node-size", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    base = {"dataset": "digits", "epochs": args.epochs, "batch_size": 64, "depth": 2}
    base |= {"lr": 0.05, "momentum": 0.9}
    daso = {**base, "node_size": args.node_size, "adapt_sync": False}
    runs = {
        f"daso B={b} S={s}": ("daso", {**daso, "global_sync_period": b, "stale_steps": s})
        for b, s in ((1, 0), (4, 1))
    }
    table = {
        **compare({"baseline": ("baseline", base)}, args.ranks, args.seeds, KEYS),
        **compare(runs, args.ranks, args.seeds, DASO_KEYS),
    }
    print_medians(table)
    blocking, stale = (statistics.median(table[k]["val_acc"]) for k in runs)
    sent = [statistics.median(table[k]["bytes_sent"]) for k in runs]
    print(
        f"B=4 S=1 vs B=1 S=0: bytes_sent x{sent[1] / sent[0]:.3f}, "
        f"val_acc {100 * (stale - blocking):+.2f} points"
    )


if __name__ == "__main__":
    main()
