"""BP against DDG and FR at K = 2 and 4 on digits: validation accuracy over seeds, activation
memory, and the chain's time per epoch on 1, 2 and 4 ranks.

    OMP_NUM_THREADS=1 python jobs/bench/ddg_fr.py [--seeds 5] [--epochs 10]
        [--timing-epochs 3] [--timing-repeats 3]

The model is a small ResNet on the 8x8 digits (4 residual blocks of 8-16 filters, so up to 4
modules), trained as in Huo's Ch. 5/6: SGD with momentum 0.9, lr 0.01, weight decay 5e-4, the
lr divided by 10 twice (here at 1/3 and 2/3 of the run, the thesis's at 1/2 and 3/4), batch 32
instead of 128 (digits has 1437 training samples). BP is the ``baseline`` trainer on one rank
(what K = 1 of both trainers reproduces exactly).

Accuracy runs use one rank: the chain computes the same numbers on one rank as on many
(tests/test_ddg_fr.py). The direction to compare with: Table 5 (DDG within 0.51 points of BP
at K = 2) and Table 7 (FR at or above BP, DDG at or below).

Timing runs (medians over repeats with different seeds) train the K = 4 model on 1, 2 and 4
ranks (``epoch_time``: the slowest rank's wall time of an epoch's iterations), and BP on one
rank (the ``ddg`` trainer with K = 1, which is BP and reports the same ``epoch_time``). A
machine with fewer cores than ranks is oversubscribed and its timings say little about
speedup; the script prints the core count.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _trainers import compare, print_medians

MODEL = {"dataset": "digits", "image": True, "model": "resnet", "blocks": 4, "filters": 8}
TRAINING = {"lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4, "schedule": "step"}
TRAINING |= {"batch_size": 32}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--timing-epochs", type=int, default=3)
    parser.add_argument("--timing-repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # ranks share few cores
    common = {**MODEL, **TRAINING, "epochs": args.epochs}
    accuracy(common, list(range(args.seeds)))
    timing({**common, "epochs": args.timing_epochs}, list(range(args.timing_repeats)))


def accuracy(common: dict, seeds: list[int]) -> None:
    keys = ["val_acc", "val_loss"]
    runs = {"BP": ("baseline", common)}
    for k in (2, 4):
        runs[f"DDG K={k}"] = ("ddg", {**common, "modules": k})
        runs[f"FR K={k}"] = ("fr", {**common, "modules": k})
    table = compare({"BP": runs.pop("BP")}, 1, seeds, keys)
    table |= compare(runs, 1, seeds, [*keys, "stored_activations", "stored_weights"])
    print_medians(table)
    print("\nmedian accuracy gap per seed (BP - method), points:")
    for label in runs:
        gaps = [b - m for b, m in zip(table["BP"]["val_acc"], table[label]["val_acc"], strict=True)]
        spread = f"min {100 * min(gaps):+.2f}, max {100 * max(gaps):+.2f}"
        print(f"  {label:<10} {100 * statistics.median(gaps):+.2f}  ({spread})")


def timing(common: dict, repeats: list[int]) -> None:
    keys = ["epoch_time", "pipeline_bytes", "stored_activations"]
    print(
        f"\ntime per epoch, K = 4, on {os.cpu_count()} cores (more ranks than cores oversubscribe)"
    )
    rows = compare({"BP (K=1)": ("ddg", {**common, "modules": 1})}, 1, repeats, keys)
    for ranks in (1, 2, 4):
        runs = {
            f"{name} K=4, {ranks} rank(s)": (name, {**common, "modules": 4})
            for name in ("ddg", "fr")
        }
        rows |= compare(runs, ranks, repeats, keys)
    print_medians(rows)


if __name__ == "__main__":
    main()
