"""Golden values worked out by hand on a round-number chip (tests/model_helpers.round_chip).

Chip: 1 GHz (1 cycle = 1 ns); per core GM 32 B/cycle, GM latency 100 cycles, 4 requests in flight, 32-B
blocks; gather 64 B/cycle, pool 128 B/cycle; L1 1 MiB (resident), L1 -> UB 128 B/cycle; UB 64 KiB.
Table: 1000 rows x 16 float32 = 64 B per row (two 32-B blocks), uniform access (Zipf alpha 0), pooling 2.
"""

from __future__ import annotations

import math

import pytest
from model_helpers import round_chip, workload, zipf_table

from autotune.model.context import ModelContext
from autotune.model.evaluate import evaluate_latency, predict
from autotune.model.mapping import Mapping, TableMapping

NS = 1e-9


def one_table(batch: int = 100, cores: int = 1, **chip):
    prof = workload(zipf_table("T", rows=1000, alpha=0.0, dim=16, pooling=2.0))
    hw = round_chip(cores=cores, **chip)
    return prof, hw, batch


def run(prof, hw, batch, **knobs) -> float:
    m = Mapping(tables=(TableMapping("T", **knobs),))
    p = predict(prof, hw, m, batch)
    assert p.feasible, p.reason
    assert evaluate_latency(ModelContext(prof, hw, batch), m) == p.latency_s
    return p.latency_s


def test_gm_strategy():
    # n = 100 queries x 2 = 200 look-ups; per row max(100 / 4, 64 / 32) = 25 cycles (latency-bound)
    # fetch 200 x 25 = 5000; pooling 200 x 64 / 128 = 100 overlaps it; + first fetch latency 100 = 5100 cycles
    prof, hw, b = one_table()
    assert run(prof, hw, b, strategy="GM") == pytest.approx(5100 * NS, rel=1e-12)


def test_run_to_completion_spills_the_gathered_rows_beyond_staging():
    # serial core (gather all rows, then pool): fetch 5000 + pooling 200 x 64 / 128 = 100 + first fetch 100 = 5200
    # cycles while the 200 gathered 64-byte rows (12,800 B) fit the 64 KiB staging memory; with 8 KiB of it, the
    # 4,608 B beyond go out to L2 and come back at 64 B/cycle: + 72 cycles. An overlapped core streams its rows
    # through double buffers and never holds them all: 5100 cycles either way (test_gm_strategy).
    prof, hw, b = one_table(overlaps_fetch_compute=False)
    assert run(prof, hw, b, strategy="GM") == pytest.approx(5200 * NS, rel=1e-12)
    prof, hw, b = one_table(overlaps_fetch_compute=False, ub_bytes=8192)
    assert run(prof, hw, b, strategy="GM") == pytest.approx(5272 * NS, rel=1e-12)
    prof, hw, b = one_table(ub_bytes=8192)
    assert run(prof, hw, b, strategy="GM") == pytest.approx(5100 * NS, rel=1e-12)


def test_gm_strategy_is_latency_bound():
    prof, hw, b = one_table()
    p = predict(prof, hw, Mapping(tables=(TableMapping("T"),)), b)
    assert p.per_core[0].bound == "latency"
    assert p.breakdown["bound"] == "busiest core"


def test_l1_strategy():
    # 64,000-byte table resident in L1 (preloaded once); rows L1 -> UB: 200 x 64 / 128 = 100 cycles,
    # pooling 200 x 64 / 128 = 100 cycles, overlapped: 100 cycles
    prof, hw, b = one_table()
    assert run(prof, hw, b, strategy="L1") == pytest.approx(100 * NS, rel=1e-12)


def test_gm_on_a_caching_core_reads_a_shard_that_fits_its_cache_from_there():
    # caches_gm_reads (a CPU): the resident memory (L1, 1 MiB, resident) is a cache that GM reads pass through; the
    # 64,000-byte table fits, so GM costs what L1 does: 200 x 64 / 128 = 100 cycles, pooling 100 overlapped, no
    # first-fetch latency; shards of 32,000 B that do not fit (L1 of 16 KiB) stay GM: 100 look-ups each
    # x 25 + 100 latency + routing 200 x 4 / 128 = 6.25 -> 2606.25 cycles (as test_two_core_shard_with_merge)
    prof, cpu, b = one_table(caches_gm_reads=True)
    assert run(prof, cpu, b, strategy="GM") == pytest.approx(100 * NS, rel=1e-12)
    prof, hw, b = one_table()
    assert run(prof, hw, b, strategy="GM") == pytest.approx(5100 * NS, rel=1e-12)  # no private cache of GM reads
    prof, small, b = one_table(cores=2, l1_bytes=16 << 10, caches_gm_reads=True)
    m = Mapping(tables=(TableMapping("T", shards=2),))
    p = predict(prof, small, m, b)
    assert p.tables[0].time_s == pytest.approx(2606.25 * NS, rel=1e-12)


