"""Hyperparameter space of the ``mac`` trainer: the ranges of Table 4.3 of the MAC thesis
(``reference/methods/mac.md`` §4.4; its random search of 1500 trials over them), for two groups
of the 6-layer MLP (Table 4.1, ``depth: 5``), with the split point searched too.

Iteration counts (passes over the data per MAC epoch) are Table 4.3's divided by 3, so that a
search fits in a few minutes on a laptop (``jobs/mac_teacher.yaml``); the learning-rate ranges
are the table's. :data:`TABLE_4_4` holds the thesis's best settings for grouping (1,5), with the
same scaling, to compare a search's result against (``jobs/bench/mac.py --search``).
"""

from __future__ import annotations

import propagator as pg

SCALE = 3  # Table 4.3's iterations / the ones searched here


def _steps() -> dict[str, pg.Float | pg.Categorical]:
    """The W- and Z-step ranges of Table 4.3, for two groups."""
    return {
        "w_lr1": pg.Float(1e-4, 10.0, log=True),  # W-step, group 1: 10^i, i ~ U[-4, 1]
        "w_iters1": pg.Categorical([34 // SCALE, 67 // SCALE, 100 // SCALE]),  # {34, 67, 100}
        "w_lr2": pg.Float(1e-4, 10.0, log=True),  # W-step, group 2: [1e-4, 10]
        "w_iters2": pg.Categorical([1, 34 // SCALE, 67 // SCALE]),  # {1, 34, 67}
        "z_lr": pg.Float(1e-5, 1.0, log=True),  # Z-step: [1e-5, 1]
        "z_iters": pg.Categorical([1, 15 // SCALE, 30 // SCALE, 45 // SCALE]),  # {1, 15, 30, 45}
    }


def _mu(when: str | None = None) -> dict[str, pg.Float]:
    """µ0 = 1 and x10 on a plateau in the thesis (not searched there); µ acts only in the
    2-term Z-step with two groups (the notes' §1.9), so it is searched only there."""
    return {
        "mu": pg.Float(0.1, 10.0, log=True, when=when),
        "mu_growth": pg.Float(1.0, 10.0, when=when),
    }


# everything: the variant and the grouping too (Table 4.3 uses the same ranges for both
# variants; the coupled Z-step, the reference, was not searched and equals 2-term with two
# groups; the thesis tried the groupings (1,5), (3,3), (5,1), here every cut of the 6 layers)
MAC = pg.Space(
    {
        "variant": pg.Categorical(["1-term", "2-term"]),
        "split": pg.Int(1, 5),
        **_steps(),
        **_mu(when="variant == '2-term'"),
    }
)

# one cell of Table 4.4 (a variant and a grouping, given as fixed values), as the thesis
# reports its best settings per cell; for 2-term (µ has no effect on 1-term with two groups)
MAC_2_TERM = pg.Space({**_steps(), **_mu()})

# Table 4.4, grouping (1,5) (split 1), iterations scaled like the space's
TABLE_4_4 = {
    "1-term (1,5)": {
        "variant": "1-term",
        "split": 1,
        "w_lr1": 2.8e-2,
        "w_iters1": 67 // SCALE,
        "w_lr2": 2.5e-3,
        "w_iters2": 67 // SCALE,
        "z_lr": 1.4e-5,
        "z_iters": 1,
    },
    "2-term (1,5)": {
        "variant": "2-term",
        "split": 1,
        "w_lr1": 3.4e-4,
        "w_iters1": 67 // SCALE,
        "w_lr2": 6.7e-3,
        "w_iters2": 67 // SCALE,
        "z_lr": 3.0e-5,
        "z_iters": 1,
        "mu": 1.0,
        "mu_growth": 10.0,
    },
}
