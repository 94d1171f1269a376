"""Bounded dissemination (``dissemination: gossip``, :mod:`propagator.engine.comm.gossip`):
the peer choice, the best's forwarding, its bounds in a round model of up to 4,096 leaders,
the setting, and an 8-rank search beside ``all``."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from conftest import mpiexec_json
from hypothesis import example, given, settings
from hypothesis import strategies as st

from propagator.config.schema import validate
from propagator.engine.comm.gossip import EVERYONE, RELAYED, Gossip
from propagator.engine.records import Kind, Status, wire_dtype
from propagator.errors import ConfigError
from propagator.pbt import make_pbt
from propagator.settings import Budget, Settings

DTYPE = wire_dtype(1)
_DEPARTED, _IMMIGRANT = int(Kind.DEPARTED), int(Kind.IMMIGRANT)
_RELAYED = int(Kind.EVALUATED) | RELAYED  # a relayed copy on the wire


def _rows(ids, losses, kind: int = int(Kind.EVALUATED)) -> np.ndarray:
    rows = np.zeros(len(ids), dtype=DTYPE)
    rows["id"], rows["kind"] = ids, kind
    rows["values"][:, 0] = losses
    return rows


def _gossip(n: int = 8, me: int = 0, seed: int = 0, sign: float = 1.0, elite: int = 1) -> Gossip:
    return Gossip(range(n), me, np.random.default_rng(seed), sign, DTYPE, elite)


def _leaders(n: int, seed: int) -> list[Gossip]:
    """``n`` leaders forwarding the best record they know (a larger elite pushes a new best
    first all the same: test_a_new_best_is_pushed_log2_plus_3_times_...)."""
    return [_gossip(n, i, [seed, i]) for i in range(n)]


def _rounds(n: int) -> int:
    return math.ceil(math.log2(n)) + 3


def _sent(messages: list) -> list[tuple[list[int], int]]:
    """Each message's ids (relayed copies negated) and how many ranks it goes to."""
    return [
        ([-int(r["id"]) if r["kind"] & RELAYED else int(r["id"]) for r in rows], len(dests))
        for rows, dests in messages
    ]


# --- peers ---------------------------------------------------------------------------------
def test_a_batch_goes_to_the_ring_peer_and_one_random_other():
    gossip = _gossip(10, 3)
    drawn = set()
    for k in range(400):
        ring, other = gossip.peers()
        assert ring == (3 + 2 ** (k % 4)) % 10  # L = ceil(log2 10) = 4 shifts: 1, 2, 4, 8
        assert other not in (3, ring)
        drawn.add(other)
    assert drawn == set(range(10)) - {3}  # the random peer reaches every other leader


def test_more_random_peers_are_distinct_and_at_most_all_the_others():
    gossip = _gossip(10, 3)
    assert len(gossip.peers(0)) == 1
    for extra in (2, 5, 8, 50):
        ranks = gossip.peers(extra)
        assert len(ranks) == min(extra, 8) + 1 and len(set(ranks)) == len(ranks)
        assert 3 not in ranks


def test_the_ring_alone_covers_the_island_in_log2_rounds():
    """With every leader at the same batch count, the shifts' partial sums cover the ring."""
    for n in (4, 5, 7, 16, 33, 100):
        leaders = _leaders(n, 1)
        knows = {0}
        for _ in range(math.ceil(math.log2(n))):
            rings = [g.peers()[0] for g in leaders]
            knows |= {rings[i] for i in knows}
        assert knows == set(range(n))


def test_small_islands_are_refused():
    with pytest.raises(ValueError, match="4 or more"):
        _gossip(3)


# --- forwarding ----------------------------------------------------------------------------
def test_a_record_goes_to_the_ring_peer_and_one_of_the_elite_wider_as_copies_are_saved():
    gossip = _gossip(40, elite=1)  # a large island: 38 others, more than the 36 copies saved
    assert _sent(gossip.route(_rows([1], [5.0]))) == [([1], 1), ([1], 3)]  # 4 - 1 saved: 3
    # a record not in the elite goes to the ring peer only; the best rides along with it,
    # and goes to as many others as the 2 copies left allow
    assert _sent(gossip.route(_rows([2], [9.0]))) == [([2, -1], 1), ([-1], 2)]
    assert _sent(gossip.route(_rows([3], [1.0]))) == [([3], 1), ([3], 3)]
    # 40 leaders: at most the 38 others beside the ring peer
    big = _rows(list(range(10, 30)), [9.0] * 20)  # 80 copies, 21 of them to the ring peer
    assert _sent(gossip.route(big))[1] == ([-3], 38)