def test_l1_strategy_reloaded_when_memory_does_not_keep_data():
    # as above plus the reload of 64,000 bytes from GM at 32 B/cycle = 2000 cycles per batch
    prof, hw, b = one_table(l1_resident=False)
    assert run(prof, hw, b, strategy="L1") == pytest.approx(2100 * NS, rel=1e-12)


def test_gm_ub_strategy():
    # chunk = UB / 4 = 16,384 B; accumulators 100 x 16 x 4 = 6,400 B fit beside two chunks: one query group
    # stream 64,000 / 32 = 2000 cycles; compute: 4 chunks x 200 ids x 4 B / 128 = 25, gather 200 x 64 / 64 = 200,
    # pooling 100: 325 < 2000; first chunk 16,384 / 32 = 512 + latency 100: 2000 + 612 = 2612 cycles
    prof, hw, b = one_table()
    assert run(prof, hw, b, strategy="GM-UB") == pytest.approx(2612 * NS, rel=1e-12)


def test_gm_ub_query_groups_when_accumulators_do_not_fit():
    # chunk 30,000 B: room for accumulators 65,536 - 60,000 = 5,536 B; 100 queries need 6,400 B: 2 groups,
    # so the table streams twice: 2 x 2000 = 4000; chunks ceil(64,000 / 30,000) = 3: scan 3 x 200 x 4 / 128
    # = 18.75, + 200 + 100 = 318.75 < 4000; first chunk 30,000 / 32 = 937.5 + 100: 5037.5 cycles
    prof, hw, b = one_table()
    assert run(prof, hw, b, strategy="GM-UB", chunk_bytes=30_000) == pytest.approx(5037.5 * NS, rel=1e-12)


def test_l1_ub_strategy():
    # chunks from L1 at 128 B/cycle: stream 64,000 / 128 = 500 > compute 325; first chunk 16,384 / 128 = 128
    prof, hw, b = one_table()
    assert run(prof, hw, b, strategy="L1-UB") == pytest.approx(628 * NS, rel=1e-12)


def test_hot_row_pinning():
    # 100 pinned rows of 1000 uniform rows serve 10% of look-ups: 20 hits gathered on-chip (20 x 64 / 64 = 20),
    # 180 misses x 25 = 4500 cycles; + latency 100 = 4600 cycles; 6,400 bytes kept in L1
    prof, hw, b = one_table()
    assert run(prof, hw, b, strategy="GM", hot_rows=100) == pytest.approx(4600 * NS, rel=1e-12)
    p = predict(prof, hw, Mapping(tables=(TableMapping("T", hot_rows=100),)), b)
    assert p.per_core[0].memory_bytes == 6400 + 2 * 64 + 16 * 4  # pinned + two row buffers + one accumulator


def test_serial_fetch_and_compute_add_up():
    # a core that does not overlap (numpy): fetch 200 x 25 = 5000 + pooling 100 + latency 100 = 5200 cycles
    prof, hw, b = one_table(overlaps_fetch_compute=False)
    assert run(prof, hw, b, strategy="GM") == pytest.approx(5200 * NS, rel=1e-12)


def test_pooling_pays_a_cost_per_row():
    # pooling 200 rows x (2 cycles + 64 B / 128 B/cycle) = 500; serial: 5000 + 500 + 100 = 5600 cycles
    prof, hw, b = one_table(overlaps_fetch_compute=False, pool_row_cycles=2.0)
    assert run(prof, hw, b, strategy="GM") == pytest.approx(5600 * NS, rel=1e-12)


def test_bags_of_one_length_pool_as_a_block():
    # pooling 2.0 with pooling_max 2: every bag has two ids, so an unsharded task pools them as one block:
    # 200 rows x (1 cycle + 64 B / 64 B/cycle) = 400; serial: 5000 + 400 + 100 = 5500 cycles
    block = {"block_pool_row_cycles": 1.0, "block_pool_bytes_per_cycle": 64.0}
    prof, hw, b = one_table(overlaps_fetch_compute=False, pool_row_cycles=2.0, **block)
    assert run(prof, hw, b, strategy="GM") == pytest.approx(5500 * NS, rel=1e-12)
    # bags of 1 or 2 ids (pooling 1.5): the mixed-length law, 150 rows x (2 + 64 / 128) = 375;
    # fetch 150 x 25 = 3750 + 375 + 100 = 4225 cycles
    mixed = workload(zipf_table("T", rows=1000, alpha=0.0, dim=16, pooling=1.5))
    assert run(mixed, hw, b, strategy="GM") == pytest.approx(4225 * NS, rel=1e-12)
    # two shards: a task's routed bags have mixed lengths, the mixed law again: route 200 x 4 / 128 = 6.25,
    # fetch 100 x 25 = 2500, pooling 100 x 2.5 = 250, latency 100: 2856.25 cycles a task; + the merge
    prof2, hw2, _ = one_table(cores=2, overlaps_fetch_compute=False, pool_row_cycles=2.0, **block)
    merge = 2 * 100 * (1 - math.exp(-1.0)) * 2 * 16 * 4 / 6.4e10
    assert run(prof2, hw2, b, strategy="GM", shards=2) == pytest.approx(2856.25 * NS + merge, rel=1e-12)


