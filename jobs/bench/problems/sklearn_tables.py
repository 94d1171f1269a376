"""Real HPO problems: scikit-learn models on its bundled data sets, trained once per grid point.

Every point of each space below was fitted and cross-validated once by
``make_sklearn_tables.py`` (deterministic folds and seeds, single-threaded); the CSV next to
this module holds the measured values and the objective looks them up (:mod:`.grid`). The
optimum is the table's smallest value. Axes with more than two ordered levels are integer
parameters (``log10_C`` is C = 10^k, ``log2_lr`` is a learning rate of 2^k, ...), so that
every tool knows their order; unordered or two-level ones are categorical.

* ``cancer_svm``: an SVM on breast_cancer (standardised); the kernel decides which of
  gamma (not linear) and degree (poly only) exist. 248 points; 3x5-fold CV error.
* ``cancer_hgb``: histogram gradient boosting on breast_cancer: learning rate, leaves, minimum
  leaf size, L2 and the number of iterations (integer-heavy). 576 points; 3-fold CV log loss.
* ``diabetes_knn``: k-nearest-neighbour regression on diabetes after a scaler and PCA: k,
  weights, Minkowski p, scaler, components. 2,400 points; 2x5-fold CV RMSE.
* ``wine_mlp``: an MLP on wine with its optimizer's own settings: SGD's momentum, Nesterov
  (only with momentum) and schedule, or Adam's beta_1; learning rate, width, L2. 432 points;
  3-fold CV log loss after at most 30 epochs (scikit-learn's stopping rule).
* ``cancer_cash``: model selection and its settings at once (a conditional space): logistic
  regression, k-NN, an RBF SVM or a random forest, each with its own parameters, after a
  scaler. 260 points; 3x5-fold CV error.
* ``digits_sgd``: a linear classifier by SGD on digits: loss, penalty (elastic-net's ratio
  only for elasticnet), alpha, schedule and its initial rate (not for ``optimal``). 975
  points; 3-fold CV error after 20 epochs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from propagator.space import Categorical, Int, Space

from .base import Problem
from .grid import table_problem

HERE = Path(__file__).parent


@dataclass(frozen=True)
class Table:
    """One tabulated problem: its space, CSV and the column that is the objective."""

    name: str
    space: Space
    columns: tuple[str, ...]  # measured columns; the first is the objective

    @property
    def path(self) -> Path:
        return HERE / f"{self.name}.csv"

    def problem(self) -> Problem:
        """The table as a problem (its first column minimised)."""
        return table_problem(self.name, self.space, self.path, self.columns[0])


_SVM = Space(
    {
        "kernel": Categorical(["linear", "rbf", "poly", "sigmoid"]),
        "log10_C": Int(-3, 4),
        "log10_gamma": Int(-5, 0, when="kernel != 'linear'"),
        "degree": Int(2, 4, when="kernel == 'poly'"),
    }
)
_HGB = Space(
    {
        "log2_lr": Int(-6, -1),
        "log2_leaves": Int(2, 5),
        "log2_min_leaf": Int(2, 4),
        "l2": Categorical([0.0, 1.0]),
        "log2_iters": Int(5, 8),
    }
)
_KNN = Space(
    {
        "n_neighbors": Int(1, 25),
        "weights": Categorical(["uniform", "distance"]),
        "p": Int(1, 2),
        "scaler": Categorical(["standard", "minmax", "robust"]),
        "n_components": Int(3, 10),
    }
)
_MLP = Space(
    {
        "solver": Categorical(["sgd", "adam"]),
        "log10_lr": Int(-4, -1),
        "momentum": Categorical([0.0, 0.5, 0.9], when="solver == 'sgd'"),
        "nesterov": Categorical([False, True], when="solver == 'sgd' and momentum > 0"),
        "schedule": Categorical(["constant", "invscaling", "adaptive"], when="solver == 'sgd'"),
        "beta_1": Categorical([0.8, 0.9, 0.95], when="solver == 'adam'"),
        "log2_width": Int(4, 6),
        "alpha": Categorical([1e-4, 1e-2]),
    }
)
_CASH = Space(
    {
        "scaler": Categorical(["standard", "minmax"]),
        "model": Categorical(["logreg", "knn", "svm", "forest"]),
        "logreg_log10_C": Int(-4, 3, when="model == 'logreg'"),
        "logreg_penalty": Categorical(["l1", "l2"], when="model == 'logreg'"),
        "knn_k": Int(1, 30, when="model == 'knn'"),
        "knn_weights": Categorical(["uniform", "distance"], when="model == 'knn'"),
        "svm_log10_C": Int(-2, 3, when="model == 'svm'"),
        "svm_log10_gamma": Int(-4, 0, when="model == 'svm'"),
        "forest_max_depth": Int(1, 8, when="model == 'forest'"),
        "forest_max_features": Categorical(["sqrt", "half", "all"], when="model == 'forest'"),
    }
)
_SGD = Space(
    {
        "loss": Categorical(["hinge", "log_loss", "modified_huber"]),
        "penalty": Categorical(["l2", "l1", "elasticnet"]),
        "l1_ratio": Categorical([0.15, 0.5, 0.85], when="penalty == 'elasticnet'"),
        "log10_alpha": Int(-6, -2),
        "schedule": Categorical(["optimal", "constant", "invscaling", "adaptive"]),
        "log10_eta0": Int(-4, -1, when="schedule != 'optimal'"),
    }
)

TABLES = {
    t.name: t
    for t in (
        Table("cancer_svm", _SVM, ("cv_error",)),
        Table("cancer_hgb", _HGB, ("cv_log_loss", "cv_error")),
        Table("diabetes_knn", _KNN, ("cv_rmse",)),
        Table("wine_mlp", _MLP, ("cv_log_loss", "cv_error")),
        Table("cancer_cash", _CASH, ("cv_error",)),
        Table("digits_sgd", _SGD, ("cv_error",)),
    )
}


def sklearn_problems() -> tuple[Problem, ...]:
    """Every table of :data:`TABLES` as a problem, in that order."""
    return tuple(t.problem() for t in TABLES.values())
