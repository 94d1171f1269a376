"""Bounded memory per rank (issue 17, item 2): the island's set of seen configurations is
compact and still exact, and the strategies that keep a history keep a bounded one whatever
the number of records they are told, and still search well from it."""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pytest

import propagator as pg
from propagator.engine import records
from propagator.engine.island import Island
from propagator.engine.keyset import KeySet
from propagator.engine.records import LocalLog, wire_dtype
from propagator.engine.seen import Seen
from propagator.strategies import GA, make_strategy
from propagator.strategies.pool import Pool
from propagator.strategies.quadratic import _MEMORY

FLOATS = pg.Space({f"x{i}": pg.Float(0, 1) for i in range(4)})


def _random_keys(rng: np.random.Generator, n: int) -> list[int]:
    return rng.integers(-(2**63), 2**63 - 1, n, dtype=np.int64, endpoint=True).tolist()


def test_the_key_set_holds_exactly_what_a_set_holds() -> None:
    """Every key added is found, every other is not, adding twice changes nothing: with keys
    at the extremes of int64, the key 0 (which marks a free slot), and keys that share their
    low bits (they all want the same slot)."""
    rng = np.random.default_rng(0)
    keys = [*_random_keys(rng, 20_000), 0, 1, -1, 2**63 - 1, -(2**63)]
    keys += [k << 40 for k in range(-300, 300)]
    keys += keys[:1000]  # repeats
    held, ref = KeySet(), set()
    for k in keys:
        assert held.add(k) == (k not in ref)
        ref.add(k)
    assert len(held) == len(ref)
    assert all(k in held for k in ref)
    others = [*_random_keys(rng, 20_000), 2, -2, 1 << 39, 301 << 40]
    assert [k in held for k in others] == [k in ref for k in others]
    assert not any(held.add(k) for k in keys) and len(held) == len(ref)


def test_the_key_set_takes_at_most_24_bytes_per_key() -> None:
    rng = np.random.default_rng(1)
    held = KeySet()
    for n, k in enumerate(_random_keys(rng, 200_000), 1):
        held.add(k)
        if n in (700, 5_000, 50_000, 140_000, 200_000):
            assert 8 * n < held.nbytes <= 24 * n, n


def test_the_seen_set_keeps_its_keys_compact_and_refuses_every_repeat() -> None:
    """50,000 configurations of a float space: their table within 24 bytes each, and each of
    them, proposed again, refused."""
    rng = np.random.default_rng(2)
    seen = Seen(FLOATS)
    genes = rng.random((50_000, FLOATS.dim))
    keys = seen.add_all(genes)
    assert len(seen) == 50_000 and seen.nbytes <= 24 * 50_000
    assert not any(seen.add(seen.key(g)) for g in genes[::97])
    assert all(int(k) in seen for k in keys)
    assert seen.key(rng.random(FLOATS.dim)) not in seen


def test_an_island_hands_out_every_configuration_of_a_small_space_once() -> None:
    """On a space of 600 configurations, an island proposes 600 different ones, then none."""
    space = pg.Space({"a": pg.Int(0, 9), "b": pg.Int(0, 9), "c": pg.Categorical(list("uvwxyz"))})
    island = Island(space, GA().create(space, 1), wire_dtype(space.dim), np.ones(1), Seen(space))
    rng = np.random.default_rng(3)
    seen = Seen(space)
    keys = []
    while (genes := island.propose(rng)) is not None:
        keys.append(seen.key(genes))
    assert len(keys) == len(set(keys)) == 600


def _log_row(dtype: np.dtype, i: int) -> tuple:
    """A record of id ``i`` whose every field says ``i``."""
    row = np.zeros((), dtype=dtype)
    for name in dtype.names:
        row[name] = i % 100 if dtype[name].base == np.int8 else i
    return row.item()


