"""Search spaces for the ``ddg`` (``DDG``) and ``fr`` (``FR``) trainers, after Huo's thesis
(``reference/methods/ddg_fr_huo.md`` §2-3), scaled for small models on ``digits`` (about 45
iterations an epoch at batch 32, runs of a few epochs).

The thesis trained ResNets on CIFAR for 300 epochs at batch 128: Adam at lr 1e-3 for
ResNet-8 (§5.5.1, Adam-DDG), SGD with momentum 0.9, lr 0.01 and weight decay 5e-4 for
ResNet-56/110 (§5.5.2) and in every FR run (§6.5.1), the lr divided by 10 at epochs 150 and
225. A small MLP on digits trained for a few epochs takes larger steps, so the lr ranges reach
an order of magnitude above the thesis's values; the delayed gradients' stability bound
(Thm. 5.4.1: γL ≤ 1, with a noise term growing like K⁴) is why they also reach well below.
"""

from __future__ import annotations

import propagator as pg

_SHARED = {
    # K: Table 5 splits into 2 modules; §5.5.3 runs K = 2-4 GPUs; Table 7 and Fig. 26 use
    # K up to 4 (DDG diverged for ResNet152 at K = 4)
    "modules": pg.Int(2, 4),
    # weight decay 5e-4 (§5.5.2, §6.5.1), a decade either side
    "weight_decay": pg.Float(5e-5, 5e-3, log=True),
    # ÷10 at 1/2 and 3/4 of the run (§5.5.2, §6.5.1); the framework's step schedule divides
    # at 1/3 and 2/3
    "schedule": pg.Categorical(["constant", "step"]),
}

DDG = pg.Space(
    {
        **_SHARED,
        # Alg. 9 (SGD-DDG, §5.5.2) and Alg. 10 (Adam-DDG, §5.5.1)
        "optimizer": pg.Categorical(["sgd", "adam"]),
        # Adam 1e-3 (§5.5.1) and SGD 0.01 (§5.5.2) both inside, with room above for digits
        "lr": pg.Float(3e-4, 0.3, log=True),
        # momentum 0.9 (§5.5.2); SGD only
        "momentum": pg.Float(0.0, 0.95, when="optimizer == 'sgd'"),
    }
)

FR = pg.Space(
    {
        **_SHARED,
        "optimizer": "sgd",  # every FR run of Ch. 6 (§6.5.1)
        # SGD 0.01 (§6.5.1), a decade below and 30x above for digits
        "lr": pg.Float(1e-3, 0.3, log=True),
        "momentum": pg.Float(0.0, 0.95),  # 0.9 (§6.5.1)
    }
)
