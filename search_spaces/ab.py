"""AB training's hyperparameters (:mod:`trainers.ab`) for a small MLP on digits.

Ranges follow Coquelin's thesis (``reference/methods/daso_oialr_ab_propulate.md`` §3.2 and
§5), as fractions of the run like the trainer's params. The thesis's runs had 45,000-90,000
steps; a digits run has a few hundred, so the independent phases may be relatively longer here
(a 3 % phase of 220 steps is 7 steps, most of them spent in the LR rebound).
"""

from __future__ import annotations

import propagator as pg

AB = pg.Space(
    {
        # SGD with momentum on digits; the thesis's AdamW LRs (Table A.3, [ext] 1e-3-5e-3)
        # do not carry over to SGD
        "lr": pg.Float(5e-3, 0.5, log=True),
        "momentum": pg.Float(0.0, 0.95),
        # warmupSteps: guideline 20 % (§5.3.3); [ext] search 8000-12000 of 45,000 steps
        # (18-27 %); VGG16 Table A.9 ~59 %
        "ab_warmup": pg.Float(0.1, 0.6),
        # numABSteps: guideline 3.33 % (§5.3.3); [ext] 1000-4000 of 45,000 steps (2.2-8.9 %);
        # up to 30 % for runs of a few hundred steps
        "ab_steps": pg.Float(0.02, 0.3, log=True),
        # fullRankReboundSteps / numABSteps: guideline 0.25 (§5.3.3); Tables A.7-A.9
        # 0.08-0.14; [ext] 150-1000 against 1000-4000 (0.04-1)
        "ab_rebound": pg.Float(0.05, 1.0, log=True),
        # LR rebound steps / numABSteps: guideline 0.5 (§5.3.3); Tables A.7-A.9 0.25-0.35;
        # [ext] 700-1000 against 1000-4000 (0.18-1); 0 (no rebound) is allowed here
        "ab_lr_rebound": pg.Float(0.0, 1.0),
        # sigmaCutoff: Table A.6 0.15; [ext] low_rank_cutoff 0.1-0.4
        "ab_cutoff": pg.Float(0.05, 0.4),
        # [ext] group_size {1, 2, 4, 8}: those that leave two groups on a worker of 4 ranks
        "ab_group_size": pg.Categorical([1, 2]),
    }
)
