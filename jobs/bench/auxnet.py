"""The penalty method with AuxNets against the penalty coefficient β, with backprop for
reference: the direction of Table 8 of the AuxNet paper (ResNet-110, K = 3, CIFAR-10: 37.8 %
at β = 10^3, 91.7 % at 10^4, 92.5 % at 10^5, 92.3 % at 10^6; too small a β "over-explores the
infeasible region" and ends at an infeasible solution).

    python jobs/bench/auxnet.py [--seeds 0 1 2] [--epochs 20] [--ranks 1]
                                [--betas 0.01 0.1 1 10 100] [--lambda-lr ETA]

Every run: a ResNet of 3 blocks of 16 filters on digits (image 1x8x8), SGD at lr 0.1 with a
cosine schedule, batch 64; the auxnet runs split it into K = 3 modules (one block each, as
Table 8) with AuxNet pieces of one residual block, everything else at the trainer's defaults
(η_λ = lr, no noise, no augmentation). BP is the same network with K = 1. The numbers do not
depend on ``--ranks`` (one rank runs the stages in sequence and computes the same numbers);
more ranks only spread the stages. β is in the trainer's units (ψ an element mean), which do not
carry the paper's values over (see ``search_spaces/auxnet.py``); the grid spans too small to too
large for these models.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _trainers import compare, print_medians

MODEL = {"dataset": "digits", "image": True, "model": "resnet", "filters": 16, "blocks": 3}
OPTIMIZER = {"lr": 0.1, "schedule": "cosine", "batch_size": 64}
BP = "BP (K=1)"
KEYS = ["val_acc", "val_loss", "constraint_violation", "train_loss", "serial_train_loss"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--ranks", type=int, default=1)
    parser.add_argument("--betas", type=float, nargs="+", default=[0.01, 0.1, 1.0, 10.0, 100.0])
    parser.add_argument("--lambda-lr", type=float, help="η_λ (default: the trainer's, = lr)")
    args = parser.parse_args()
    # ranks share few cores: one thread each, or they oversubscribe them
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    common = {**MODEL, **OPTIMIZER, "epochs": args.epochs}
    runs = {BP: ("auxnet", {**common, "modules": 1})}
    for beta in args.betas:
        params = {**common, "modules": 3, "method": "penalty", "auxnet": True, "beta": beta}
        if args.lambda_lr is not None:
            params["lambda_lr"] = args.lambda_lr
        runs[f"penalty+AuxNet beta={beta:g}"] = ("auxnet", params)
    table = compare(runs, args.ranks, args.seeds, KEYS)
    print_medians(table)

    accuracy = {label: statistics.median(cols["val_acc"]) for label, cols in table.items()}
    penalty = [label for label in runs if label.startswith("penalty")]
    best = max(penalty, key=accuracy.get)
    smallest, largest = penalty[0], penalty[-1]
    drop = accuracy[best] - accuracy[smallest]
    print(f"\nbest: {best} ({100 * accuracy[best]:.1f} %); BP {100 * accuracy[BP]:.1f} %")
    print(f"smallest beta: {100 * accuracy[smallest]:.1f} % ({100 * drop:.1f} points below)")
    print(f"largest beta: {100 * accuracy[largest]:.1f} % (Table 8: 10^6 within 0.2 of the best)")
    shown = drop >= 0.2
    print(f"Table 8's direction (too small a beta fails): {'shown' if shown else 'NOT shown'}")


if __name__ == "__main__":
    main()
