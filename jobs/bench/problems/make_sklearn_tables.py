"""Fit and cross-validate every grid point of ``sklearn_tables.TABLES`` once; write the CSVs.

    OMP_NUM_THREADS=1 python jobs/bench/problems/make_sklearn_tables.py [--tables NAME ...]

Data: scikit-learn's bundled breast_cancer, diabetes, wine and digits (nothing downloaded).
Every fit is single-threaded and seeded (``random_state=0``); folds are shuffled with seed 0
and stratified for classifiers, so a rerun on the same versions and BLAS gives the same
numbers (the committed CSVs, not a rerun, define the benchmark). Values are rounded to 6
digits. What each table measures is in ``sklearn_tables``' docstring; about 10 minutes in all
on one core.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
import warnings
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from problems.grid import grid_points, row_cells
from problems.sklearn_tables import TABLES

Measure = Callable[[dict[str, Any]], tuple[float, ...]]


@cache
def _data(name: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets

    loader = {
        "breast_cancer": datasets.load_breast_cancer,
        "diabetes": datasets.load_diabetes,
        "wine": datasets.load_wine,
        "digits": datasets.load_digits,
    }[name]
    return loader(return_X_y=True)


def _folds(splits: int, repeats: int, stratified: bool = True) -> Any:
    from sklearn import model_selection as ms

    kind = ms.RepeatedStratifiedKFold if stratified else ms.RepeatedKFold
    return kind(n_splits=splits, n_repeats=repeats, random_state=0)


def _scaled(model: Any, scaler: str = "standard") -> Any:
    from sklearn import preprocessing
    from sklearn.pipeline import make_pipeline

    kinds = {
        "standard": preprocessing.StandardScaler,
        "minmax": preprocessing.MinMaxScaler,
        "robust": preprocessing.RobustScaler,
    }
    return make_pipeline(kinds[scaler](), model)


def _cv_error(model: Any, data: str, splits: int, repeats: int) -> float:
    from sklearn.model_selection import cross_val_score

    x, y = _data(data)
    return 1.0 - float(np.mean(cross_val_score(model, x, y, cv=_folds(splits, repeats))))


def _svm(p: dict[str, Any]) -> tuple[float, ...]:
    from sklearn.svm import SVC

    model = SVC(
        kernel=p["kernel"],
        C=10.0 ** p["log10_C"],
        gamma=10.0 ** p.get("log10_gamma", 0),
        degree=p.get("degree", 3),
        coef0=1.0 if p["kernel"] == "poly" else 0.0,  # coef0 0 makes even degrees symmetric
        max_iter=1_000_000,
    )
    return (_cv_error(_scaled(model), "breast_cancer", 5, 3),)


def _hgb_row(p: dict[str, Any]) -> tuple[float, ...]:
    fit = _hgb_staged(p["log2_lr"], p["log2_leaves"], p["log2_min_leaf"], p["l2"])
    return fit[p["log2_iters"]]


@cache
def _hgb_staged(log2_lr: int, log2_leaves: int, log2_min_leaf: int, l2: float) -> dict:
    """(log loss, error) after 2^k iterations, k = 5..8, from one fit of 256 per fold."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import log_loss

    x, y = _data("breast_cancer")
    stages: dict[int, list[tuple[float, float]]] = {k: [] for k in range(5, 9)}
    for train, test in _folds(3, 1).split(x, y):
        model = HistGradientBoostingClassifier(
            learning_rate=2.0**log2_lr,
            max_leaf_nodes=2**log2_leaves,
            min_samples_leaf=2**log2_min_leaf,
            l2_regularization=l2,
            max_iter=256,
            early_stopping=False,
            random_state=0,
        ).fit(x[train], y[train])
        for i, proba in enumerate(model.staged_predict_proba(x[test]), 1):
            if i in (32, 64, 128, 256):
                err = float(np.mean(proba.argmax(axis=1) != y[test]))
                stages[i.bit_length() - 1].append((log_loss(y[test], proba, labels=[0, 1]), err))
    return {k: tuple(float(v) for v in np.mean(s, axis=0)) for k, s in stages.items()}


def _knn(p: dict[str, Any]) -> tuple[float, ...]:
    from sklearn.decomposition import PCA
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsRegressor
    from sklearn.pipeline import make_pipeline

    x, y = _data("diabetes")
    knn = KNeighborsRegressor(n_neighbors=p["n_neighbors"], weights=p["weights"], p=p["p"])
    model = _scaled(make_pipeline(PCA(p["n_components"], random_state=0), knn), p["scaler"])
    folds = _folds(5, 2, stratified=False)
    mse = -cross_val_score(model, x, y, cv=folds, scoring="neg_mean_squared_error")
    return (float(np.sqrt(np.mean(mse))),)


