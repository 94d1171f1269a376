"""Data for the trainers: deterministic synthetic sets, scikit-learn's bundled ``digits``, and
the user's own arrays (NPZ or HDF5). Every rank of a worker builds the same split and keeps
its shard of the training set; validation uses the whole validation set on every rank.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from propagator import ConfigError


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


def load_data(params: dict[str, Any], rank: int = 0, size: int = 1) -> Data:
    """The data named by ``params["dataset"]`` (default ``"digits"``).

    ``dataset`` is ``digits``, ``classification`` / ``teacher`` / ``regression`` (synthetic;
    ``n_samples`` default 2000, ``n_features`` 20, ``n_classes`` 4, ``data_seed`` 0), or a
    ``.npz``/``.h5``
    file with arrays ``x_key``/``y_key`` (default ``x``/``y``). ``val_fraction`` (default 0.2)
    is held out. ``image: true`` keeps digits as 1x8x8 images (for CNNs and ViTs).
    """
    name = params.get("dataset", "digits")
    seed = int(params.get("data_seed", 0))
    val_fraction = float(params.get("val_fraction", 0.2))
    if str(name).endswith((".h5", ".hdf5")):
        return _hdf5(Path(name), params, val_fraction, seed, rank, size)
    if name == "digits":
        x, y, task = _digits(bool(params.get("image", False)))
    elif name == "classification":
        x, y, task = _classification(params, seed)
    elif name == "teacher":
        x, y, task = _teacher(params, seed)
    elif name == "regression":
        x, y, task = _regression(params, seed)
    elif str(name).endswith(".npz"):
        x, y, task = _npz(Path(name), params)
    else:
        raise ConfigError(
            "dataset must be digits, classification, teacher, regression or a .npz/.h5 file, "
            f"got {name!r}"
        )
    return _split(x, y, task, val_fraction, seed, rank, size)


def _digits(image: bool) -> tuple[np.ndarray, np.ndarray, str]:
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    digits = load_digits()
    x = digits.data.astype(np.float32) / 16.0
    return (
        (x.reshape(-1, 1, 8, 8) if image else x),
        digits.target.astype(np.int64),
        "classification",
    )


def _classification(params: dict[str, Any], seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Gaussian clusters around random centres, a few per class, in a random rotation."""
    rng = np.random.default_rng(seed)
    n, d, k = (
        int(params.get("n_samples", 2000)),
        int(params.get("n_features", 20)),
        int(params.get("n_classes", 4)),
    )
    centres = rng.normal(0, 2.0, (k * 3, d))
    cluster = rng.integers(0, k * 3, n)
    x = centres[cluster] + rng.normal(0, 1.0, (n, d))
    return x.astype(np.float32), (cluster % k).astype(np.int64), "classification"


def _teacher(params: dict[str, Any], seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Labels drawn from the softmax of a random two-layer tanh network of the features (a
    stand-in for frame classification such as TIMIT's): classes overlap, so the best training
    loss stays above zero until a model memorises the noise."""
    rng = np.random.default_rng(seed)
    n, d, k = (
        int(params.get("n_samples", 2000)),
        int(params.get("n_features", 20)),
        int(params.get("n_classes", 4)),
    )
    x = rng.normal(0, 1.0, (n, d))
    hidden = np.tanh(x @ rng.normal(0, 1.5 / np.sqrt(d), (d, 64)))
    logits = hidden @ rng.normal(0, 6.0 / np.sqrt(64), (64, k))
    y = (logits + rng.gumbel(size=(n, k))).argmax(1)  # a sample of softmax(logits)
    return x.astype(np.float32), y.astype(np.int64), "classification"


def _regression(params: dict[str, Any], seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """A smooth nonlinear target of a few features, plus noise."""
    rng = np.random.default_rng(seed)
    n, d = int(params.get("n_samples", 2000)), int(params.get("n_features", 20))
    x = rng.normal(0, 1.0, (n, d))
    w = rng.normal(0, 1.0, d) / np.sqrt(d)
    y = np.sin(x @ w) + 0.5 * (x[:, 0] * x[:, 1 % d]) + rng.normal(0, 0.1, n)
    return x.astype(np.float32), y[:, None].astype(np.float32), "regression"


def _keys(path: Path, params: dict[str, Any], found: Any, what: str) -> tuple[str, str]:
    xk, yk = params.get("x_key", "x"), params.get("y_key", "y")
    missing = [k for k in (xk, yk) if k not in found]
    if missing:
        raise ConfigError(f"dataset: {path} has no {what} {missing[0]!r} (it has {list(found)})")
    return xk, yk


def _exists(path: Path) -> Path:
    if not path.exists():
        raise ConfigError(f"dataset: no file {str(path)!r}")
    return path


def _npz(path: Path, params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, str]:
    with np.load(_exists(path)) as f:
        xk, yk = _keys(path, params, f, "array")
        y, task = _labels(f[yk])
        return f[xk].astype(np.float32), y, task


def _hdf5(
    path: Path, params: dict[str, Any], val_fraction: float, seed: int, rank: int, size: int
) -> Data:
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
