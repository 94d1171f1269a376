"""Search space for the ``daso`` trainer (Coquelin's thesis, Ch. 3; reference §1), scaled for
small models on ``digits`` (about 22 steps an epoch at a global batch of 64).

S is searched only where every choice is at most B (B >= 4); for B = 1 and 2 the trainer's
default S = 1 applies, so no configuration is invalid.
"""

from __future__ import annotations

import propagator as pg

DASO = pg.Space(
    {
        # Table 3.1: B in {1, 2, 4, 8, 16, 32}; 32 dropped, more than an epoch on digits
        "global_sync_period": pg.Categorical([1, 2, 4, 8, 16]),
        # Table 3.1: S from 0 to B, with the rebound at S = B (here B = 4)
        "stale_steps": pg.Categorical([0, 1, 2, 4], when="global_sync_period >= 4"),
        # Heat's defaults (§1.2): 4 warm-up and 4 cool-down epochs of 90; runs here are ~8
        "warmup_epochs": pg.Int(0, 2),
        "cooldown_epochs": pg.Int(0, 2),
        # §1.1 (7): B and S "dynamically adjusted", or held constant as in the study
        "adapt_sync": pg.Categorical([True, False]),
        # Heat's stability_level 0.05 and max_global_skips 8 (§1.2), searched around them
        "stability_level": pg.Float(0.01, 0.2, log=True, when="adapt_sync == true"),
        "max_sync_period": pg.Categorical([4, 8, 16], when="adapt_sync == true"),
        # Table 3.2: SGD, momentum 0.9, weight decay 1e-4 on ImageNet; ranges around them
        "lr": pg.Float(1e-3, 0.5, log=True),
        "momentum": pg.Float(0.0, 0.95),
        "weight_decay": pg.Float(1e-6, 1e-3, log=True),
    }
)
