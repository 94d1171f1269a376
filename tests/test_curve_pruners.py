"""The curve-aware pruners' decisions (issue 19): ``curve``, ASHA with the curve as second
opinion, and ``auto``, which lets the curve decide once it can be extrapolated and the rank
only from ``earliest`` of the horizon on."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_stopping import SPACE, curve

import propagator as pg
from propagator.errors import ConfigError
from propagator.pruners import ASHA, Auto, Curve, RungView, make_pruner
from propagator.pruners.asha import fitted_chance

HORIZON = 32  # the complete evaluations' last step: auto's rank judges from step 4 on


def view(
    losses: list[float],
    others: list[float],
    incumbent: float | None = 0.5,
    every: int = 1,
) -> RungView:
    """A training at its last report (one every ``every`` steps), against a rung's
    ``others``; ``incumbent`` None: no evaluation is complete yet."""
    steps = every * np.arange(1, len(losses) + 1, dtype=float)
    values = np.array(losses, dtype=float)
    horizon = None if incumbent is None else HORIZON
    return RungView(values[-1], np.array(others), steps, values, horizon, incumbent)


def falling(n: int, floor: float) -> list[float]:
    """A noiseless power-law curve falling toward ``floor``."""
    return [floor + 1.0 / t**0.8 for t in range(1, n + 1)]


BETTER = [0.0, 0.0, 0.0]  # every other training was better at the rung
WORSE = [99.0, 99.0, 99.0]


def test_auto_defaults_are_rungs_1_2_4_with_promotion_and_the_curve_at_20_percent():
    auto = make_pruner("auto")
    assert isinstance(auto, Auto)
    assert list(auto.steps()[:5]) == [1, 2, 4, 8, 16]
    assert (auto.promotion, auto.curve, auto.earliest) == (True, 0.2, 0.125)


def test_auto_stops_nothing_before_a_complete_evaluation():
    auto = Auto()
    assert auto.judge(view([9.0], BETTER, incumbent=None))
    assert auto.judge(view(falling(6, 5.0), BETTER, incumbent=None))


def test_auto_rank_judges_only_from_earliest_of_the_horizon():
    auto = Auto()
    # one or two reports: no curve; steps 1 and 2 are under 1/8 of 32: goes on, however bad
    assert auto.judge(view([9.0], BETTER))
    assert auto.judge(view([9.0, 8.0], BETTER))
    # two reports at steps 4 and 8: still no curve, but past 1/8: the rank decides
    assert not auto.judge(view([9.0, 8.0], BETTER, every=4))
    assert auto.judge(view([9.0, 8.0], WORSE, every=4))
    assert "not among the best" in auto.why(view([9.0, 8.0], BETTER, every=4))
    # a later earliest lets the same training go on
    assert Auto(earliest=0.5).judge(view([9.0, 8.0], BETTER, every=4))


def test_auto_curve_decides_once_it_can_be_fitted_whatever_the_rank():
    auto = Auto()
    heading_low = view(falling(8, 0.0), BETTER, incumbent=0.6)  # ends near 0.06
    heading_high = view(falling(8, 2.0), WORSE, incumbent=0.6)  # ends near 2.06
    assert auto.judge(heading_low)  # worst at its rung, but its curve beats the incumbent
    assert not auto.judge(heading_high)  # best at its rung, but its curve ends far above
    assert "chance of ending below" in auto.why(heading_high)
    # promotion asks the same curve; with too few reports it has no opinion
    assert auto.second_opinion(heading_low) and not auto.second_opinion(heading_high)
    assert not auto.second_opinion(view([9.0, 8.0], WORSE, every=4))


def test_curve_goes_on_while_it_cannot_tell_and_asha_rescues_by_the_curve():
    assert Curve().judge(view([9.0, 8.0], BETTER))  # two reports: cannot tell
    assert not Curve().judge(view(falling(8, 2.0), WORSE, incumbent=0.6))
    assert ASHA(curve=0.2).judge(view(falling(8, 0.0), BETTER, incumbent=0.6))
    assert not ASHA().judge(view(falling(8, 0.0), BETTER, incumbent=0.6))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "auto", "curve": None}, "early_stopping.curve"),
        ({"name": "auto", "earliest": 1.5}, "early_stopping.earliest"),
        ({"name": "auto", "earliest": 0}, "early_stopping.earliest"),
    ],
)
def test_bad_auto_settings_name_the_field(spec, message):
    with pytest.raises(ConfigError, match=message):
        make_pruner(spec)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0.0, 10.0), min_size=1, max_size=8),
    st.lists(st.floats(0.0, 10.0), max_size=12),
    st.sampled_from([1, 2, 4]),
    st.floats(0.0, 10.0) | st.none(),
)
def test_auto_is_asha_or_the_curve_never_harsher_than_both(losses, others, every, incumbent):
    """Whatever the reports: auto lets a training go on when the curve says so (it can be
    told), and stops it only where ASHA's rank would, or the curve would."""
    auto, curve = Auto(), Curve(probability=0.2)
    v = view(losses, others, incumbent, every)
    decision = auto.judge(v)
    assert isinstance(decision, bool)
    if not decision:
        assert not auto.keeps(v.loss, v.others) or not curve.judge(v)
    if incumbent is None:
        assert decision