def _mlp(p: dict[str, Any]) -> tuple[float, ...]:
    from sklearn.model_selection import cross_validate
    from sklearn.neural_network import MLPClassifier

    # 30 epochs at most, with the default tol and n_iter_no_change: after 10 epochs without
    # progress 'adaptive' divides its rate by 5 where the other schedules stop
    model = MLPClassifier(
        hidden_layer_sizes=(2 ** p["log2_width"],),
        solver=p["solver"],
        learning_rate_init=10.0 ** p["log10_lr"],
        momentum=p.get("momentum", 0.9),
        nesterovs_momentum=p.get("nesterov", False),
        learning_rate=p.get("schedule", "constant"),
        beta_1=p.get("beta_1", 0.9),
        alpha=p["alpha"],
        batch_size=32,
        max_iter=30,
        random_state=0,
    )
    x, y = _data("wine")
    scores = cross_validate(_scaled(model), x, y, cv=_folds(3, 1), scoring=_LOSS_AND_ACCURACY)
    return -float(np.mean(scores["test_loss"])), 1.0 - float(np.mean(scores["test_accuracy"]))


_LOSS_AND_ACCURACY = {"loss": "neg_log_loss", "accuracy": "accuracy"}


def _cash(p: dict[str, Any]) -> tuple[float, ...]:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.svm import SVC

    if p["model"] == "logreg":
        model = LogisticRegression(
            C=10.0 ** p["logreg_log10_C"],
            l1_ratio=1.0 if p["logreg_penalty"] == "l1" else 0.0,
            solver="liblinear",
            max_iter=1000,
        )
    elif p["model"] == "knn":
        model = KNeighborsClassifier(n_neighbors=p["knn_k"], weights=p["knn_weights"])
    elif p["model"] == "svm":
        model = SVC(C=10.0 ** p["svm_log10_C"], gamma=10.0 ** p["svm_log10_gamma"])
    else:
        features = {"sqrt": "sqrt", "half": 0.5, "all": None}[p["forest_max_features"]]
        model = RandomForestClassifier(
            n_estimators=50,
            max_depth=p["forest_max_depth"],
            max_features=features,
            random_state=0,
            n_jobs=1,
        )
    return (_cv_error(_scaled(model, p["scaler"]), "breast_cancer", 5, 3),)


def _sgd(p: dict[str, Any]) -> tuple[float, ...]:
    from sklearn.linear_model import SGDClassifier
    from sklearn.model_selection import cross_val_score

    model = SGDClassifier(
        loss=p["loss"],
        penalty=p["penalty"],
        l1_ratio=p.get("l1_ratio", 0.15),
        alpha=10.0 ** p["log10_alpha"],
        learning_rate=p["schedule"],
        eta0=10.0 ** p.get("log10_eta0", -2),
        max_iter=20,
        # 20 epochs for all, except that 'adaptive' divides its rate by 5 after 5 epochs
        # without progress (the default tol; tol=None would make it 'constant')
        tol=1e-3 if p["schedule"] == "adaptive" else None,
        random_state=0,
    )
    x, y = _data("digits")
    return (1.0 - float(np.mean(cross_val_score(model, x / 16.0, y, cv=_folds(3, 1)))),)


MEASURES: dict[str, Measure] = {
    "cancer_svm": _svm,
    "cancer_hgb": _hgb_row,
    "diabetes_knn": _knn,
    "wine_mlp": _mlp,
    "cancer_cash": _cash,
    "digits_sgd": _sgd,
}


def write_table(name: str, out: Path) -> None:
    """Measure every grid point of table ``name`` and write its CSV to ``out``."""
    from sklearn.exceptions import ConvergenceWarning

    table, measure = TABLES[name], MEASURES[name]
    points = list(grid_points(table.space))
    started = time.perf_counter()
    with out.open("w", newline="") as f, warnings.catch_warnings():
        # Fixed epoch budgets are the point: many settings have not converged.
        warnings.simplefilter("ignore", ConvergenceWarning)
        writer = csv.writer(f)
        writer.writerow([*table.space.params, *table.columns])
        for point in points:
            values = measure(point)
            writer.writerow([*row_cells(table.space, point), *(f"{v:.6f}" for v in values)])
    print(f"{name}: {len(points)} points, {time.perf_counter() - started:.0f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", nargs="+", choices=list(TABLES), default=list(TABLES))
    parser.add_argument("--out-dir", type=Path, help="default: next to sklearn_tables.py")
    args = parser.parse_args()
    for name in args.tables:
        out = args.out_dir / f"{name}.csv" if args.out_dir else TABLES[name].path
        write_table(name, out)


if __name__ == "__main__":
    main()
