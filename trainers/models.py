"""Models built from params, so that architectures can be searched (NAS).

* ``mlp``: ``depth`` hidden layers of ``width`` units (``width1``, ``width2``, ... override
  single layers), ``activation``, ``norm`` (``none``/``batch``/``layer``), ``dropout``.
* ``resnet``: a small ResNet for images: ``blocks`` residual blocks of ``filters`` channels
  (doubling every ``blocks_per_stage``), ``activation``, and ``order``, the placement of
  normalisation and activation in a block as in Table 6.1 of the DASO/OIALR/AB/Propulate
  notes (He et al., 2016, Fig. 4): ``original``, ``bn_after_addition``,
  ``activation_before_addition``, ``relu_only_preactivation``, ``full_preactivation``.
* ``vit``: a small vision transformer: ``patch`` size, ``dim``, ``depth``, ``heads``,
  ``mlp_ratio``, ``dropout``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from propagator import ConfigError

from .params import Table, Values, choice, integer, real

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "selu": nn.SELU,
    "sigmoid": nn.Sigmoid,
    "softplus": nn.Softplus,
    "softsign": nn.Softsign,
    "swish": nn.SiLU,
    "hard_sigmoid": nn.Hardsigmoid,
    "linear": nn.Identity,
}
ORDERS = (
    "original",
    "bn_after_addition",
    "activation_before_addition",
    "relu_only_preactivation",
    "full_preactivation",
)


MODELS = ("mlp", "resnet", "vit")
VIT_ACTIVATIONS = ("gelu", "relu")  # what nn.TransformerEncoderLayer takes by name

MODEL = Table(
    "model",
    (
        choice("model", "mlp", "the model family", MODELS),
        integer("depth", 2, "mlp: hidden layers; vit: transformer layers", ">= 0"),
        integer(
            "width", 64, "mlp: units per hidden layer (widthI: layer I's)", ">= 1", indexed=True
        ),
        choice(
            "activation",
            None,
            "the activation function",
            tuple(ACTIVATIONS),
            derived="relu; gelu for vit (which takes gelu or relu)",
        ),
        choice(
            "norm", "none", "mlp: normalisation after each hidden layer", ("none", "batch", "layer")
        ),
        real("dropout", 0.0, "mlp, vit: dropout probability", "[0, 1)"),
        integer("filters", 16, "resnet: channels of the first stage", ">= 1"),
        integer("blocks", 2, "resnet: residual blocks", ">= 0"),
        integer("blocks_per_stage", 2, "resnet: blocks per stage (channels double)", ">= 1"),
        choice("order", "original", "resnet: normalisation and activation in a block", ORDERS),
        integer("patch", 2, "vit: patch size (pixels)", ">= 1"),
        integer("dim", 32, "vit: embedding width", ">= 1"),
        integer("heads", 2, "vit: attention heads (must divide dim)", ">= 1"),
        real("mlp_ratio", 2.0, "vit: feed-forward width / dim", "> 0"),
    ),
)
# the saved weights belong to this architecture; only the dropout rate may change on resuming
MODEL = MODEL.mark_structural(*(n for n in MODEL.names if n != "dropout"))


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ConfigError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]()


def build_model(
    params: Mapping[str, Any], input_shape: tuple[int, ...], n_outputs: int
) -> nn.Module:
    """The model :data:`MODEL`'s params describe, for these input and output sizes."""
    p = MODEL.read(params)
    if p["model"] == "mlp":
        return mlp(p, math.prod(input_shape), n_outputs)
    if p["model"] == "resnet":
        return ResNet(p, input_shape, n_outputs)
    return ViT(p, input_shape, n_outputs)


