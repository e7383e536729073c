"""Test fixtures for the latency model: workload profiles from an exact Zipf law, and round-number chips.

Every curve is computed here from the law itself (not by `analytics`), so expected figures in the tests are
independent of the code under test.
"""

from __future__ import annotations

import numpy as np

from autotune.hardware import CoreType, HardwareProfile, LocalMemory, Overheads
from autotune.workload import N_BUCKETS, REUSE_BINS, TableProfile, WorkloadProfile


def zipf_probs(rows: int, alpha: float) -> np.ndarray:
    """Access probability of the rank-1..rows ids under p_i ~ i^-alpha (alpha 0 = uniform)."""
    w = np.arange(1, rows + 1, dtype=float) ** -alpha
    return w / w.sum()


def zipf_table(
    name: str,
    rows: int,
    alpha: float = 1.0,
    dim: int = 16,
    pooling: float = 1.0,
    queries: int = 100_000,
    contiguous: bool = True,
    seed: int = 0,
    dtype: str = "float32",
    row_map: str | None = None,
) -> TableProfile:
    """A TableProfile of an exact Zipf law; hot ids at the first rows (`contiguous`) or randomly permuted.

    `row_map` is recorded as `analyze` records it (`identity`: the listed hot ids are their rows); None leaves
    the hot rows' positions unknown to the model."""
    p = zipf_probs(rows, alpha)
    cum = np.concatenate([[0.0], np.cumsum(p)])
    hs = np.unique(np.concatenate([np.arange(0, min(rows, 64) + 1), np.geomspace(1, rows, 200).astype(int), [rows]]))
    rank_curve = tuple((int(h), float(min(cum[h], 1.0))) for h in hs)
    ns = 2 ** np.arange(0, 25)
    unique = [float(np.sum(-np.expm1(n * np.log1p(-np.minimum(p, 1 - 1e-15))))) for n in ns]
    unique_curve = tuple((int(n), float(u)) for n, u in zip(ns, unique, strict=True))
    row_of_rank = np.arange(rows) if contiguous else np.random.default_rng(seed).permutation(rows)
    bucket = (row_of_rank * N_BUCKETS) // rows
    bucket_mass = np.bincount(bucket, weights=p, minlength=N_BUCKETS)
    accesses = round(queries * pooling)
    coverage = {
        k: float(np.interp(float(k) / 100 * rows, np.arange(rows + 1), cum)) for k in ("0.01", "0.1", "1", "10", "50")
    }
    return TableProfile(
        name=name,
        rows=rows,
        dim=dim,
        dtype=dtype,
        accesses=accesses,
        queries=queries,
        missing=0,
        distinct=rows,
        pooling_mean=pooling,
        pooling_max=max(1, int(np.ceil(pooling))),
        top_share=float(p[0]),
        zipf_alpha=alpha,
        coverage=coverage,
        rank_curve=rank_curve,
        unique_curve=unique_curve,
        reuse_rows=tuple([1.0] + [0.0] * (REUSE_BINS - 1)),
        reuse_accesses=tuple([1.0] + [0.0] * (REUSE_BINS - 1)),
        bucket_mass=tuple(float(x) for x in bucket_mass),
        hot_ids=tuple((str(int(row_of_rank[i])), int(p[i] * accesses)) for i in range(min(rows, 10))),
        extra={"row_map": row_map} if row_map else {},
    )


def workload(*tables: TableProfile, queries: int = 100_000, name: str = "test") -> WorkloadProfile:
    return WorkloadProfile(name=name, queries=queries, rows_read=queries, rows_skipped=0, tables=tuple(tables))


def round_chip(
    cores: int = 2,
    l1_bytes: int | None = 1 << 20,
    ub_bytes: int = 1 << 16,
    l2_bytes: int = 0,
    outstanding: int = 4,
    launch_s: float = 0.0,
    per_task_s: float = 0.0,
    merge_sync_s: float = 0.0,
    per_chunk_s: float = 0.0,
    per_route_s: float = 0.0,
    l1_resident: bool = True,
    l2_slices: int = 1,
    interleave_bytes: int = 256,
    **core_figures: float | bool,
) -> HardwareProfile:
    """A chip with round numbers so golden values can be worked out by hand.

    1 GHz (1 cycle = 1 ns); GM: 32 B/cycle per core, latency 100 cycles, 32-byte blocks; L2: 64 B/cycle,
    latency 50 cycles; gather 64 B/cycle, pool 128 B/cycle; UB fills from L1 at 128 B/cycle; chip GM
    bandwidth 1e12 B/s, L2 2e12 B/s, 1 GiB of GM. Streaming from GM also 32 B/cycle; id work (route, scan,
    one sort pass) 4 B / 128 B/cycle = 1/32 cycle per id; pinned-set test free; no per-row pooling constant;
    fetches overlap compute; bags of one length pool at the same figures (`block_pool_*`); one L2 slice (the
    whole 2e12 B/s) interleaved at 256 B, no private cache of GM reads
    (the hot-spot term); `core_figures` overrides any `CoreType` field (e.g. `overlaps_fetch_compute=False`).
    """
    memories = [LocalMemory("UB", ub_bytes, True, 32, 256.0, "L1" if l1_bytes else "GM", 128.0 if l1_bytes else 32.0)]
    if l1_bytes:
        memories.insert(0, LocalMemory("L1", l1_bytes, l1_resident, 32, 128.0, "GM", 32.0))
    figures: dict = {
        "gm_read_bytes_per_cycle": 32.0,
        "gm_stream_bytes_per_cycle": 32.0,
        "l2_read_bytes_per_cycle": 64.0,
        "gm_latency_cycles": 100.0,
        "l2_latency_cycles": 50.0,
        "outstanding_requests": outstanding,
        "gm_block_bytes": 32,
        "gather_bytes_per_cycle": 64.0,
        "pool_bytes_per_cycle": 128.0,
        "pool_row_cycles": 0.0,
        "route_cycles_per_id": 4 / 128,
        "route_cycles_per_query": 0.0,
        "scan_cycles_per_id": 4 / 128,
        "sort_cycles_per_id": 4 / 128,
        "pin_cycles_per_id": 0.0,
        "overlaps_fetch_compute": True,
        "caches_gm_reads": False,
    }
    figures.update(core_figures)
    # one-length bags pool at the same law unless a test sets the block figures itself
    figures.setdefault("block_pool_bytes_per_cycle", figures["pool_bytes_per_cycle"])
    figures.setdefault("block_pool_row_cycles", figures["pool_row_cycles"])
    core = CoreType(name="vector", count=cores, memories=tuple(memories), **figures)
    return HardwareProfile(
        name="roundchip",
        description="round numbers for hand-computed tests",
        family="ascend",
        clock_hz=1e9,
        core_types=(core,),
        gm_capacity_bytes=1 << 30,
        gm_bandwidth_bytes_per_s=1e12,
        l2_capacity_bytes=l2_bytes,
        l2_bandwidth_bytes_per_s=2e12,
        l2_slices=l2_slices,
        interleave_bytes=interleave_bytes,
        overheads=Overheads(
            launch_s=launch_s,
            per_task_s=per_task_s,
            merge_sync_s=merge_sync_s,
            per_chunk_s=per_chunk_s,
            per_route_s=per_route_s,
        ),
    )
