"""``oialr``: Orthogonality-Informed Adaptive Low-Rank training (Coquelin's thesis, Ch. 4,
Algorithm 1; see ``reference/methods/daso_oialr_ab_propulate.md`` §2).

Data-parallel like ``baseline`` (gradients averaged over the worker's ranks every step). The
first ``delay`` steps train the full-rank network; then every eligible weight ``W`` (``nn.Linear``
and ``nn.Conv2d`` with one group, the latter as the ``out x (in*kh*kw)`` matrix) becomes
``U Σ Vᵀ`` from its compact SVD. ``U`` and ``V`` are frozen; only the dense ``r x r`` matrix ``Σ``
is trained (Eq. 4.12). Every ``frequency`` steps the last ``ℓ`` low-rank layers are
re-decomposed (Eq. 4.13: ``U', Σ', V'ᵀ = SVD(Σ)``, ``U <- U U'``, ``Vᵀ <- V'ᵀ Vᵀ``,
``Σ <- Σ'``), singular values below ``sigma_cutoff * max`` are dropped, and the optimizer's
states follow ``Σ`` into its new basis and rank. ``ℓ = ceil(L * layer_fraction * u)`` after the
``u``-th update, ``L`` being the number of low-rank layers, so the layers nearest the output,
whose bases stabilise first, are cut first.

Params (:data:`OIALR_PARAMS`, besides the baseline's data, model, optimizer, schedule, loop and
runtime; defaults and ranges in the README):

* ``delay`` d (steps, default one third of all training steps, the thesis's advice): full-rank
  steps before the switch; 0 trains low-rank from the initial weights (Table A.4's "full-rank
  warm-up False").
* ``frequency`` ν (steps, default ``max(1, total_steps // 20)``): steps between two low-rank
  updates. The thesis gives no default; this one leaves about 13 updates after the default
  delay, more than the ``1 / layer_fraction = 10`` it takes for every layer to be included.
* ``sigma_cutoff`` β (fraction in [0, 1), default 0.1): singular values ``< β max(Σ)`` are
  dropped at an update.
* ``layer_fraction`` α (fraction in (0, 1], default 0.1): share of the low-rank layers added to
  the updated ones at every update.
* ``full_rank_first`` (default false) and ``full_rank_last`` (default true): keep the first or
  last weight layer (in module order) full-rank (the settings of Tables A.1 and A.2).

Metrics beyond :func:`trainers.framework.finish`'s: ``trainable_parameters`` (at the end, so
after the switch), ``trainable_vs_full`` (trainable / all parameters of the full-rank model: the
thesis's "Trainable" column), ``compression`` (all parameters of the low-rank model / the
full-rank model's; the thesis's "1:x" is ``x = 1 / compression``), ``mean_rank``, ``rank0``,
``rank1``, ... (the inner rank of each low-rank layer in module order; ``min(m, n)`` for a layer
never converted), ``low_rank_layers`` (L) and ``low_rank_updates``. ``trainable_share`` from
``finish`` is trainable / all parameters of the model as it ends, the frozen ``U`` and ``V``
included.

Choices where the reference leaves room, and why:

* Updates fall every ν steps counted from the switch (steps ``d + ν, d + 2ν, ...``), not at
  ``t mod ν = 0`` as the listing writes: with short runs and ``d`` not a multiple of ν, the
  listing could cut a layer one step after the switch, before ``Σ`` was trained at all. The
  switch itself drops nothing (the listing converts at ``t = d`` and cuts only at updates).
* ``ℓ`` grows once per update, not once per layer (the listing indents ``ℓ <- ℓ + Lα`` inside
  the layer loop; the text says ``ℓ = L α u``), and is rounded up so that a small network
  (``L α < 1``) still updates a layer at the first update.
* Optimizer states are carried over, not reset (the thesis says "reshape"): first moments
  (SGD momentum, Adam's ``exp_avg``) are linear in the gradient and are rotated exactly,
  ``M <- Pᵀ M Q`` (at the switch ``P = U, Q = V``; at an update ``P = U'``, ``Q = V'``, truncated);
  second moments are per-entry variances, rotated as those of independent entries,
  ``S <- (P∘P)ᵀ S (Q∘Q)``, which keeps them non-negative. Adam's step count is kept.
* After the switch and after each update the worker's rank 0 broadcasts the singular values and
  the new ``U`` and ``V``: SVDs are not bitwise reproducible across devices and libraries, and
  ranks whose bases or kept ranks differed would silently train different models (or deadlock
  on mismatched shapes). These broadcasts count in ``bytes_sent`` on rank 0.
* Only ``nn.Linear`` and ``nn.Conv2d`` themselves (not subclasses such as attention's output
  projection, whose weight ``nn.MultiheadAttention`` reads directly) are eligible, convolutions
  only with one group and zero padding (what ``F.conv2d`` does with the factored kernel).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from propagator import ConfigError, Trial

from .baseline import data_parallel
from .collectives import Collectives
from .framework import DATA_PARALLEL, METRICS, count_parameters
from .params import Table, Trainer, Values, flag, integer, real

OIALR_PARAMS = Table(
    "oialr",
    (
        integer(
            "delay",
            None,
            "d: full-rank steps before the switch",
            ">= 0",
            derived="total steps // 3",
        ),
        integer(
            "frequency",
            None,
            "ν: steps between low-rank updates",
            ">= 1",
            derived="max(1, total steps // 20)",
        ),
        real("sigma_cutoff", 0.1, "β: singular values < β max are dropped", "[0, 1)"),
        real("layer_fraction", 0.1, "α: share of the low-rank layers added per update", "(0, 1]"),
        flag("full_rank_first", False, "keep the first weight layer full-rank"),
        flag("full_rank_last", True, "keep the last weight layer full-rank"),
    ),
).mark_structural("full_rank_first", "full_rank_last")
FIRST_MOMENTS = ("exp_avg", "momentum_buffer")
SECOND_MOMENTS = ("exp_avg_sq", "max_exp_avg_sq")


@dataclass(frozen=True)
class Settings:
    """Algorithm 1's hyperparameters, validated (see the module docstring)."""

    delay: int
    frequency: int
    sigma_cutoff: float
    layer_fraction: float
    full_rank_first: bool
    full_rank_last: bool


