"""The latency model's fast path (cost book, batched costing, assignment) against plain-Python references.

The speed work must not change a figure: sums must add in numpy's per-slice order, the assignment must be
longest-processing-time first, the cost book must hand back each table's own tasks, and clearing the cache
must not change a result.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from model_helpers import round_chip, workload, zipf_table

import autotune.model.evaluate as evaluate
from autotune.errors import UserError
from autotune.model.context import ModelContext
from autotune.model.evaluate import predict, score
from autotune.model.mapping import Mapping, TableMapping
from autotune.model.strategies import _entry_sums, table_costs


def test_entry_sums_add_like_each_slice_alone():
    rng = np.random.default_rng(7)
    widths = rng.choice([1, 2, 3, 7, 8, 9, 16, 17, 48, 108, 129, 300], size=60)
    values = rng.random(int(widths.sum())) * 10.0 ** rng.uniform(-9, 9, int(widths.sum()))
    starts = np.cumsum(widths) - widths
    (sums,) = _entry_sums(starts, widths, values)
    expected = [float(values[a : a + k].sum()) for a, k in zip(starts, widths, strict=True)]
    assert sums.tolist() == expected  # bit for bit, not approximately


def lpt_reference(costs, n_cores: int) -> list[float]:
    """Plain-Python LPT: tables by slowest task, each table's tasks slowest first onto the least-loaded cores."""
    loads = [0.0] * n_cores
    for c in sorted(costs, key=lambda c: -c.max_time_s):
        tasks = sorted((float(t) for t in c.shard_time_s for _ in range(c.replicas)), reverse=True)
        cores = sorted(range(n_cores), key=lambda p: loads[p])[: len(tasks)]
        for p, t in zip(cores, tasks, strict=True):
            loads[p] += t
    return sorted(loads)


def test_assignment_is_longest_processing_time_first():
    rng = random.Random(3)
    tables = [
        zipf_table(f"T{i}", rows=rng.randrange(500, 200_000), alpha=rng.uniform(0.0, 1.2), pooling=rng.choice((1, 3)))
        for i in range(14)
    ]
    prof, hw = workload(*tables), round_chip(cores=8)
    ctx = ModelContext(prof, hw, 256)
    for _ in range(5):
        tms = tuple(TableMapping(t.name, replicas=rng.choice((1, 2)), shards=rng.choice((1, 2, 4))) for t in tables)
        m = Mapping(tables=tms)
        p = predict(prof, hw, m, 256, ctx=ctx)
        costs = table_costs(ctx, [(i, tm.knobs) for i, tm in enumerate(tms)])
        got = sorted(c.time_s for c in p.per_core)
        assert got == pytest.approx(lpt_reference(costs, 8), rel=1e-12)


def test_cost_book_hands_back_each_tables_tasks_and_totals():
    prof = workload(*(zipf_table(f"T{i}", rows=5000 * (i + 1), dim=16, pooling=2.0) for i in range(4)))
    ctx = ModelContext(prof, round_chip(cores=4), 128)
    tms = (
        TableMapping("T0", replicas=2, shards=2),
        TableMapping("T1", strategy="L1", shards=4),
        TableMapping("T2", strategy="GM-UB", replicas=4),
        TableMapping("T3", hot_rows=16, shards=2, sharding="balanced"),
    )
    ids = evaluate._cost_ids(ctx, tms)
    mt = ctx.cost_cache.gather(ids)
    costs = [ctx.cost_cache.costs[i] for i in ids]
    gm = l2 = merge = stored = 0.0
    for i, c in enumerate(costs):
        rows = slice(mt.start[i], mt.start[i] + mt.tasks[i])
        # slowest first: the replica-major tasks sorted by decreasing time
        assert mt.time_s[rows].tolist() == sorted(c.task_time_s.tolist(), reverse=True)
        assert mt.tasks[i] == c.replicas * c.shards
        gm, l2, merge, stored = gm + c.gm_bytes, l2 + c.l2_bytes, merge + c.merge_bytes, stored + c.stored_bytes
    assert mt.totals == [gm, l2, merge, stored]
    assert mt.needs_memory == [False, True, False, True]


def test_knobs_a_strategy_ignores_share_one_cost():
    prof = workload(zipf_table("T", rows=4000, dim=16))
    ctx = ModelContext(prof, round_chip(cores=2), 64)
    a = score(ctx, Mapping(tables=(TableMapping("T", strategy="L1", hot_rows=16),)))
    b = score(ctx, Mapping(tables=(TableMapping("T", strategy="L1", chunk_bytes=4096),)))
    assert a == b
    assert len(ctx.cost_cache.costs) == 1  # hot rows count only for GM, chunks only for *-UB


def test_clearing_the_cost_cache_changes_no_result(monkeypatch):
    rng = random.Random(11)
    tables = [zipf_table(f"T{i}", rows=rng.randrange(100, 50_000), dim=16, pooling=2.0) for i in range(6)]
    prof, hw = workload(*tables), round_chip(cores=4, l1_bytes=1 << 17)
    strategies = ("GM", "L1", "GM-UB", "L1-UB")
    maps = [
        Mapping(
            tables=tuple(
                TableMapping(t.name, rng.choice((1, 2)), rng.choice((1, 2)), "contiguous", rng.choice(strategies))
                for t in tables
            )
        )
        for _ in range(12)
    ]
    fresh = [score(ModelContext(prof, hw, 128), m) for m in maps]
    monkeypatch.setattr(evaluate, "_CACHE_LIMIT", 3)  # the book is cleared whenever a mapping misses
    ctx = ModelContext(prof, hw, 128)
    assert [score(ctx, m) for m in maps + maps] == fresh + fresh


def test_mapping_must_name_every_table_once():
    prof = workload(zipf_table("A", rows=100), zipf_table("B", rows=100))
    ctx = ModelContext(prof, round_chip(cores=2), 64)
    score(ctx, Mapping(tables=(TableMapping("A"), TableMapping("B"))))  # both cached now
    with pytest.raises(UserError, match="exactly once"):
        score(ctx, Mapping(tables=(TableMapping("A"), TableMapping("A"))))
    with pytest.raises(UserError, match="'C' is not in profile"):
        score(ctx, Mapping(tables=(TableMapping("A"), TableMapping("C"))))
    with pytest.raises(UserError, match="'L2' is not one of"):
        score(ctx, Mapping(tables=(TableMapping("A"), TableMapping("B", strategy="L2"))))
