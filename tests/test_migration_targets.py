"""Bounded migration fan-out (issue 17): each emigration goes to at most ``migration.targets``
of the topology's target islands, drawn at random, so that migration's messages per
evaluation stay bounded at any number of islands; fewer targets than that are all taken,
with the migration stream drawn exactly as before the setting existed."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import propagator as pg
from propagator.engine.layout import Layout
from propagator.engine.migration import Emigration
from propagator.engine.records import wire_dtype
from propagator.errors import ConfigError
from propagator.strategies.pool import Pool

DTYPE = wire_dtype(2)


class _Mailbox:
    """Records what Emigration sends: (target ranks, rows) per send."""

    def __init__(self) -> None:
        self.sends: list[tuple[list[int], np.ndarray]] = []

    def send(self, rows: np.ndarray, ranks: list[int]) -> None:
        self.sends.append((list(ranks), rows))

    def post(self, row: np.void) -> None:
        pass


def _emigration(
    sizes: tuple[int, ...], migration: pg.Migration, island: int = 0, seed: int = 0
) -> tuple[Emigration, _Mailbox, Layout]:
    layout = Layout(sum(sizes), 1, sizes)
    ctx = SimpleNamespace(
        layout=layout,
        island=island,
        worker=layout.island_start(island),
        settings=SimpleNamespace(migration=migration),
        comms=SimpleNamespace(leader_rank=lambda w: w),
    )
    mailbox = _Mailbox()
    return Emigration(ctx, mailbox, np.random.default_rng(seed)), mailbox, layout


def _pool(first: int = 0) -> Pool:
    """Four records, ids ``first`` to ``first + 3``, the second best (id ``first + 1``)."""
    pool = Pool(4, DTYPE)
    rows = np.zeros(4, dtype=DTYPE)
    rows["id"] = np.arange(first, first + 4)
    for row, loss in zip(rows, [3.0, 1.0, 2.0, 4.0], strict=True):
        pool.offer(row, loss)
    return pool


def _targets(mailbox: _Mailbox, layout: Layout) -> list[int]:
    return [layout.island_of(ranks[0]) for ranks, _ in mailbox.sends]


def _emigrate(emigration: Emigration, times: int) -> None:
    """``times`` evaluations, each leaving a pool of new records (so that every emigration
    has copies to send that went nowhere before)."""
    for i in range(times):
        emigration.maybe(_pool(4 * i))


def test_many_islands_get_three_distinct_random_targets_per_emigration():
    migration = pg.Migration(probability=1.0)
    sizes = (1,) * 16
    emigration, mailbox, layout = _emigration(sizes, migration)
    reached: set[int] = set()
    for i in range(200):
        before = len(mailbox.sends)
        emigration.maybe(_pool(4 * i))
        targets = _targets(mailbox, layout)[before:]
        assert len(targets) == 3 and len(set(targets)) == 3 and 0 not in targets
        reached.update(targets)
        # the best record leaves, to every worker of its target island
        assert all(rows["id"].tolist() == [4 * i + 1] for _, rows in mailbox.sends[before:])
    assert reached == set(range(1, 16))  # every island is reached over time


def test_every_worker_of_a_target_island_gets_the_migrants_and_messages_stay_bounded():
    """Islands of 4: an emigration (probability / 4 per evaluation) sends to 3 islands x 4
    workers, so migration costs probability x 3 messages per evaluation, not x 31."""
    sizes = (4,) * 32
    emigration, mailbox, _ = _emigration(sizes, pg.Migration(probability=0.9), island=5)
    evaluations = 4000
    _emigrate(emigration, evaluations)
    assert all(len(ranks) == 4 for ranks, _ in mailbox.sends)
    per_evaluation = sum(len(ranks) for ranks, _ in mailbox.sends) / evaluations
    assert 0.9 * 3 * 0.85 < per_evaluation < 0.9 * 3 * 1.15


def test_up_to_the_cap_every_target_every_time_and_the_stream_as_without_a_cap():
    """Four islands fully connected: 3 targets, all of them, and the migration stream draws
    exactly what it drew before (a run's migrations are unchanged)."""
    capped, capped_box, layout = _emigration((2, 2, 2, 2), pg.Migration(), island=1, seed=7)
    free, free_box, _ = _emigration((2, 2, 2, 2), pg.Migration(targets=99), island=1, seed=7)
    _emigrate(capped, 300)
    _emigrate(free, 300)
    assert _targets(capped_box, layout) == _targets(free_box, layout)
    assert len(capped_box.sends) > 0 and len(capped_box.sends) % 3 == 0
    assert set(_targets(capped_box, layout)) == {0, 2, 3}


@settings(max_examples=60, deadline=None)
@given(
    n_islands=st.integers(2, 40),
    targets=st.integers(1, 6),
    topology=st.sampled_from(["fully_connected", "ring", "matrix"]),
    island=st.integers(0, 39),
    seed=st.integers(0, 2**16),
)
def test_targets_are_the_topology_s_and_at_most_the_cap(n_islands, targets, topology, island, seed):
    island %= n_islands
    if topology == "matrix":  # island i sends 2 migrants to islands i+1 .. i+3 (mod n)
        m = np.zeros((n_islands, n_islands), dtype=int)
        for i in range(n_islands):
            for d in (1, 2, 3):
                if (i + d) % n_islands != i:
                    m[i, (i + d) % n_islands] = 2
        topology = m.tolist()
    migration = pg.Migration(probability=1.0, topology=topology, targets=targets)
    emigration, mailbox, layout = _emigration((1,) * n_islands, migration, island, seed)
    allowed = set(np.flatnonzero(migration.matrix(n_islands)[island]).tolist())
    assert np.array_equal(migration.row(n_islands, island), migration.matrix(n_islands)[island])
    for i in range(5):
        before = len(mailbox.sends)
        emigration.maybe(_pool(4 * i))
        sent = mailbox.sends[before:]
        chosen = _targets(mailbox, layout)[before:]
        assert len(chosen) == len(set(chosen)) == min(targets, len(allowed))
        assert set(chosen) <= allowed
        for (_, rows), to in zip(sent, chosen, strict=True):
            assert len(rows) == migration.matrix(n_islands)[island, to]


def test_copies_go_to_an_island_once_and_only_what_changed_goes_again():
    """Pollination: an island that got the sender's best copies last time gets nothing more
    while they stay the best; when one of them is replaced, only the new one goes."""
    migration = pg.Migration(probability=1.0, migrants=2)
    emigration, mailbox, layout = _emigration((1, 1), migration)
    pool = _pool()
    for _ in range(10):
        emigration.maybe(pool)
    assert [rows["id"].tolist() for _, rows in mailbox.sends] == [[1, 2]]
    better = np.zeros(1, dtype=DTYPE)[0]
    better["id"] = 9
    pool.offer(better, 0.0)
    for _ in range(10):
        emigration.maybe(pool)
    assert [rows["id"].tolist() for _, rows in mailbox.sends] == [[1, 2], [9]]
    assert _targets(mailbox, layout) == [1, 1]


def test_targets_must_be_a_positive_integer_and_a_default_stays_out_of_stored_settings():
    for bad in (0, -1, 1.5, True, "3"):
        with pytest.raises(ConfigError, match=r"migration\.targets"):
            pg.Migration(targets=bad)
    assert "targets" not in pg.Migration().to_dict()
    assert pg.Migration(targets=5).to_dict()["targets"] == 5