def test_on_a_small_island_the_copies_go_to_the_elite_and_to_everyone_when_they_can():
    """8 leaders (6 others, within the 24 copies saved): a relayed copy goes to the ring peer
    only, the copies saved carry the next record that enters to every leader, marked so that
    nobody pushes it on."""
    gossip = _gossip(8, elite=1)
    assert _sent(gossip.route(_rows([1], [5.0]))) == [([1], 1), ([1], 3)]
    for i in range(3):  # 2 copies saved each: the relayed one costs one
        assert _sent(gossip.route(_rows([10 + i], [9.0]))) == [([10 + i, -1], 1)]
    routed = gossip.route(_rows([3], [1.0]))
    assert _sent(routed) == [([3], 1), ([3], 6)]  # the ring peer and the 6 others
    assert all(rows["kind"][0] & EVERYONE for rows, _ in routed)
    assert _sent(gossip.route(_rows([4], [9.0]))) == [([4], 1)]  # 3 is pushed by nobody
    other = _gossip(8, me=1, elite=1)
    other.heard(routed[1][0].copy())
    assert other.best == 1.0
    assert _sent(other.route(_rows([5], [9.0]))) == [([5], 1)]


def test_a_new_best_rides_along_for_log2_plus_3_batches_marked_relayed():
    gossip = _gossip()
    gossip.route(_rows([1], [5.0]))  # own new best: its first copies
    pushed = [_sent(gossip.route(_rows([10 + i], [9.0])))[0][0][1:] for i in range(10)]
    assert pushed == [[-1]] * (3 + 3) + [[]] * 4  # ceil(log2 8) + 3


def test_a_received_best_is_pushed_on_and_a_worse_one_is_not():
    gossip = _gossip()
    gossip.heard(_rows([1, 2], [3.0, 1.0]))
    assert _sent(gossip.route(_rows([3], [2.0])))[0] == ([3, -2], 1)
    gossip.heard(_rows([4], [0.5], kind=_IMMIGRANT))  # every leader has it: not pushed
    assert _sent(gossip.route(_rows([5], [2.0]))) == [([5], 1)]
    assert gossip.best == 0.5


def test_maximising_pushes_the_largest():
    gossip = _gossip(sign=-1.0)
    gossip.heard(_rows([1, 2], [3.0, 1.0]))
    assert _sent(gossip.route(_rows([3], [2.0])))[0] == ([3, -1], 1)


def test_a_relayed_copy_is_taken_once_and_only_when_it_beats_all_known():
    gossip = _gossip()
    copy = _rows([7], [1.0], kind=_RELAYED)
    first = _rows([8], [2.0])
    got = gossip.heard(np.concatenate([first, copy, copy]))
    assert got["id"].tolist() == [8, 7]  # two copies in one receive: one taken
    assert (got["kind"] == int(Kind.EVALUATED)).all()  # unmarked
    assert len(gossip.heard(copy.copy())) == 0  # again later: known
    worse = _rows([9], [1.5], kind=_RELAYED)
    assert len(gossip.heard(worse)) == 0  # not better than the best known
    original = _rows([9], [1.5])
    assert gossip.heard(original)["id"].tolist() == [9]  # a first copy is always taken


def test_a_relayed_copy_after_its_original_is_dropped():
    gossip = _gossip()
    gossip.heard(_rows([4], [0.1]))
    assert len(gossip.heard(_rows([4], [0.1], kind=_RELAYED))) == 0


def test_failures_are_never_a_best():
    gossip = _gossip()
    failed = _rows([1], [np.nan])
    failed["status"] = int(Status.FAILED)
    gossip.heard(failed)
    assert gossip.best == math.inf
    assert _sent(gossip.route(_rows([2], [4.0])))[0] == ([2], 1)


