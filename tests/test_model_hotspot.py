"""The memory hot-spot term (autotune/model/hotspot.py): golden values worked out by hand, and its properties.

Hand-worked case: one table of 1,000 rows, dim 32 float32 (128-B rows), 1,000 look-ups in the log, pooling 1,
batch 100, hot ids 0..4 with counts 400, 200, 100, 50, 150 (shares 0.4, 0.2, 0.1, 0.05, 0.15). A 512-B granule
holds 4 rows: granule 0 = rows 0-3, granule 1 = rows 4-7. Reads per batch = B P s = 40, 20, 10, 5, 15.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace

import numpy as np
import pytest
from model_helpers import round_chip, workload, zipf_table

from autotune.model.baselines import default_gather
from autotune.model.bounds import lower_bound
from autotune.model.context import ModelContext
from autotune.model.evaluate import evaluate_latency, predict
from autotune.model.hotspot import hot_geometry, row_reads, shard_hot_bytes

COUNTS = (400, 200, 100, 50, 150)


def hand_table(ids=("0", "1", "2", "3", "4"), row_map="identity", dim=32, dtype="float32", counts=COUNTS):
    base = zipf_table("t", rows=1000, alpha=1.0, dim=dim, pooling=1.0, queries=1000, dtype=dtype)
    return replace(
        base, accesses=1000, hot_ids=tuple(zip(ids, counts, strict=True)), extra={"row_map": row_map} if row_map else {}
    )


def spot_cycles(tp, *, slices=4, granule=512, batch=100, replicas=1, shards=1, sharding="contiguous", hot=0, **chip):
    """Cycles (1 GHz: ns) of the hot slice; round_chip's L2 is 2e12 B/s, so one of `slices` serves 2e12 / slices."""
    hw = round_chip(cores=4, l2_slices=slices, interleave_bytes=granule, **chip)
    ctx = ModelContext(workload(tp), hw, batch)
    return ctx.hot_spot_cycles(0, replicas, shards, sharding, hot, False)


SLICE_NS_PER_BYTE = 4 / 2e12 * 1e9  # 4 slices of 2e12 B/s: 5e11 B/s each, 2e-3 ns per byte


def test_contiguous_hot_rows_share_a_granule_by_hand():
    # granule 0: (40 + 20 + 10 + 5) reads x 128 B = 9,600 B; granule 1: 15 x 128 = 1,920 B
    assert spot_cycles(hand_table())[0] == pytest.approx(9600 * SLICE_NS_PER_BYTE)  # 19.2 cycles


def test_scattered_hot_rows_each_load_their_own_granule_by_hand():
    # ids 0, 100, 200, 300, 400: one row per granule; the busiest is row 0's: 40 x 128 = 5,120 B
    assert spot_cycles(hand_table(ids=("0", "100", "200", "300", "400")))[0] == pytest.approx(5120 * SLICE_NS_PER_BYTE)
    # a row map that hides positions (dense): each row alone, the same figure
    assert spot_cycles(hand_table(row_map="dense"))[0] == pytest.approx(5120 * SLICE_NS_PER_BYTE)


def test_pinned_rows_leave_the_slice_by_hand():
    # the hottest row pinned on-chip: granule 0 keeps (20 + 10 + 5) x 128 = 4,480 B, granule 1 1,920 B
    assert spot_cycles(hand_table(), hot=1)[0] == pytest.approx(4480 * SLICE_NS_PER_BYTE)
    # all five pinned: nothing listed reaches GM
    assert spot_cycles(hand_table(), hot=5)[0] == 0.0


def test_rows_wider_than_a_granule_spread_over_slices_by_hand():
    # dim 256 float32: 1,024-B rows, each over two 512-B granules; row 0's granules carry 40 x 512 = 20,480 B each
    assert spot_cycles(hand_table(dim=256))[0] == pytest.approx(20480 * SLICE_NS_PER_BYTE)


def test_rows_straddling_granules_by_hand():
    # int8 dim 64 + 8 B scale/bias = 72-B rows; ids 0..4 at bytes 0, 72, 144, 216, 288: all in granule 0 of 512 B
    # (the 5th ends at 360); with a 256-B granule, row 3 (216..288) puts 40 B in granule 0 and 32 B in granule 1
    # granule 0: 2,880 + 1,440 + 720 + 5 x 40 = 5,240 B; granule 1: 5 x 32 + 15 x 72 = 1,240 B
    assert spot_cycles(hand_table(dim=64, dtype="int8"), granule=256)[0] == pytest.approx(5240 * SLICE_NS_PER_BYTE)