def test_routing_is_priced_per_id():
    # 2 contiguous shards, routing scans all 200 ids at 1 cycle each = 200: 2500 + 100 + 200 = 2800 cycles a task;
    # the merge as in test_two_core_shard_with_merge (no sync, no launch)
    prof, hw, b = one_table(cores=2, route_cycles_per_id=1.0)
    merge = 2 * 100 * (1 - math.exp(-1.0)) * 2 * 16 * 4 / 6.4e10
    assert run(prof, hw, b, strategy="GM", shards=2) == pytest.approx(2800 * NS + merge, rel=1e-12)


def test_routing_is_priced_per_query_and_per_pass():
    # as above, + 100 queries x 3 cycles of counting and bag layout = 300 cycles, + the pass's set-up 500 ns:
    # 2800 + 300 + 500 = 3600 cycles a task; an unsharded task routes nothing and pays neither (5100, test_gm_strategy)
    prof, hw, b = one_table(cores=2, route_cycles_per_id=1.0, route_cycles_per_query=3.0, per_route_s=500 * NS)
    merge = 2 * 100 * (1 - math.exp(-1.0)) * 2 * 16 * 4 / 6.4e10
    assert run(prof, hw, b, strategy="GM", shards=2) == pytest.approx(3600 * NS + merge, rel=1e-12)
    assert run(prof, hw, b, strategy="GM") == pytest.approx(5100 * NS, rel=1e-12)


def test_gm_ub_streams_at_the_streaming_rate_and_scans_per_id():
    # stream 64,000 B at 64 B/cycle = 1000; compute: 4 chunks x 200 ids x 2 cycles = 1600 + gather 200 + pooling
    # 100 = 1900, added (no overlap): 2900; first chunk 16,384 / 64 = 256 + latency 100: 3256 cycles
    prof, hw, b = one_table(overlaps_fetch_compute=False, gm_stream_bytes_per_cycle=64.0, scan_cycles_per_id=2.0)
    assert run(prof, hw, b, strategy="GM-UB") == pytest.approx(3256 * NS, rel=1e-12)


def test_pinned_set_test_per_fetched_id():
    # 100 pinned rows: ceil(log2 100) = 7 search steps x 1 cycle for each of the 200 fetched ids = 1400 cycles of
    # compute, + pooling 100 + hits 20 = 1520; overlapped it hides under 4500 of fetches (4600 as before),
    # serial it adds: 4500 + 1520 + 100 = 6120 cycles
    prof, hw, b = one_table(pin_cycles_per_id=1.0)
    assert run(prof, hw, b, strategy="GM", hot_rows=100) == pytest.approx(4600 * NS, rel=1e-12)
    prof, hw, b = one_table(pin_cycles_per_id=1.0, overlaps_fetch_compute=False)
    assert run(prof, hw, b, strategy="GM", hot_rows=100) == pytest.approx(6120 * NS, rel=1e-12)


def test_dedup_sorts_per_id_and_expands_from_unique_rows():
    # batch 128, n = 256, U distinct rows as in test_dedup; sort 256 ids x 1 cycle x 8 passes = 2048; fetch U x 25;
    # compute: pooling 128 + each look-up gathered from the unique rows 256 x 64 / 64 = 256; serial; + latency 100
    prof, hw, b = one_table(batch=128, sort_cycles_per_id=1.0, overlaps_fetch_compute=False)
    u = 1000 * (1 - 0.999**256)
    expected = 2048 + u * 25 + 128 + 256 + 100
    assert run(prof, hw, b, strategy="GM", dedup=True) == pytest.approx(expected * NS, rel=1e-9)


def test_dedup():
    # batch 128: n = 256 look-ups (a grid point of the unique curve); distinct rows among 256 uniform draws
    # over 1000 rows: U = 1000 (1 - 0.999^256); sort: 256 ids x 4 B x log2(256) = 8 passes / 128 = 64 cycles;
    # fetch U x 25; pooling 256 x 64 / 128 = 128 overlapped; + latency 100
    prof, hw, b = one_table(batch=128)
    u = 1000 * (1 - 0.999**256)
    expected = 64 + u * 25 + 100
    assert run(prof, hw, b, strategy="GM", dedup=True) == pytest.approx(expected * NS, rel=1e-9)