def mlp(params: Values, n_in: int, n_out: int) -> nn.Sequential:
    """``depth`` hidden layers of ``widthI`` (or ``width``) units, then the output layer."""
    norm, dropout = params["norm"], params["dropout"]
    layers: list[nn.Module] = [nn.Flatten()]
    width_in = n_in
    for i in range(1, params["depth"] + 1):
        width = params.indexed("width", i)
        layers.append(nn.Linear(width_in, width))
        if norm == "batch":
            layers.append(nn.BatchNorm1d(width))
        elif norm == "layer":
            layers.append(nn.LayerNorm(width))
        layers.append(activation(params["activation"] or "relu"))
        if dropout:
            layers.append(nn.Dropout(dropout))
        width_in = width
    layers.append(nn.Linear(width_in, n_out))
    return nn.Sequential(*layers)


class _Block(nn.Module):
    """A residual block of two 3x3 convolutions with one of the five orders of ``ORDERS``."""

    def __init__(self, c_in: int, c_out: int, stride: int, order: str, act: str) -> None:
        super().__init__()
        self.order = order
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_in if order == "full_preactivation" else c_out)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.act1, self.act2 = activation(act), activation(act)
        self.shortcut = (
            nn.Identity()
            if stride == 1 and c_in == c_out
            else nn.Conv2d(c_in, c_out, 1, stride, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = self.order
        if o == "full_preactivation":
            h = self.conv1(self.act1(self.bn1(x)))
            return self.shortcut(x) + self.conv2(self.act2(self.bn2(h)))
        if o == "relu_only_preactivation":
            h = self.bn1(self.conv1(self.act1(x)))
            return self.shortcut(x) + self.bn2(self.conv2(self.act2(h)))
        h = self.act1(self.bn1(self.conv1(x)))
        h = self.conv2(h)
        if o == "original":
            return self.act2(self.shortcut(x) + self.bn2(h))
        if o == "bn_after_addition":
            return self.act2(self.bn2(self.shortcut(x) + h))
        return self.shortcut(x) + self.act2(self.bn2(h))  # activation_before_addition


class ResNet(nn.Module):
    def __init__(self, params: Values, input_shape: tuple[int, ...], n_out: int) -> None:
        super().__init__()
        order = params["order"]
        if len(input_shape) != 3:
            raise ConfigError(
                f"model resnet needs images (C, H, W), got inputs of shape {input_shape}"
            )
        act = params["activation"] or "relu"
        filters, blocks, per_stage = params["filters"], params["blocks"], params["blocks_per_stage"]
        self.stem = nn.Sequential(
            nn.Conv2d(input_shape[0], filters, 3, 1, 1, bias=False),
            nn.BatchNorm2d(filters),
            activation(act),
        )
        layers, c = [], filters
        for i in range(blocks):
            stage_start = i > 0 and i % per_stage == 0
            c_out = c * 2 if stage_start else c
            layers.append(_Block(c, c_out, 2 if stage_start else 1, order, act))
            c = c_out
        self.blocks = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


class ViT(nn.Module):
    def __init__(self, params: Values, input_shape: tuple[int, ...], n_out: int) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise ConfigError(
                f"model vit needs images (C, H, W), got inputs of shape {input_shape}"
            )
        c, h, w = input_shape
        patch, dim, heads = params["patch"], params["dim"], params["heads"]
        if h % patch or w % patch:
            raise ConfigError(f"patch={patch} must divide the image size {h}x{w}")
        if dim % heads:
            raise ConfigError(f"dim={dim} must be a multiple of heads={heads}")
        act = params["activation"] or "gelu"
        if act not in VIT_ACTIVATIONS:
            raise ConfigError(
                f"activation must be one of {list(VIT_ACTIVATIONS)} for vit, got {act!r}"
            )
        self.embed = nn.Conv2d(c, dim, patch, patch)
        n_patches = (h // patch) * (w // patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, n_patches + 1, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(
            dim,
            heads,
            int(dim * params["mlp_ratio"]),
            params["dropout"],
            activation=act,
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, params["depth"], enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls.expand(len(x), -1, -1), tokens], dim=1) + self.pos
        return self.head(self.encoder(tokens)[:, 0])