def test_departures_go_to_every_peer_and_stop_their_push():
    gossip = _gossip(6, 2)
    gossip.route(_rows([1], [0.5]))  # own best: pushed from now on
    departed = _rows([1], [0.5], kind=_DEPARTED)
    messages = gossip.route(np.concatenate([departed, _rows([2], [3.0])]))
    assert _sent(messages) == [([1], 5), ([2], 1)]
    assert sorted(messages[0][1]) == [0, 1, 3, 4, 5]
    assert _sent(gossip.route(_rows([3], [3.0]))) == [([3], 1)]  # 1 is no longer pushed


def test_a_relayed_copy_after_its_departure_is_dropped():
    """A departure (from the evaluator) may overtake a relayed copy (from a third leader):
    the copy must not bring the record back into the pool."""
    gossip = _gossip()
    gossip.heard(_rows([5], [0.2], kind=_DEPARTED))
    assert len(gossip.heard(_rows([5], [0.2], kind=_RELAYED))) == 0


def test_a_new_best_is_pushed_log2_plus_3_times_and_the_elite_once_each_best_first():
    gossip = _gossip(elite=3)  # ceil(log2 8) + 3 = 6 pushes for a new best
    gossip.heard(_rows([1, 2, 3, 4], [4.0, 1.0, 3.0, 2.0]))  # 1 (4.0) does not enter
    pushed = [gossip.route(_rows([100 + i], [9.0]))[0][0]["id"][1:].tolist() for i in range(10)]
    assert pushed == [[2]] * 6 + [[4], [3]] + [[]] * 2


def test_a_displaced_record_is_pushed_no_more_and_a_relayed_copy_must_enter():
    gossip = _gossip(elite=2)
    gossip.heard(_rows([1, 2], [1.0, 2.0]))
    assert gossip.heard(_rows([3], [2.5], kind=_RELAYED)).size == 0  # not among the best 2
    assert gossip.heard(_rows([4], [1.5], kind=_RELAYED))["id"].tolist() == [4]  # displaces 2
    pushed = [gossip.route(_rows([100 + i], [9.0]))[0][0]["id"][1:].tolist() for i in range(8)]
    assert pushed == [[1]] * 6 + [[4], []]