def test_two_core_shard_with_merge():
    # 2 contiguous shards of 500 uniform rows: each task n = 100 look-ups; routing scan of all 200 ids:
    # 200 x 4 / 128 = 6.25; fetch 100 x 25 = 2500; + latency 100: 2606.25 cycles + 0.1 us per task.
    # Merge: each shard writes a partial for the queries it touched, 1 - e^(-2 x 0.5) of 100, and the merge
    # reads them back: 2 x 100 x (1 - e^-1) x 2 shards x 16 x 4 B at min(1e12, 2 cores x 32 B x 1 GHz) = 6.4e10 B/s,
    # + 1 us sync; + 2 us launch.
    prof, hw, b = one_table(cores=2, per_task_s=1e-7, merge_sync_s=1e-6, launch_s=2e-6)
    task = 2606.25 * NS + 1e-7
    merge = 2 * 100 * (1 - math.exp(-1.0)) * 2 * 16 * 4 / 6.4e10 + 1e-6
    got = run(prof, hw, b, strategy="GM", shards=2)
    assert got == pytest.approx(task + merge + 2e-6, rel=1e-12)
    p = predict(prof, hw, Mapping(tables=(TableMapping("T", shards=2),)), b)
    assert sorted(c.core for c in p.per_core if c.n_tasks == 1) == [0, 1]
    assert p.breakdown["merge_s"] == pytest.approx(merge, rel=1e-12)


def test_balanced_shards_pay_the_remap():
    # as the contiguous case, plus remapping 200 / 2 = 100 ids per shard, one GM read each: max(25, 32 / 32) = 25
    prof, hw, b = one_table(cores=2)
    contiguous = run(prof, hw, b, shards=2)
    balanced = run(prof, hw, b, shards=2, sharding="balanced")
    assert balanced - contiguous == pytest.approx(2500 * NS, rel=1e-9)


def test_balanced_remap_reads_the_l2_when_the_remap_table_fits():
    # the remap table, 1000 rows x 4 B = 4,000 B, fits a 1 MiB L2: each of the 100 ids per shard is an L2 read,
    # max(L2 latency 50 / 4, 32-B block / 64 B/cycle) = 12.5 cycles: 1250 cycles more than contiguous shards
    prof, hw, b = one_table(cores=2, l2_bytes=1 << 20)
    contiguous = run(prof, hw, b, shards=2)
    balanced = run(prof, hw, b, shards=2, sharding="balanced")
    assert balanced - contiguous == pytest.approx(1250 * NS, rel=1e-9)


def test_streamed_chunks_pay_their_set_up():
    # as test_gm_ub_strategy (2612 cycles) + 4 chunks x 10 ns; with 2 query groups of 3 chunks (the groups case,
    # 5037.5 cycles) + 2 x 3 x 10 ns
    prof, hw, b = one_table(per_chunk_s=1e-8)
    assert run(prof, hw, b, strategy="GM-UB") == pytest.approx((2612 + 40) * NS, rel=1e-12)
    assert run(prof, hw, b, strategy="GM-UB", chunk_bytes=30_000) == pytest.approx((5037.5 + 60) * NS, rel=1e-12)
    assert run(prof, hw, b, strategy="GM") == pytest.approx(5100 * NS, rel=1e-12)  # GM streams no chunks


def test_replicas_split_the_batch():
    # 2 replicas on 2 cores: 50 queries each, 100 look-ups x 25 + 100 = 2600 cycles
    prof, hw, b = one_table(cores=2)
    assert run(prof, hw, b, replicas=2) == pytest.approx(2600 * NS, rel=1e-12)


def test_chip_bandwidth_caps_the_sum_over_cores():
    # GM-UB streams 64,000 B per replica; with 2 replicas 128,000 B per batch. A chip of 1e12 B/s takes 128 ns,
    # far below a core's 2.6 us; lower the chip bandwidth to 1e7 B/s and the chip bound, 12.8 ms, is the latency.
    from dataclasses import replace

    prof, hw, b = one_table(cores=2)
    slow = replace(hw, gm_bandwidth_bytes_per_s=1e7)
    p = predict(prof, slow, Mapping(tables=(TableMapping("T", replicas=2, strategy="GM-UB"),)), b)
    assert p.latency_s == pytest.approx(128_000 / 1e7, rel=1e-12)
    assert p.breakdown["bound"] == "chip GM bandwidth"