def test_auto_promotes_by_the_rule_that_paused_it():
    auto = Auto()
    assert auto.ranked(view([9.0, 8.0], BETTER, every=4))  # paused by its rank
    assert not auto.ranked(view(falling(8, 2.0), WORSE, incumbent=0.6))  # by its curve
    assert ASHA().ranked(view(falling(8, 2.0), WORSE, incumbent=0.6))


def test_auto_between_rungs_stops_only_a_hopeless_curve():
    """Between rungs auto asks the curve alone, at the stricter ``between`` chance: no curve
    or no complete evaluation, it goes on; rank never counts there."""
    auto = Auto()
    assert auto.goes_on(view(falling(2, 2.0), BETTER))  # two reports: no curve
    assert auto.goes_on(view(falling(6, 2.0), BETTER, incumbent=None))
    assert not auto.goes_on(view(falling(6, 2.0), WORSE, incumbent=0.6))  # far above
    assert auto.goes_on(view(falling(6, 0.1), BETTER, incumbent=0.6))  # heading below
    assert Auto(between=None).goes_on(view(falling(6, 2.0), WORSE, incumbent=0.6))


def test_auto_between_rungs_is_more_lenient_than_at_a_rung():
    """A curve whose chance lies between ``between`` (0.05) and ``curve`` (0.2) goes on
    between rungs and is paused at the next rung."""
    auto = Auto()
    losses = falling(6, 0.5)
    incumbents = np.linspace(0.3, 1.5, 241)
    chances = [fitted_chance(view(losses, BETTER, incumbent=i)) for i in incumbents]
    middle = [i for i, p in zip(incumbents, chances, strict=True) if 0.07 < p < 0.18]
    assert middle, "no incumbent puts the chance between the two thresholds"
    v = view(losses, BETTER, incumbent=middle[len(middle) // 2])
    assert auto.goes_on(v) and not auto.judge(v)


def between_rung_steps(early_stopping) -> list[int]:
    """The steps at which a search's trainings were paused off auto's rungs (1, 2, 4, ...)."""
    result = pg.search(
        curve, SPACE, budget=40, seed=0, strategy="random", early_stopping=early_stopping
    )
    # the objective saves no checkpoint, so a paused training is recorded as pruned
    paused = [r for r in result.records if "paused by auto" in (r.error or "")]
    assert paused and result.best.ok
    for r in paused:
        assert r.step == r.intermediate[-1][0]
        assert f"at step {r.step}:" in r.error
    return [r.step for r in paused if r.step & (r.step - 1)]


def test_auto_pauses_between_rungs_by_the_curve():
    """A search: hopeless trainings are paused as soon as the curve tells (three reports), not
    only at rungs; with ``between: null`` only at rungs."""
    off_rung = between_rung_steps("auto")
    assert off_rung and min(off_rung) >= 3
    assert between_rung_steps({"name": "auto", "between": None}) == []
