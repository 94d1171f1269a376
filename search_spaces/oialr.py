"""Hyperparameter space of the ``oialr`` trainer, after the thesis's OIALR searches (Tables A.3,
mini-ViT on CIFAR-10, and A.5, Autoformer on ETTm2, of the DASO/OIALR/AB/Propulate notes),
scaled for a small MLP on ``digits`` (about 22 steps per epoch at batch 64, runs of 5-10
epochs).

Step counts are scaled through epochs: Table A.5's Autoformer runs (about 1000 steps per epoch,
at most 20 epochs) searched a delay of 0.25-2.5 epochs and updates every 0.05-2 epochs; here the
same spans in digits steps. Table A.3's delay "(10e2 10e3)" is 20-200 epochs of its run, longer
than a whole digits run, so A.5 sets the scale. The LR schedule is the framework's cosine with
linear warm-up: the tables' "warm-up LR" (the warm-up's starting LR) and "k-decay" have no
counterpart there and are not searched.
"""

from __future__ import annotations

import propagator as pg

OIALR = pg.Space(
    {
        "optimizer": "adamw",  # every OIALR run of the thesis used AdamW
        "schedule": "cosine",
        # A.3: (5e-5, 1e-3), A.5: (1e-5, 5e-3), for transformers; a small MLP takes larger
        # steps, so the upper end is raised
        "lr": pg.Float(1e-4, 3e-2, log=True),
        "min_lr": pg.Float(5e-6, 1e-3, log=True),  # A.3 and A.5: (5e-6, 1e-3)
        # A.3: (1, 20), A.5: (2, 10) warm-up epochs; here 0 to ~2 epochs of steps
        "warmup_steps": pg.Int(0, 40),
        "weight_decay": pg.Float(1e-5, 1e-1, log=True),
        "sigma_cutoff": pg.Float(0.01, 0.9),  # A.3 and A.5: (0.01, 0.9)
        "frequency": pg.Int(2, 44, log=True),  # A.5: (50, 2000) steps, 0.05-2 epochs
        "delay": pg.Int(5, 55),  # A.5: (250, 2500) steps, 0.25-2.5 epochs
        "full_rank_first": pg.Categorical([False, True]),  # A.5
        "full_rank_last": pg.Categorical([False, True]),  # A.5
    }
)