def test_a_log_keeps_its_latest_rows_in_memory_and_every_row_in_order(monkeypatch) -> None:
    """Past SPILL_ROWS rows (256 here) a log holds at most that many in memory; every row
    comes back, in order, from any start (before, at and after what was spilled), with the
    side data; rows handed out before a spill keep their values."""
    monkeypatch.setattr(records, "SPILL_ROWS", 256)
    dtype = wire_dtype(3)
    log = LocalLog(dtype)
    handed = []
    for i in range(1000):
        metrics = {"acc": float(i)} if i % 7 == 0 else None
        handed.append(log.append(_log_row(dtype, i), metrics, None, [(1, float(i))]))
        assert len(log.rows) <= 256
    assert log.size == 1000 and log.spilled == 768
    np.testing.assert_array_equal(log.view()["id"], np.arange(1000))
    np.testing.assert_array_equal(log.view()["genes"][:, 2], np.arange(1000.0))
    for start in (0, 255, 256, 700, 768, 999, 1000):
        np.testing.assert_array_equal(log.since(start)["id"], np.arange(start, 1000))
    assert [int(row["id"]) for row in handed] == list(range(1000))
    assert sorted(log.metrics) == list(range(0, 1000, 7)) and len(log.reports) == 1000


def test_a_short_log_never_touches_the_disk() -> None:
    log = LocalLog(wire_dtype(2))
    for i in range(5000):
        log.append(_log_row(log.dtype, i), None, None, [])
    assert log.spilled == 0 and log._file is None
    assert np.shares_memory(log.view(), log.rows)


def _tell(breeder, rng: np.random.Generator, n: int, batch: int = 6000) -> None:
    """Tell ``n`` records of the sphere around 0.3 in batches, one of ``batch`` failed, with
    an ask after each batch."""
    pool = Pool(4, wire_dtype(FLOATS.dim))
    for _ in range(n // batch):
        genes = rng.random((batch, FLOATS.dim))
        loss = ((genes - 0.3) ** 2).sum(axis=1)
        ok = np.ones(batch, dtype=bool)
        ok[0], loss[0] = False, np.nan
        breeder.tell(genes, loss, ok)
        breeder.ask(pool, rng)


def _held(breeder, rng: np.random.Generator, n: int) -> int:
    """Bytes traced as held after telling ``n`` more records."""
    _tell(breeder, rng, n)
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


@pytest.mark.parametrize(
    "strategy",
    [{"name": "tpe", "max_trials": 100}, "quadratic", "portfolio"],
    ids=["tpe", "quadratic", "portfolio"],
)
def test_a_strategy_holds_no_more_after_36000_records_than_after_12000(strategy) -> None:
    """Past their caps (told filters of 10,000 records, TPE's study, the quadratic models'
    5,000 points), the strategies that keep a history hold the same memory however many more
    records they are told: 24,000 more add less than 400 KB (the quadratic models alone
    would add 960 KB if they kept every point)."""
    breeder = make_strategy(strategy).create(FLOATS, 2)
    rng = np.random.default_rng(4)
    tracemalloc.start()
    try:
        before = _held(breeder, rng, 12_000)
        after = _held(breeder, rng, 24_000)
    finally:
        tracemalloc.stop()
    assert after - before < 400_000


def test_the_quadratic_models_give_back_what_a_resume_grew_and_still_converge() -> None:
    """A resume tells 40,000 stored records at once: the models keep 5,000 points in buffers
    of 10,000 afterwards, and from them still improve on the sphere by orders of magnitude in
    300 evaluations, every proposal in bounds."""
    rng = np.random.default_rng(5)
    breeder = make_strategy("quadratic").create(FLOATS, 1)
    genes = rng.random((40_000, FLOATS.dim))
    loss = ((genes - 0.3) ** 2).sum(axis=1)
    breeder.tell(genes, loss, np.ones(len(genes), dtype=bool))
    assert len(breeder._f) <= _MEMORY and len(breeder._fs) <= 2 * _MEMORY
    pool = Pool(4, wire_dtype(FLOATS.dim))
    best = start = float(loss.min())
    for _ in range(300):
        child = breeder.ask(pool, rng)
        assert np.all((child >= 0) & (child <= 1))
        value = float(((child - 0.3) ** 2).sum())
        breeder.tell(child[None, :], np.array([value]), np.array([True]))
        best = min(best, value)
    assert len(breeder._f) <= _MEMORY
    assert best < 1e-6 * start
