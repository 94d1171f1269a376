"""Data for the trainers: deterministic synthetic sets, scikit-learn's bundled ``digits``, and
the user's own arrays (NPZ or HDF5). Every rank of a worker builds the same split and keeps
its shard of the training set; validation uses the whole validation set on every rank.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from propagator import ConfigError

from .params import Table, Values, choice, flag, integer, real, text

DATASETS = ("digits", "classification", "teacher", "regression")
FILES = (".npz", ".h5", ".hdf5")

DATA = Table(
    "data",
    (
        choice(
            "dataset",
            "digits",
            "scikit-learn's digits, a synthetic set, or a .npz/.h5 file of arrays",
            DATASETS,
            suffixes=FILES,
        ),
        integer("n_samples", 2000, "samples of a synthetic set", ">= 10"),
        integer("n_features", 20, "features of a synthetic set", ">= 1"),
        integer("n_classes", 4, "classes of a synthetic classification set", ">= 2"),
        integer("data_seed", 0, "seed of the synthetic data and of the split", ">= 0"),
        real("val_fraction", 0.2, "share of the samples held out for validation", "(0, 1)"),
        flag("image", False, "digits as 1x8x8 images (for resnet and vit)"),
        text("x_key", "x", "the features' array in a .npz/.h5 file"),
        text("y_key", "y", "the labels' (or targets') array in a .npz/.h5 file"),
    ),
)
# a resumed training must see the samples it was trained on
DATA = DATA.mark_structural(*DATA.names)


@dataclass(frozen=True)
class Data:
    """A train/validation split.

    Attributes:
        x_train, y_train: this rank's shard of the training set.
        x_val, y_val: the whole validation set.
        task: ``"classification"`` (integer labels) or ``"regression"`` (float targets).
        n_outputs: classes, or regression targets.
        input_shape: shape of one sample, e.g. ``(64,)`` or ``(1, 8, 8)``.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    task: str
    n_outputs: int
    input_shape: tuple[int, ...]


def load_data(params: Mapping[str, Any], rank: int = 0, size: int = 1) -> Data:
    """The data set :data:`DATA`'s params name, split for validation, with this rank's shard
    (rank ``rank`` of ``size``) of the training set.

    Raises:
        ConfigError: a bad param, or a file that is missing or lacks the arrays.
    """
    p = DATA.read(params)
    name, seed, val_fraction = p["dataset"], p["data_seed"], p["val_fraction"]
    if name.endswith((".h5", ".hdf5")):
        return _hdf5(Path(name), p, val_fraction, seed, rank, size)
    if name == "digits":
        x, y, task = _digits(p["image"])
    elif name == "classification":
        x, y, task = _classification(p, seed)
    elif name == "teacher":
        x, y, task = _teacher(p, seed)
    elif name == "regression":
        x, y, task = _regression(p, seed)
    else:
        x, y, task = _npz(Path(name), p)
    return _split(x, y, task, val_fraction, seed, rank, size)


def _digits(image: bool) -> tuple[np.ndarray, np.ndarray, str]:
    table = _digits_table()
    x = table[:, :-1].astype(np.float32) / 16.0
    return (
        (x.reshape(-1, 1, 8, 8) if image else x),
        table[:, -1].astype(np.int64),
        "classification",
    )


def _digits_table() -> np.ndarray:
    """The 1,797 digits (64 pixels and the label per row) that scikit-learn bundles: no
    download. The file is read where scikit-learn keeps it, without importing scikit-learn,
    which would cost every rank of a worker a second or more."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("dataset 'digits' needs scikit-learn (pip install scikit-learn)")
    path = Path(spec.submodule_search_locations[0], "datasets", "data", "digits.csv.gz")
    if not path.is_file():  # another layout of scikit-learn's files
        from sklearn.datasets import load_digits

        digits = load_digits()
        return np.column_stack([digits.data, digits.target])
    return np.loadtxt(path, delimiter=",")


def _classification(params: Values, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Gaussian clusters around random centres, a few per class, in a random rotation."""
    rng = np.random.default_rng(seed)
    n, d, k = params["n_samples"], params["n_features"], params["n_classes"]
    centres = rng.normal(0, 2.0, (k * 3, d))
    cluster = rng.integers(0, k * 3, n)
    x = centres[cluster] + rng.normal(0, 1.0, (n, d))
    return x.astype(np.float32), (cluster % k).astype(np.int64), "classification"


