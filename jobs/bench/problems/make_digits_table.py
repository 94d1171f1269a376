"""Train the MLP of every point of ``tabular.GRID`` on ``digits`` once; write the CSV.

    OMP_NUM_THREADS=1 python jobs/bench/problems/make_digits_table.py [--out FILE]

scikit-learn's ``MLPClassifier`` (Adam, 20 epochs, no early stopping, ``random_state=0``) on
the bundled ``digits`` (1,797 8x8 images) scaled to [0, 1], a stratified 70/30 split with seed
0. Writes ``val_loss`` (cross-entropy on the validation split) and ``val_error`` (1 -
accuracy) per point, rounded to 6 digits. 432 points; about 3 minutes on one idle core.
The numbers can differ in the last digits on another BLAS, so the committed CSV, not a
rerun, defines the benchmark.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from problems.tabular import COLUMNS, TABLE, grid_points

EPOCHS = 20


def _data() -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    return tuple(train_test_split(x / 16.0, y, test_size=0.3, random_state=0, stratify=y))


def train(point: dict[str, Any], data: tuple[np.ndarray, ...]) -> tuple[float, float]:
    """``(val_loss, val_error)`` of the MLP at ``point`` trained on ``data``."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import log_loss
    from sklearn.neural_network import MLPClassifier

    x_train, x_val, y_train, y_val = data
    model = MLPClassifier(
        hidden_layer_sizes=(2 ** point["log2_width"],) * point["depth"],
        activation=point["activation"],
        alpha=point["l2"],
        batch_size=point["batch_size"],
        learning_rate_init=10.0 ** point["log10_lr"],
        max_iter=EPOCHS,
        random_state=0,
    )
    with warnings.catch_warnings():
        # A fixed epoch budget is the point: most settings have not converged after 20.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x_train, y_train)
    proba = model.predict_proba(x_val)
    error = float(np.mean(model.classes_[proba.argmax(axis=1)] != y_val))
    return float(log_loss(y_val, proba, labels=model.classes_)), error


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=TABLE, help="CSV to write (default: %(default)s)"
    )
    args = parser.parse_args()
    data = _data()
    points = list(grid_points())
    started = time.perf_counter()
    with args.out.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for n, point in enumerate(points, 1):
            loss, error = train(point, data)
            writer.writerow([*point.values(), f"{loss:.6f}", f"{error:.6f}"])
            if n % 50 == 0:
                print(
                    f"{n}/{len(points)} points, {time.perf_counter() - started:.0f} s", flush=True
                )
    print(f"wrote {args.out} ({len(points)} points)")


if __name__ == "__main__":
    main()