def settings(params: Mapping[str, Any], total_steps: int) -> Settings:
    """Algorithm 1's hyperparameters (:data:`OIALR_PARAMS`) for a run of ``total_steps``."""
    p = OIALR_PARAMS.read(params)
    return Settings(
        total_steps // 3 if p["delay"] is None else p["delay"],
        max(1, total_steps // 20) if p["frequency"] is None else p["frequency"],
        p["sigma_cutoff"],
        p["layer_fraction"],
        p["full_rank_first"],
        p["full_rank_last"],
    )


class LowRankLayer(nn.Module):
    """A linear or 2-D convolutional layer whose weight is ``U Σ Vᵀ`` (``U``, ``V`` frozen).

    Built from a full-rank layer by :meth:`from_layer`, keeping its bias parameter itself (so
    that the optimizer's state for it carries on).
    """

    def __init__(
        self, u: torch.Tensor, s: torch.Tensor, v: torch.Tensor, layer: nn.Linear | nn.Conv2d
    ) -> None:
        super().__init__()
        self.u = nn.Parameter(u.contiguous(), requires_grad=False)
        self.sigma = nn.Parameter(torch.diag(s))
        self.v = nn.Parameter(v.contiguous(), requires_grad=False)
        self.bias = layer.bias
        self.shape = tuple(layer.weight.shape)
        self.conv = (
            {"stride": layer.stride, "padding": layer.padding, "dilation": layer.dilation}
            if isinstance(layer, nn.Conv2d)
            else None
        )

    @classmethod
    @torch.no_grad()
    def from_layer(cls, layer: nn.Linear | nn.Conv2d, comm: Collectives) -> LowRankLayer:
        """The compact SVD of ``layer``'s weight, rank 0's on every rank."""
        u, s, vh = torch.linalg.svd(_matrix(layer.weight), full_matrices=False)
        comm.broadcast_(s, root=0)
        new = cls(u, s, vh.T, layer)
        broadcast_factors(new, comm)
        return new

    @property
    def rank(self) -> int:
        return self.sigma.shape[0]

    @property
    def weight(self) -> torch.Tensor:
        """The full weight ``U Σ Vᵀ`` in the original layer's shape (for code that reads it)."""
        return (self.u @ self.sigma @ self.v.T).reshape(self.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv is not None:
            return F.conv2d(x, self.weight, self.bias, **self.conv)
        # three thin products instead of forming the m x n weight
        return F.linear(F.linear(F.linear(x, self.v.T), self.sigma), self.u, self.bias)

    @torch.no_grad()
    def redecompose(self, cutoff: float, comm: Collectives) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. 4.13 and the cut: rotate ``U`` and ``V`` by the SVD of ``Σ`` and keep the
        singular values ``>= cutoff * max``. ``Σ`` becomes a new parameter. Returns the kept
        rotations ``(P, Q)`` (``r x k``, ``Σ_new = Pᵀ Σ Q``), for the optimizer's states."""
        p, s, qh = torch.linalg.svd(self.sigma.detach(), full_matrices=False)
        comm.broadcast_(s, root=0)  # every rank keeps the same rank
        k = max(1, int((s >= cutoff * s[0]).sum()))
        p, q = p[:, :k].contiguous(), qh[:k].T.contiguous()
        # new parameters rather than new ``.data``: autograd caches a parameter's shape
        self.u = nn.Parameter(self.u @ p, requires_grad=False)
        self.v = nn.Parameter(self.v @ q, requires_grad=False)
        self.sigma = nn.Parameter(torch.diag(s[:k]))
        broadcast_factors(self, comm)
        return p, q


def _matrix(weight: torch.Tensor) -> torch.Tensor:
    """A weight as a matrix: ``out x in``, or ``out x (in*kh*kw)`` for a conv kernel."""
    return weight.detach().reshape(weight.shape[0], -1)


def broadcast_factors(layer: LowRankLayer, comm: Collectives) -> None:
    """Overwrite ``U`` and ``V`` with the worker's rank 0's (see the module docstring)."""
    comm.broadcast_(layer.u.data, root=0)
    comm.broadcast_(layer.v.data, root=0)


def rotate_state(state: dict[str, Any], p: torch.Tensor, q: torch.Tensor) -> dict[str, Any]:
    """An optimizer's state for ``A`` (``m x n``, or a conv kernel) as the state for
    ``Pᵀ A Q`` (see the module docstring)."""
    rotated = {}
    for key, value in state.items():
        if value is None:  # SGD without momentum
            pass
        elif key in FIRST_MOMENTS:
            value = p.T @ value.reshape(p.shape[0], -1) @ q
        elif key in SECOND_MOMENTS:
            value = (p * p).T @ value.reshape(p.shape[0], -1) @ (q * q)
        rotated[key] = value
    return rotated


def _swap_in_optimizer(
    optimizer: torch.optim.Optimizer, old: nn.Parameter, new: nn.Parameter
) -> None:
    """Put ``new`` where ``old`` was in the optimizer, so that its schedule carries on."""
    for group in optimizer.param_groups:
        group["params"] = [new if p is old else p for p in group["params"]]
    state = optimizer.state.pop(old, None)
    if state is not None:
        optimizer.state[new] = state


def _eligible(model: nn.Module, s: Settings) -> list[str]:
    """Names of the weight layers that become low-rank, in module order."""
    names = [
        name
        for name, m in model.named_modules()
        if type(m) is nn.Linear
        or (type(m) is nn.Conv2d and m.groups == 1 and m.padding_mode == "zeros")
    ]
    if not names:
        return []
    first, last = names[0], names[-1]
    return [
        n
        for n in names
        if not (s.full_rank_first and n == first) and not (s.full_rank_last and n == last)
    ]


class OIALR:
    """Algorithm 1 on a model and its optimizer: call :meth:`before_step` with the step index
    (from 0) before every training step."""

    def __init__(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, comm: Collectives, s: Settings
    ) -> None:
        self.model, self.optimizer, self.comm, self.s = model, optimizer, comm, s
        self.names = _eligible(model, s)
        self.layers: list[LowRankLayer] = []
        self.updates = 0
        self.full_parameters = count_parameters(model)[0]

    def before_step(self, t: int) -> None:
        if self.names and bool(self.layers) != (t > self.s.delay):
            # only after a resume whose delay puts the switch on the other side of the pause
            done, need = ("has", f"below {t}") if self.layers else ("has not", f"at least {t}")
            raise ConfigError(
                f"parameter 'delay': the resumed training {done} switched to low rank before "
                f"step {t}, so delay must be {need}, got {self.s.delay}"
            )
        if t == self.s.delay:
            self.switch()
        elif self.layers and t > self.s.delay and (t - self.s.delay) % self.s.frequency == 0:
            self.update()

    def switch(self) -> None:
        """Replace every eligible layer by its ``U Σ Vᵀ`` form (nothing dropped yet)."""
        for name in self.names:
            parent_name, _, child = name.rpartition(".")
            parent = self.model.get_submodule(parent_name)
            full = getattr(parent, child)
            layer = LowRankLayer.from_layer(full, self.comm)
            self._move_state(full.weight, layer.sigma, layer.u, layer.v)
            setattr(parent, child, layer)
            self.layers.append(layer)

    def update(self) -> None:
        """Re-decompose and cut the last ``ℓ`` low-rank layers (Eq. 4.13)."""
        self.updates += 1
        share = round(len(self.layers) * self.s.layer_fraction * self.updates, 9)
        count = min(len(self.layers), math.ceil(share))
        for layer in self.layers[len(self.layers) - count :]:
            old = layer.sigma
            p, q = layer.redecompose(self.s.sigma_cutoff, self.comm)
            self._move_state(old, layer.sigma, p, q)

    def _move_state(
        self, old: nn.Parameter, new: nn.Parameter, p: torch.Tensor, q: torch.Tensor
    ) -> None:
        state = self.optimizer.state.get(old)
        if state:
            self.optimizer.state[old] = rotate_state(state, p, q)
        _swap_in_optimizer(self.optimizer, old, new)

    def state_dict(self) -> dict[str, Any]:
        """The updates so far and each low-rank layer's rank (none before the switch); the
        factors themselves are the model's parameters."""
        return {"updates": self.updates, "ranks": [layer.rank for layer in self.layers]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Rebuild the low-rank layers of a model that was switched before it was saved, in
        their saved shapes (its parameters, the optimizer's and its state are loaded next)."""
        self.updates = state["updates"]
        # no ranks before the switch: then the layers stay full-rank
        for name, rank in zip(self.names, state["ranks"], strict=False):
            parent_name, _, child = name.rpartition(".")
            parent = self.model.get_submodule(parent_name)
            full = getattr(parent, child)
            m, n = _matrix(full.weight).shape
            weight = full.weight.detach()
            u, s, v = weight.new_zeros(m, rank), weight.new_ones(rank), weight.new_zeros(n, rank)
            layer = LowRankLayer(u, s, v, full)
            _swap_in_optimizer(self.optimizer, full.weight, layer.sigma)
            setattr(parent, child, layer)
            self.layers.append(layer)

    def metrics(self) -> dict[str, float]:
        total, trainable = count_parameters(self.model)
        ranks = [layer.rank for layer in self.layers] or [
            min(_matrix(self.model.get_submodule(n).weight).shape) for n in self.names
        ]
        out = {
            "trainable_parameters": float(trainable),
            "trainable_vs_full": trainable / self.full_parameters,
            "compression": total / self.full_parameters,
            "mean_rank": sum(ranks) / len(ranks) if ranks else math.nan,
            "low_rank_layers": float(len(self.names)),
            "low_rank_updates": float(self.updates),
        }
        out.update({f"rank{i}": float(r) for i, r in enumerate(ranks)})
        return out


def _train(params: Values, trial: Trial) -> dict[str, float]:
    return data_parallel(
        params,
        trial,
        lambda model, optimizer, comm, total: OIALR(
            model, optimizer, comm, settings(params, total)
        ),
    )


train = Trainer(
    "oialr",
    (*DATA_PARALLEL, OIALR_PARAMS),
    (
        *METRICS,
        "trainable_parameters",
        "trainable_vs_full",
        "compression",
        "mean_rank",
        "low_rank_layers",
        "low_rank_updates",
    ),
    _train,
)