@settings(max_examples=100, deadline=None)
@given(
    n=st.integers(4, 4096),
    seed=st.integers(0, 2**32 - 1),
    batches=st.lists(
        st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=5), min_size=1, max_size=40
    ),
    heard=st.lists(st.floats(-1e6, 1e6), max_size=40),
    elite=st.integers(1, 32),
)
def test_messages_and_copies_per_record_are_bounded(n, seed, batches, heard, elite):
    """Whatever it evaluates and hears: a batch's messages go to distinct others, each with
    one relayed row at most, and over its batches a leader sends at most 4 copies of a
    record (so at most 4 messages) per record on average."""
    gossip = _gossip(n, n // 2, seed, elite=elite)
    ids = iter(range(10**6))
    messages = copies = records = 0
    for batch, loss in zip(batches, heard + [None] * len(batches), strict=False):
        if loss is not None:
            gossip.heard(_rows([next(ids)], [loss], kind=_RELAYED))
        routed = gossip.route(_rows([next(ids) for _ in batch], batch))
        ranks = [rank for _, dests in routed for rank in dests]
        assert len(set(ranks)) == len(ranks) and n // 2 not in ranks and len(ranks) <= n - 1
        assert all(np.count_nonzero(rows["kind"] & RELAYED) <= 1 for rows, _ in routed)
        messages += len(ranks)
        copies += sum(len(rows) * len(dests) for rows, dests in routed)
        records += len(batch)
    assert messages <= copies <= 4 * records


# --- spread in the round model -------------------------------------------------------------
def _spread(n: int, seed: int) -> float:
    """The share of ``n`` leaders that know a new best ``ceil(log2 n) + 3`` rounds after it
    was evaluated. A round: every leader sends one batch (:meth:`Gossip.route`), and each
    takes in what it got (:meth:`Gossip.heard`). The leaders' batch counts drifted apart
    before (each sent 0 to ``log2 n`` batches more), as unequal evaluation times make them.
    Only what can carry the best is run through the class: a leader that does not know it
    only draws its peers, and only a message holding it is taken in by one that does not."""
    rng = np.random.default_rng(seed)
    leaders = _leaders(n, seed)
    drifts = rng.integers(0, math.ceil(math.log2(n)) + 1, n)
    for gossip, drift in zip(leaders, drifts, strict=True):
        for _ in range(drift):
            gossip.peers()
    best = _rows([0], [-1.0])
    knows = {int(rng.integers(n))}
    ids = iter(range(1, 10**7))
    for k in range(_rounds(n)):
        inbox: dict[int, list[np.ndarray]] = {}
        for i, gossip in enumerate(leaders):
            if i not in knows:
                gossip.peers()
                continue
            batch = best if k == 0 else _rows([next(ids)], [rng.random()])
            for rows, dests in gossip.route(batch):
                if 0 in rows["id"]:
                    for d in dests:
                        inbox.setdefault(d, []).append(rows)
        for i, got in inbox.items():
            if i not in knows:  # its own copy, as from MPI: heard() unmarks it in place
                leaders[i].heard(got[0].copy())
                assert leaders[i].best == -1.0
                knows.add(i)
        if len(knows) == n:
            break
    return len(knows) / n


# island sizes spread evenly over the powers of two from 4 to 4,096
_SIZES = st.integers(2, 12).flatmap(lambda b: st.integers(max(4, 2 ** (b - 1) + 1), 2**b))


@settings(max_examples=6, deadline=None)
@given(n=_SIZES, seed=st.integers(0, 2**32 - 1))
@example(n=4096, seed=0)
def test_a_new_best_reaches_99_percent_within_log2_plus_3_rounds(n, seed):
    assert _spread(n, seed) >= 0.99


# --- the setting ---------------------------------------------------------------------------
def test_the_setting_defaults_to_all_and_is_stored_only_when_gossip():
    budget = Budget(evaluations=10)
    assert Settings(budget=budget).dissemination == "all"
    assert "dissemination" not in Settings(budget=budget).to_dict()  # old runs resume
    assert Settings(budget=budget, dissemination="gossip").to_dict()["dissemination"] == "gossip"
    with pytest.raises(ConfigError, match="'all' or 'gossip', got 'some'"):
        Settings(budget=budget, dissemination="some")
    with pytest.raises(ConfigError, match="pbt does not combine with dissemination"):
        Settings(budget=budget, dissemination="gossip", pbt=make_pbt({"mutable": ["lr"]}))


def test_the_search_file_takes_dissemination():
    base = {"objective": "o", "space": {}, "budget": 5}
    validate({**base, "dissemination": "gossip"}, Path("s.yaml"))
    with pytest.raises(ConfigError, match="dissemination"):
        validate({**base, "dissemination": "some"}, Path("s.yaml"))


# --- a search ------------------------------------------------------------------------------
@pytest.mark.mpi
def test_gossip_search_on_8_ranks_sends_fewer_messages_than_all(tmp_path):
    """The same search (2 ms evaluations: every record leaves in a batch of its own) with
    ``all`` and ``gossip`` on 8 ranks, then gossip on 2 islands with migration: every record
    in the result exactly once, every mailbox closed with nothing left unreceived."""
    script = Path(__file__).parent / "mpi" / "dissemination.py"
    ranks = mpiexec_json(8, [str(script), str(tmp_path)], tmp_path, timeout=120)
    for name in ("all", "gossip", "gossip_islands"):
        runs = [r[name] for r in ranks]
        assert runs[0]["ids"] == list(range(400)), name  # ordered by id: each once
        assert all(run["closed"][2] == 0 for run in runs), name
        sent, received = (sum(run["closed"][i] for run in runs) for i in (0, 1))
        assert sent == received == runs[0]["info"]["messages"], name
    all_, gossip = ranks[0]["all"], ranks[0]["gossip"]
    size = all_["itemsize"]
    assert all_["info"]["message_bytes"] == 400 * 7 * size  # every record to 7 peers
    assert gossip["info"]["messages"] <= 4 * 400 < all_["info"]["messages"]
    assert 400 * size < gossip["info"]["message_bytes"] <= 4 * 400 * size