def test_contiguous_shards_carry_the_hot_granule_alone_by_hand():
    # 2 contiguous shards of 500 rows: every listed row is in shard 0, shard 1 has none
    got = spot_cycles(hand_table(), shards=2)
    assert got == pytest.approx([9600 * SLICE_NS_PER_BYTE, 0.0])
    # balanced shards (a remap reorders rows): rank j in shard j mod 2, each row alone:
    # shard 0 = ranks 0, 2, 4 (rows 0, 2, 4: shares .4, .1, .05) busiest 40 x 128; shard 1 = ranks 1, 3: 20 x 128
    got = spot_cycles(hand_table(counts=(400, 200, 100, 150, 50)), shards=2, sharding="balanced")
    assert got == pytest.approx([5120 * SLICE_NS_PER_BYTE, 2560 * SLICE_NS_PER_BYTE])


def test_distinct_reads_per_task_by_hand():
    # de-duplication, 2 replicas of 50 queries: row i is read by each replica once if any of its 50 P s_i
    # look-ups fall on it: 2 (1 - exp(-50 s_i)) reads
    share = np.array(COUNTS) / 1000
    reads = [2 * (1 - math.exp(-50 * s)) for s in share]
    assert row_reads(share, 100.0, 2, True) == pytest.approx(reads)
    hw = round_chip(cores=4, l2_slices=4, interleave_bytes=512)
    ctx = ModelContext(workload(hand_table()), hw, 100)
    expect = sum(reads[:4]) * 128 * SLICE_NS_PER_BYTE
    assert ctx.hot_spot_cycles(0, 2, 1, "contiguous", 0, True)[0] == pytest.approx(expect)
    # a core whose private cache keeps lines reads a row once per batch without de-duplication too
    cached = round_chip(cores=4, l2_slices=4, interleave_bytes=512, caches_gm_reads=True)
    ctx = ModelContext(workload(hand_table()), cached, 100)
    assert ctx.hot_spot_cycles(0, 2, 1, "contiguous", 0, False)[0] == pytest.approx(expect)


def test_hot_spot_binds_the_gm_fetch_and_contiguous_beats_scattered_by_hand():
    # 2 cores, default gather (2 replicas of 50 queries): per task 50 rows at max(100 / 4, 128 / 32) = 25 cycles
    # = 1,250 cycles of fetch, pooling 50 x 128 / 128 = 50 cycles, first fetch 100 cycles. With 1,000 slices one
    # serves 2e9 B/s = 2 B/ns: the contiguous hot granule's 9,600 B take 4,800 ns; scattered, 5,120 B take 2,560 ns.
    def latency(tp):
        hw = round_chip(cores=2, l2_slices=1000, interleave_bytes=512)
        ctx = ModelContext(workload(tp), hw, 100)
        return evaluate_latency(ctx, default_gather(ctx))

    contiguous = latency(hand_table())
    scattered = latency(hand_table(ids=("0", "100", "200", "300", "400")))
    assert contiguous == pytest.approx((4800 + 100) * 1e-9)
    assert scattered == pytest.approx((2560 + 100) * 1e-9)
    # without the hot spot (one slice of 2e12 B/s: 4.8 ns) the fetch binds: 1,250 + 100 ns either way
    hw = round_chip(cores=2, l2_slices=1, interleave_bytes=512)
    ctx = ModelContext(workload(hand_table()), hw, 100)
    assert evaluate_latency(ctx, default_gather(ctx)) == pytest.approx((1250 + 100) * 1e-9)


def test_hot_spot_grows_with_the_batch_and_fixed_costs_do_not_by_hand():
    # why the extremely unbalanced gain needs a large batch (README, "Search quality"): at batch 1,000 the hot
    # granule's reads are 10x those of batch 100 (96,000 B: 48,000 ns at 2 B/ns), the first fetch stays 100 ns;
    # the fetch of a task (500 rows x 25 cycles = 12,500 ns) still does not bind
    hw = round_chip(cores=2, l2_slices=1000, interleave_bytes=512)
    got = {}
    for batch in (100, 1000):
        ctx = ModelContext(workload(hand_table()), hw, batch)
        got[batch] = evaluate_latency(ctx, default_gather(ctx))
    assert got[100] == pytest.approx((4800 + 100) * 1e-9)
    assert got[1000] == pytest.approx((48000 + 100) * 1e-9)


def test_hot_spot_time_counts_as_bandwidth_in_the_breakdown():
    hw = round_chip(cores=2, l2_slices=1000, interleave_bytes=512)
    prof = workload(hand_table())
    ctx = ModelContext(prof, hw, 100)
    p = predict(prof, hw, default_gather(ctx), 100, ctx)
    assert {c.bound for c in p.per_core} == {"bandwidth"}


