"""The space Zhang's thesis explored for EASGD, EAMSGD and DOWNPOUR (``reference/methods/
easgd.md`` §3.1), for the ``easgd`` trainer.

The thesis tuned η on grids per method (Tables 4.1-4.3) for CNNs on CIFAR and ImageNet with
minibatch 128; the small MLPs on ``digits`` here take larger steps, so the η range is the
tables' span (5e-4 to 0.1) widened upwards by about 5x.
"""

from __future__ import annotations

import propagator as pg

EASGD = pg.Space(
    {
        "method": pg.Categorical(["easgd", "eamsgd"]),
        # η: Tables 4.1-4.3 span 5e-4 (DOWNPOUR, EAMSGD) to 0.1 (EASGD on ImageNet)
        "lr": pg.Float(5e-4, 0.5, log=True),
        # β = pα: 0.9 in every run of Ch. 4; the stability analysis (§3.2) needs β in (0, 2)
        "beta": pg.Float(0.1, 1.9),
        # τ: {1, 4, 16, 64} on CIFAR (Figs. 4.1-4.4), up to 1000 in Fig. 4.13
        "tau": pg.Int(1, 64, log=True),
        # δ: 0.99 in Ch. 4, {0, 0.9, 0.99} in the Tree runs (§6.1.2); EAMSGD only
        "delta": pg.Float(0.0, 0.99, when="method == 'eamsgd'"),
    }
)
