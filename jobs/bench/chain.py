"""Time per epoch of the layer-parallel chain on 2 and 4 ranks against one rank, for each
layer-parallel trainer, side by side in one run.

Every trainer trains one model cut into 4 stages on a worker of 1, 2 or 4 ranks (4 stages on
2 ranks: two neighbouring stages per rank). The chain computes the same numbers on every layout
(the tests check it; the table shows the validation loss to confirm), so only the time differs.
``epoch_time`` is the trainer's own: the slowest rank's mean wall time of an epoch, messages
included and loss evaluations excluded. The speed-up is bounded by the largest stage's share
of the work and by the machine's cores: on a 2-core laptop, 4 ranks are oversubscribed.

    python jobs/bench/chain.py [--trainers mac auxnet ddg fr] [--ranks 1 2 4] [--repeat 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _trainers import train_once

TEACHER = {"dataset": "teacher", "n_samples": 20000, "n_features": 40, "n_classes": 62}
RESNET = {"dataset": "digits", "image": True, "model": "resnet", "filters": 16, "blocks": 4}
LAYERS = {"modules": 4, "epochs": 2, "batch_size": 64}  # one residual block per stage
RUNS = {
    # the 6-layer MLP of the MAC bench in 4 groups of (2, 2, 1, 1) layers
    "mac": {**TEACHER, "depth": 5, "width": 64, "modules": 4, "variant": "1-term"}
    | {"epochs": 2, "w_iters": 10, "w_batch": 512, "z_iters": 1, "z_lr": 1e-3},
    "auxnet": {**RESNET, **LAYERS, "beta": 10.0},
    "ddg": {**RESNET, **LAYERS, "momentum": 0.9, "lr": 0.01},
    "fr": {**RESNET, **LAYERS, "momentum": 0.9, "lr": 0.01},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trainers", nargs="+", default=list(RUNS), choices=list(RUNS))
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--repeat", type=int, default=2, help="runs per layout (median)")
    args = parser.parse_args()
    print(f"{'trainer':<8} {'ranks':>5} {'epoch_time':>11} {'vs 1 rank':>10} {'val_loss':>10}")
    for name in args.trainers:
        base = None
        for ranks in args.ranks:
            runs = [train_once(name, RUNS[name], ranks) for _ in range(args.repeat)]
            seconds = statistics.median(m["epoch_time"] for m in runs)
            base = base or seconds
            line = f"{name:<8} {ranks:>5} {seconds:>10.3f}s {base / seconds:>9.2f}x"
            print(f"{line} {runs[0]['val_loss']:>10.5f}", flush=True)


if __name__ == "__main__":
    main()