def _teacher(params: Values, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Labels drawn from the softmax of a random two-layer tanh network of the features (a
    stand-in for frame classification such as TIMIT's): classes overlap, so the best training
    loss stays above zero until a model memorises the noise."""
    rng = np.random.default_rng(seed)
    n, d, k = params["n_samples"], params["n_features"], params["n_classes"]
    x = rng.normal(0, 1.0, (n, d))
    hidden = np.tanh(x @ rng.normal(0, 1.5 / np.sqrt(d), (d, 64)))
    logits = hidden @ rng.normal(0, 6.0 / np.sqrt(64), (64, k))
    y = (logits + rng.gumbel(size=(n, k))).argmax(1)  # a sample of softmax(logits)
    return x.astype(np.float32), y.astype(np.int64), "classification"


def _regression(params: Values, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """A smooth nonlinear target of a few features, plus noise."""
    rng = np.random.default_rng(seed)
    n, d = params["n_samples"], params["n_features"]
    x = rng.normal(0, 1.0, (n, d))
    w = rng.normal(0, 1.0, d) / np.sqrt(d)
    y = np.sin(x @ w) + 0.5 * (x[:, 0] * x[:, 1 % d]) + rng.normal(0, 0.1, n)
    return x.astype(np.float32), y[:, None].astype(np.float32), "regression"


def _keys(path: Path, params: Values, found: Any, what: str) -> tuple[str, str]:
    xk, yk = params["x_key"], params["y_key"]
    missing = [k for k in (xk, yk) if k not in found]
    if missing:
        raise ConfigError(f"dataset: {path} has no {what} {missing[0]!r} (it has {list(found)})")
    return xk, yk


def _exists(path: Path) -> Path:
    if not path.exists():
        raise ConfigError(f"dataset: no file {str(path)!r}")
    return path


def _npz(path: Path, params: Values) -> tuple[np.ndarray, np.ndarray, str]:
    with np.load(_exists(path)) as f:
        xk, yk = _keys(path, params, f, "array")
        y, task = _labels(f[yk])
        return f[xk].astype(np.float32), y, task


def _hdf5(path: Path, params: Values, val_fraction: float, seed: int, rank: int, size: int) -> Data:
    """Reads only this rank's shard and the validation rows of the features from the file."""
    import h5py

    with h5py.File(_exists(path), "r", locking=False) as f:
        xk, yk = _keys(path, params, f, "dataset")
        y, task = _labels(f[yk][...])  # labels are small; the features are what is sharded
        return _split(f[xk], y, task, val_fraction, seed, rank, size)


def _labels(y: np.ndarray) -> tuple[np.ndarray, str]:
    """Integer vectors are class labels; anything else is a regression target."""
    if np.issubdtype(y.dtype, np.integer) and y.ndim == 1:
        return y.astype(np.int64), "classification"
    return y.reshape(len(y), -1).astype(np.float32), "regression"


def _rows(x: Any, index: np.ndarray) -> torch.Tensor:
    """``x[index]`` as float32; an HDF5 dataset is read in increasing row order (what h5py
    selections need) and put back in ``index`` order."""
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x[index].astype(np.float32, copy=False))
    order = np.argsort(index)
    rows = np.empty((len(index), *x.shape[1:]), dtype=np.float32)
    rows[order] = x[index[order]]
    return torch.from_numpy(rows)


def _split(
    x: Any, y: np.ndarray, task: str, val_fraction: float, seed: int, rank: int, size: int
) -> Data:
    order = np.random.default_rng(seed + 1).permutation(len(x))
    n_val = max(1, round(val_fraction * len(x)))
    val, train = order[:n_val], order[n_val:]
    train = train[rank::size]  # this rank's shard: the union over ranks is the training set
    n_outputs = int(y.max()) + 1 if task == "classification" else y.shape[1]
    return Data(
        _rows(x, train),
        torch.from_numpy(y[train]),
        _rows(x, val),
        torch.from_numpy(y[val]),
        task,
        n_outputs,
        tuple(x.shape[1:]),
    )
