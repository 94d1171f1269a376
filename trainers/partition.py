"""Cutting a model into consecutive groups of layers for the layer-parallel trainers.

A model is first read as a list of *units*, the layers the methods count:

* ``mlp``: one unit per ``nn.Linear`` with what follows it up to the next one (normalisation,
  activation, dropout); the leading ``Flatten`` joins the first unit. The MAC thesis's 6-layer
  MLP (Table 4.1) is ``depth: 5`` (five hidden layers and the output layer).
* ``resnet``: one unit per residual block; the stem joins the first, the head the last (the
  AuxNet paper's footnote 7: the stem and head are learned by the first and last workers).

The units are then cut into groups:

* ``split``: the cut points, in units from the input: an int for two groups (the MAC thesis's
  grouping (1,5) is ``split: 1`` on the 6-layer MLP) or a list for more.
* ``modules``: K groups of as equal a number of units as possible (earlier groups get the
  extra ones), when ``split`` is not given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from propagator import ConfigError

from .framework import evaluation_mode
from .models import MODEL, ResNet
from .params import Table, cut_points, integer

PARTITION = Table(
    "partition",
    (
        cut_points(
            "split",
            None,
            "cut points in layers (mlp) or residual blocks (resnet), from the input",
            ">= 1",
            derived="none: modules decides",
        ),
        integer("modules", None, "K groups of as equal a size as possible", ">= 1", derived="2"),
    ),
).mark_structural("split", "modules")
# the models the layer-parallel trainers can cut, and their params
LAYERED_MODEL = (
    MODEL.replace("model", choices=("mlp", "resnet"))
    .replace("activation", derived="relu")
    .pick(*(n for n in MODEL.names if n not in ("patch", "dim", "heads", "mlp_ratio")))
)


def units(model: nn.Module) -> list[nn.Module]:
    """The model's layers as the layer-parallel methods count them (see the module docstring)."""
    if isinstance(model, ResNet):
        blocks = list(model.blocks)
        if not blocks:
            raise ConfigError("model resnet needs blocks >= 1 to be split into modules")
        blocks[0] = nn.Sequential(model.stem, blocks[0])
        blocks[-1] = nn.Sequential(blocks[-1], model.head)
        return blocks
    if isinstance(model, nn.Sequential):
        layers: list[list[nn.Module]] = []
        lead: list[nn.Module] = []
        for layer in model:
            if isinstance(layer, nn.Linear):
                layers.append([*lead, layer])
                lead = []
            elif layers:
                layers[-1].append(layer)
            else:
                lead.append(layer)
        return [nn.Sequential(*unit) for unit in layers]
    raise ConfigError(
        f"the layer-parallel trainers split mlp and resnet models, not {type(model).__name__}"
    )


def group_sizes(params: Mapping[str, Any], n_units: int, default_modules: int = 2) -> list[int]:
    """Units per group from :data:`PARTITION`'s ``split`` or ``modules`` (see the module
    docstring)."""
    p = PARTITION.read(params)
    if p["split"] is not None:
        cuts = p["split"] if isinstance(p["split"], list) else [p["split"]]
        if cuts[-1] >= n_units:
            raise ConfigError(
                f"split must be increasing cut points strictly between 0 and {n_units} "
                f"(the model's layers), got {p['split']!r}"
            )
        return [b - a for a, b in zip([0, *cuts], [*cuts, n_units], strict=True)]
    k = default_modules if p["modules"] is None else p["modules"]
    if k > n_units:
        raise ConfigError(f"modules must be in [1, {n_units}] (the model's layers), got {k}")
    return [n_units // k + (1 if i < n_units % k else 0) for i in range(k)]


def partition(
    model: nn.Module, params: Mapping[str, Any], default_modules: int = 2
) -> list[nn.Module]:
    """The model as consecutive groups (each an ``nn.Sequential``) sharing its parameters."""
    layers = units(model)
    groups, start = [], 0
    for size in group_sizes(params, len(layers), default_modules):
        groups.append(nn.Sequential(*layers[start : start + size]))
        start += size
    return groups


@torch.no_grad()
def boundary_shapes(groups: list[nn.Module], input_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Per-sample shapes at the group boundaries: ``[input, out_0, out_1, ..., out_{K-1}]``."""
    x = torch.zeros((1, *input_shape))
    shapes = [tuple(input_shape)]
    with evaluation_mode(*groups):
        for g in groups:
            x = g(x)
            shapes.append(tuple(x.shape[1:]))
    return shapes
