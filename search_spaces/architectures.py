"""Architecture spaces (NAS) for the three model families of :mod:`trainers.models`.

Conditional genes: a layer's width exists only if the network is that deep. Ranges are scaled
for the small data sets that run on a laptop (``digits``: 64 features or 1x8x8 images).
"""

from __future__ import annotations

import propagator as pg

_ACTIVATIONS = ["relu", "gelu", "tanh", "elu", "swish"]

MLP = pg.Space(
    {
        "model": "mlp",
        "depth": pg.Int(1, 4),
        "width1": pg.Int(8, 256, log=True),
        "width2": pg.Int(8, 256, log=True, when="depth >= 2"),
        "width3": pg.Int(8, 256, log=True, when="depth >= 3"),
        "width4": pg.Int(8, 256, log=True, when="depth >= 4"),
        "activation": pg.Categorical(_ACTIVATIONS),
        "norm": pg.Categorical(["none", "batch", "layer"]),
        "dropout": pg.Float(0.0, 0.5),
        "lr": pg.Float(1e-3, 0.5, log=True),
        "momentum": pg.Float(0.0, 0.95),
    }
)

# Table 6.1 of the DASO/OIALR/AB/Propulate notes searched the activation order and the first
# block's filters (2-256) of a ResNet-50; here a ResNet small enough for 8x8 digits.
RESNET = pg.Space(
    {
        "model": "resnet",
        "image": True,
        "blocks": pg.Int(1, 4),
        "filters": pg.Int(4, 32, log=True),
        "activation": pg.Categorical(_ACTIVATIONS),
        "order": pg.Categorical(
            [
                "original",
                "bn_after_addition",
                "activation_before_addition",
                "relu_only_preactivation",
                "full_preactivation",
            ]
        ),
        "lr": pg.Float(1e-3, 0.5, log=True),
        "momentum": pg.Float(0.0, 0.95),
    }
)

VIT = pg.Space(
    {
        "model": "vit",
        "image": True,
        "optimizer": "adamw",
        "patch": pg.Categorical([2, 4]),
        "heads": pg.Categorical([1, 2, 4]),
        "dim": pg.Categorical([16, 32, 64]),
        "depth": pg.Int(1, 4),
        "mlp_ratio": pg.Float(1.0, 4.0),
        "lr": pg.Float(1e-4, 1e-2, log=True),
        "weight_decay": pg.Float(1e-5, 1e-1, log=True),
    }
)