def _floor(ids, counts, rows, row_bytes, granule, reads_scale=1.0):
    share = np.asarray(counts, dtype=float) / sum(counts)
    geo = hot_geometry(np.asarray(ids, dtype=np.int64), len(ids), rows, row_bytes, granule, 1, True)
    return float(shard_hot_bytes(geo, reads_scale * share, 0)[0])


@pytest.mark.parametrize("seed", range(40))
def test_permuting_hot_ids_never_raises_the_floor(seed):
    """The hottest rows side by side from row 0 fill one granule with the most mass any granule can hold (the
    greedy optimum of a fractional knapsack of G bytes): any other placement of the same rows loads it less."""
    rng = random.Random(seed)
    K = rng.randint(1, 40)
    counts = sorted((rng.randint(1, 10_000) for _ in range(K)), reverse=True)
    row_bytes = rng.choice([16, 40, 64, 72, 128, 200, 512, 1024, 4000])
    granule = rng.choice([64, 256, 512])
    rows = rng.randint(K, 5000)
    worst = _floor(list(range(K)), counts, rows, row_bytes, granule)
    for _ in range(5):
        ids = rng.sample(range(rows), K)
        assert _floor(ids, counts, rows, row_bytes, granule) <= worst * (1 + 1e-12)
    # and through the model: contiguous hot ids against the same law's ids permuted over the table
    tp_c = zipf_table("z", rows=rows, alpha=1.2, dim=16, contiguous=True, row_map="identity")
    tp_s = zipf_table("z", rows=rows, alpha=1.2, dim=16, contiguous=False, seed=seed, row_map="identity")
    hw = round_chip(cores=4, l2_slices=8, interleave_bytes=granule)
    for dedup in (False, True):
        c = ModelContext(workload(tp_c), hw, 256).hot_spot_cycles(0, 4, 1, "contiguous", 0, dedup)[0]
        s = ModelContext(workload(tp_s), hw, 256).hot_spot_cycles(0, 4, 1, "contiguous", 0, dedup)[0]
        assert s <= c * (1 + 1e-12)


def test_non_gm_strategies_do_not_load_the_slice():
    hw = round_chip(cores=2, l2_slices=1000, interleave_bytes=512)
    prof = workload(hand_table())
    ctx = ModelContext(prof, hw, 100)
    slow = evaluate_latency(ctx, default_gather(ctx))
    streamed = replace(default_gather(ctx), tables=(replace(default_gather(ctx).tables[0], strategy="GM-UB"),))
    assert evaluate_latency(ctx, streamed) < slow
    assert lower_bound(ctx).latency_s <= evaluate_latency(ctx, streamed)


def test_prediction_names_the_worst_hot_spot():
    hw = round_chip(cores=2, l2_slices=1000, interleave_bytes=512)
    prof = workload(hand_table())
    ctx = ModelContext(prof, hw, 100)
    p = predict(prof, hw, default_gather(ctx), 100, ctx)
    assert p.breakdown["hot_spot_s"] == pytest.approx(4800e-9)  # 9,600 B at 2 B/ns, as worked out above
    assert p.breakdown["hot_spot_table"] == "t"
    # a core that caches its GM reads, with the 128,000-B table within its 1-MiB resident memory: the shards are
    # read from that cache (no slice traffic), so the breakdown reports no hot spot, as the latency charges none
    hw = round_chip(cores=2, l2_slices=1000, interleave_bytes=512, caches_gm_reads=True)
    ctx = ModelContext(prof, hw, 100)
    p = predict(prof, hw, default_gather(ctx), 100, ctx)
    assert p.breakdown["hot_spot_s"] == 0.0 and p.breakdown["hot_spot_table"] is None


def test_hash_row_map_places_hot_ids_at_their_fnv1a_rows():
    from autotune.model.hotspot import hot_rows

    def fnv1a(text: str) -> int:  # the FNV-1a 64-bit spec, byte by byte
        h = 0xCBF29CE484222325
        for b in text.encode():
            h = ((h ^ b) * 0x100000001B3) % 2**64
        return h

    ids = ("user-17", "ad:42", "7", "0", "zzz")
    share, rows = hot_rows(hand_table(ids=ids, row_map="hash"))
    assert share == pytest.approx(np.array(COUNTS) / 1000)
    assert rows is not None and rows.tolist() == [fnv1a(i) % 1000 for i in ids]
    # identity ids that are not rows of the table leave positions unknown
    assert hot_rows(hand_table(ids=("0", "1", "2", "3", "5000")))[1] is None
