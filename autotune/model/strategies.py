"""The cost of one table's tasks under each single-core strategy: vectorised over every shard of many tables.

A task is one (table, replica, shard) on one core. It serves q = B / replicas queries and the shard's share
m of their look-ups: n = q x pooling x m look-ups. All replicas of a shard cost the same, so costs are
computed per shard and tiled over replicas. Every term and its source is in docs/latency-model.md; the
units are cycles of the look-up core's clock until the per-task overhead (seconds) is added.

- GM: rows fetched one by one by DMA, `outstanding` in flight: per row max(latency / outstanding,
  row bytes rounded up to the DMA block / per-core rate), at L2 figures for L2 hits; overlapped
  (double-buffered) with pooling; pinned hot rows are gathered on-chip instead.
- L1: the shard lives in the resident memory (preloaded once if that memory keeps data across batches,
  else reloaded per batch); rows read on-chip, overlapped with pooling.
- GM-UB / L1-UB: the shard streams through the staging memory in double-buffered chunks; per chunk the
  vector unit scans the task's ids and gathers the hits. Cost grows with the shard's bytes, not with skew.
  Accumulators for all q queries must fit beside the two chunks; otherwise the queries are processed in
  groups and the shard is streamed once per group. Every chunk of every pass also costs `per_chunk_s` (its
  set-up: DMA issue and sync, or a loop step; seconds, like `per_task_s`).
- Sharded tasks scan all q x pooling ids to keep their own (routing, `route_cycles_per_id` each), count and lay
  out the kept look-ups by query (`route_cycles_per_query` per query) and pay the pass's set-up once
  (`per_route_s`, seconds: on a CPU a dozen numpy calls, ~12 us, as much as 500 routed ids); balanced
  shards also pay an id remap (one remap-table read per id, shared among the k shards), at L2 figures when the
  remap table (4 B per row) fits the chip's L2, else at GM figures. De-duplication sorts
  the ids first (`sort_cycles_per_id` per id per pass) and pools every look-up from the unique rows (a gather
  in local memory). *-UB scans cost `scan_cycles_per_id` per id per chunk: id work is integer work on ids,
  priced per id, not at the float pooling rate.
- Where the core's private cache keeps what it reads from GM (`caches_gm_reads`: a CPU's L1/L2, a GPU SM's L1),
  the local memory is that cache: a GM shard that fits it is read at the local memory's rate, as L1 reads its
  copy (no GM or L2 bytes, no first-fetch latency, no L2 slice hot spot).
- GM with H pinned rows tests every fetched id against the sorted pinned set: ceil(log2 H) search steps of
  `pin_cycles_per_id` per id (compute), whether or not it hits.
- GM fetches of one shard cannot end before the L2 slice owning its busiest interleave granule has served every
  task's reads of it (`hotspot.py`, `ModelContext.hot_spot_cycles`): the memory hot spot of hot rows.
- Pooling costs `pool_row_cycles` per row plus its bytes at `pool_bytes_per_cycle`; an unsharded task of a table
  whose bags all have one length (one-hot, fixed multi-hot) pools as one block, at `block_pool_row_cycles` and
  `block_pool_bytes_per_cycle`. Fetches overlap compute
  (the loop costs the larger of the two) when the core says `overlaps_fetch_compute`, else they add up; such a
  run-to-completion core also holds every gathered row before pooling, and the bytes beyond its staging memory
  (a CPU core's private cache) go out to L2 and back (spill, at `l2_read_bytes_per_cycle`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from autotune.model.context import ACC_BYTES, REMAP_BYTES, ModelContext
from autotune.model.mapping import STRATEGIES

STRATEGY_CODE = {s: i for i, s in enumerate(STRATEGIES)}
GM, L1, GM_UB, L1_UB = range(4)
Knobs = tuple[int, int, str, str, int, bool, "int | None"]
BOUNDS = ("latency", "bandwidth", "compute", "overhead")


@dataclass(frozen=True, eq=False)
class CostBatch:
    """The arrays of one `table_costs` call: per shard (entries' shards concatenated), per task (entries'
    tasks concatenated, each entry's slowest first) and per entry. Its `TableCost` records are views of it."""

    time_s: np.ndarray  # (shards,) time of one task of each shard
    parts_s: np.ndarray  # (4, shards) seconds bound by latency, bandwidth, compute, overhead
    memory: np.ndarray  # (4, shards) kept_resident, kept_staging, transient_resident, transient_staging
    shard_desc: np.ndarray  # (shards,) each entry's shards (local index), slowest first
    task_time_s: np.ndarray  # (tasks,) every task, each entry's slowest first, a shard's replicas together
    task_kept: np.ndarray  # (tasks,) bytes each task keeps in the memory that keeps data (`kept_slot`)
    task_transient: np.ndarray  # (tasks,) bytes each task holds there while it runs
    entry: dict[str, np.ndarray]  # per entry: tasks, shards, max_time_s, kept_need, kept_max, gm_bytes, ...


@dataclass(frozen=True, eq=False)
class TableCost:
    """The cost and footprint of every task of one table under one set of knobs.

    Tasks come in two orders: replica-major (task i = replica i // k, shard i % k), the order of an explicit
    placement, and slowest first (shards by decreasing time, a shard's r replicas together), the order the
    assignment places them in. The scalars are fields; the arrays are views of the `CostBatch` the table was
    costed in, made on first use (cached properties): the search's fast path reads the batch's arrays
    directly (`costbook.py`), so costing a table costs little more than its share of the vectorised pass.
    """

    table: int
    knobs: tuple
    replicas: int
    shards: int
    gm_bytes: float  # global-memory bytes read per batch by all tasks (chip bandwidth bound)
    l2_bytes: float  # L2 bytes read per batch by all tasks
    merge_bytes: float  # bytes written and read back to merge the shards' partial pooled vectors (0 if one shard)
    stored_bytes: float  # bytes the table occupies in global memory (with its remap table)
    max_time_s: float
    kept_need: float  # largest kept + transient bytes of one task in the memory that keeps data (see `kept_slot`)
    kept_max: float  # the most one task keeps there
    needs_memory: bool  # whether any bytes are kept across batches (assignment must check capacities)
    reason: str | None  # why these knobs cannot run on this chip (None: they can)
    excess_bytes: float  # by how much a single task overflows a memory (0 when it fits)
    batch: CostBatch = field(repr=False)
    first_shard: int = field(repr=False)  # this table's first shard in the batch
    first_task: int = field(repr=False)  # its first task in the batch

    @property
    def _shards(self) -> slice:
        return slice(self.first_shard, self.first_shard + self.shards)

    @property
    def _tasks(self) -> slice:
        return slice(self.first_task, self.first_task + self.replicas * self.shards)

    @cached_property
    def shard_time_s(self) -> np.ndarray:
        """(k,) time of one task of each shard."""
        return self.batch.time_s[self._shards]

    @cached_property
    def parts_s(self) -> np.ndarray:
        """(4, k) seconds of each shard's task bound by latency, bandwidth, compute, overhead."""
        return self.batch.parts_s[:, self._shards]

    @cached_property
    def shard_memory(self) -> np.ndarray:
        """(4, k) kept_resident, kept_staging, transient_resident, transient_staging per shard."""
        return self.batch.memory[:, self._shards]

    @property
    def kept_resident(self) -> np.ndarray:
        """(k,) bytes kept across batches in the resident memory (distinct from staging)."""
        return self.shard_memory[0]

    @property
    def kept_staging(self) -> np.ndarray:
        """(k,) bytes kept across batches in the staging memory."""
        return self.shard_memory[1]

    @property
    def transient_resident(self) -> np.ndarray:
        """(k,) bytes held in the resident memory during the task only."""
        return self.shard_memory[2]

    @property
    def transient_staging(self) -> np.ndarray:
        """(k,) bytes held in the staging memory during the task only."""
        return self.shard_memory[3]

    @cached_property
    def shard_desc(self) -> np.ndarray:
        """(k,) shards, slowest first (stable: equal times keep shard order)."""
        return self.batch.shard_desc[self._shards]

    @cached_property
    def desc(self) -> tuple[int, ...]:
        """Shards, slowest first."""
        return tuple(int(i) for i in self.shard_desc)

    @cached_property
    def task_time_s(self) -> np.ndarray:
        """(r*k,) time of every task, replica-major."""
        return np.tile(self.shard_time_s, self.replicas)

    @cached_property
    def task_shard_desc(self) -> np.ndarray:
        """(r*k,) shard of each task, slowest first."""
        return np.repeat(self.shard_desc, self.replicas)

    @cached_property
    def task_replica_desc(self) -> np.ndarray:
        """(r*k,) replica of each task, slowest first."""
        return np.tile(np.arange(self.replicas), self.shards)

    @cached_property
    def task_memory(self) -> np.ndarray:
        """(4, r*k) the four footprints of every task, replica-major."""
        return np.tile(self.shard_memory, (1, self.replicas))

    @cached_property
    def task_desc_memory(self) -> np.ndarray:
        """(4, r*k) the four footprints of every task, slowest first."""
        return self.shard_memory[:, self.task_shard_desc]


def fmt_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    n = float(n)
    for size, name in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if abs(n) >= size:
            return f"{n / size:.3g} {name}"
    return f"{n:.0f} B"


def shard_arrays(ctx: ModelContext, entries: Sequence[tuple[int, Knobs]]) -> dict[str, np.ndarray]:
    """Per-shard cost arrays of every (table index, knobs) entry, entries' shards concatenated in order.

    Keys: time_s, parts_s (4 x shards), kept_res, tr_res, kept_stg, tr_stg, gm_bytes, l2_bytes (per task),
    fits (this task alone fits one core), plus per entry: replicas, shards, starts.
    """
    hw, core, roles = ctx.hw, ctx.core, ctx.roles
    stg, res = roles.staging, roles.resident
    B = float(ctx.batch_size)
    per_entry = []  # one tuple per entry, turned into columns at once (cheaper than numpy item by item)
    masses = []
    spots = []  # per entry, the hot-spot cycles of each shard (0 unless GM)
    for t, knobs in entries:
        r, k, sharding, strategy, hot, dedup, chunk = knobs
        code = STRATEGY_CODE[strategy]
        hot = hot if code == GM else 0
        ratio = ctx.unique_ratio(t, B / r * ctx.pooling[t]) if dedup else 1.0
        h, l2h = ctx.pinned_hits(t, float(hot) * k)
        balanced = sharding == "balanced" and k > 1
        per_entry.append(
            (t, r, k, code, hot, dedup, balanced, chunk if chunk else ctx.default_chunk_bytes, ratio, h, l2h)
        )
        masses.append(ctx.shard_mass(t, k, sharding))
        spots.append(ctx.hot_spot_cycles(t, r, k, sharding, hot, dedup) if code == GM else np.zeros(k))
    cols = list(zip(*per_entry, strict=True))
    t_idx, k_e, code_e = (np.array(cols[i], dtype=np.intp) for i in (0, 2, 3))
    r_e, hot_e, chunk_e, ratio_e, h_e, l2h_e = (np.array(cols[i], dtype=float) for i in (1, 4, 7, 8, 9, 10))
    dedup_e, bal_e = (np.array(cols[i], dtype=bool) for i in (5, 6))

    # ---- per shard (entries repeated k times)
    m = np.concatenate(masses)
    t = np.repeat(t_idx, k_e)
    r = np.repeat(r_e, k_e)
    k = np.repeat(k_e, k_e).astype(float)
    code = np.repeat(code_e, k_e)
    dedup = np.repeat(dedup_e, k_e)
    bal = np.repeat(bal_e, k_e)
    h = np.repeat(h_e, k_e)
    l2h = np.repeat(l2h_e, k_e)
    chunk = np.repeat(chunk_e, k_e)
    ratio = np.repeat(ratio_e, k_e)
    rb, rbg, rbu, dim = ctx.row_bytes[t], ctx.row_bytes_gm[t], ctx.row_bytes_ub[t], ctx.dim[t]
    rows_s = np.ceil(ctx.rows[t] / k)
    shard_bytes = rows_s * rb
    hot_rows = np.minimum(np.repeat(hot_e, k_e), rows_s)

    q = B / r  # queries per task
    N = q * ctx.pooling[t]  # look-ups of the replica's slice of the whole table
    n = N * m  # look-ups of this task
    f = np.where(dedup, np.minimum(n * ratio, rows_s), n)  # rows fetched

    gm_rate, l2_rate = core.gm_read_bytes_per_cycle, core.l2_read_bytes_per_cycle
    pool_rate, gather_rate = core.pool_bytes_per_cycle, core.gather_bytes_per_cycle
    pool_row, stream_gm = core.pool_row_cycles, core.gm_stream_bytes_per_cycle
    route_c, scan_c, sort_c = core.route_cycles_per_id, core.scan_cycles_per_id, core.sort_cycles_per_id
    route_q = core.route_cycles_per_query
    pin_c = core.pin_cycles_per_id
    lat_gm, lat_l2, out = core.gm_latency_cycles, core.l2_latency_cycles, max(core.outstanding_requests, 1)
    l1_rate = roles.l1_to_staging_bytes_per_cycle or 1.0

    is_gm, is_l1, is_gmub, is_l1ub = code == GM, code == L1, code == GM_UB, code == L1_UB
    is_ub = is_gmub | is_l1ub
    zero = np.zeros_like(m)

    # ---- serial steps before the pipelined loop
    sort = np.where(dedup, n * sort_c * np.maximum(1.0, np.ceil(np.log2(np.maximum(n, 2.0)))), 0.0)
    # routing: every id of the replica's slice is tested and the kept ones compacted (per id), then the kept
    # look-ups are counted per query and laid out by bag (per query); its set-up is `per_route_s` (overheads)
    route = np.where(k > 1, N * route_c + q * route_q, 0.0)
    # the remap table (REMAP_BYTES per row) is read where it lives: the chip's L2 when it fits there, else GM
    remap_in_l2 = bal & (ctx.rows[t] * REMAP_BYTES <= hw.l2_capacity_bytes)
    remap_lat = np.where(remap_in_l2, lat_l2 / out, lat_gm / out)
    remap_bw = core.gm_block_bytes / np.where(remap_in_l2, l2_rate, gm_rate)
    remap = np.where(bal, N / k * np.maximum(remap_lat, remap_bw), 0.0)
    remap_gm_bytes = np.where(bal & ~remap_in_l2, N / k * core.gm_block_bytes, 0.0)
    remap_l2_bytes = np.where(remap_in_l2, N / k * core.gm_block_bytes, 0.0)

    # ---- GM: per-row DMA cost at GM or L2 figures; pinned hits are gathered on-chip
    c_gm_lat, c_gm_bw = lat_gm / out, rbg / gm_rate
    c_l2_lat, c_l2_bw = lat_l2 / out, rbg / l2_rate
    hits = np.where(is_gm, f * h, 0.0)
    miss = np.where(is_gm, f - hits, 0.0)  # rows the GM strategy fetches by DMA
    # where the core's private cache keeps the lines it reads from GM (a CPU's L1/L2, a GPU SM's L1), its local
    # memory is that cache: a GM shard that fits it is read from it, as the L1 strategy reads its copy (no GM or L2
    # traffic, no first-fetch latency, no L2 slice hot spot)
    cached = np.zeros_like(is_gm)
    if core.caches_gm_reads and res is not None and res.resident:
        cached = is_gm & (shard_bytes <= res.capacity_bytes)
    fetch_l2 = np.where(cached, 0.0, miss * l2h * np.maximum(c_l2_lat, c_l2_bw))
    fetch_gm = np.where(cached, 0.0, miss * (1.0 - l2h) * np.maximum(c_gm_lat, c_gm_bw))
    fetch_local = np.where(cached, miss * rbu / l1_rate, 0.0)
    fetch_lat = np.where(c_l2_lat >= c_l2_bw, fetch_l2, 0.0) + np.where(c_gm_lat >= c_gm_bw, fetch_gm, 0.0)
    # the L2 slice of the shard's busiest granule serves every task's reads of it (hotspot.py): no task of the
    # shard ends its fetches sooner; when that binds, the fetch time is the slice's bandwidth, not latency
    spot = np.where(cached, 0.0, np.concatenate(spots))
    hot_bound = spot > fetch_l2 + fetch_gm
    fetch_lat = np.where(hot_bound, 0.0, fetch_lat)
    fetch = np.maximum(fetch_l2 + fetch_gm, spot) + fetch_local
    # bags of one length (and an unsharded task, which keeps them whole) pool as one block reduction; a sharded
    # task's routed bags, or a table with bags of mixed lengths, pool one length at a time
    block = (k == 1) & ctx.one_length_bags[t]
    block_row, block_rate = core.block_pool_row_cycles, core.block_pool_bytes_per_cycle
    pool = n * np.where(block, block_row + rb / max(block_rate, 1e-300), pool_row + rb / max(pool_rate, 1e-300))
    expand = np.where(dedup, n * rbu / gather_rate, 0.0)  # de-duplicated: each look-up gathers its unique row
    # a core that runs each step to completion (numpy: `overlaps_fetch_compute` false) gathers all n rows into
    # the staging memory before pooling reads them back; on a CPU that memory is the core's private cache, and the
    # rows beyond it are evicted to the last-level cache as they are written and read back from it
    spill = 0.0 if core.overlaps_fetch_compute else np.maximum(n * rbu - stg.capacity_bytes, 0.0) / l2_rate
    steps = np.maximum(1.0, np.ceil(np.log2(np.maximum(hot_rows, 1.0))))
    pin_test = np.where(is_gm & (hot_rows > 0), f * pin_c * steps, 0.0)  # each fetched id searched in the pinned set

    # ---- *-UB: chunks double-buffered in staging, accumulators beside them, query groups if they do not fit
    acc_room = stg.capacity_bytes - 2.0 * chunk
    groups = np.where(is_ub, np.ceil(q * dim * ACC_BYTES / np.maximum(acc_room, 1.0)), 1.0)
    n_chunks = np.ceil(shard_bytes / chunk)
    stream_rate = np.where(is_gmub, stream_gm, l1_rate)
    stream = groups * shard_bytes / stream_rate
    fill_chunk = np.minimum(chunk, shard_bytes) / stream_rate

    # (the strategies exclude each other: nested `where`s pick one branch, as `np.select` would, but faster)
    mem = np.where(is_gm, fetch, np.where(is_l1, f * rbu / l1_rate, np.where(is_ub, stream, 0.0)))
    ub_comp = n_chunks * f * scan_c + f * rbu / gather_rate + pool
    comp = np.where(is_gm, pool + hits * rbu / gather_rate, np.where(is_l1, pool, np.where(is_ub, ub_comp, 0.0)))
    comp = comp + expand + pin_test + spill
    first = np.where(cached, 0.0, lat_gm)  # a cached GM shard's first row waits on no DRAM read
    fill = np.where(is_gm, first, np.where(is_gmub, fill_chunk + lat_gm, np.where(is_l1ub, fill_chunk, 0.0)))

    # ---- where the table and the pinned rows live; reloads when that memory does not keep data across batches
    table_in_res = is_l1 | is_l1ub
    pin_mem = res if res is not None else stg
    pinned_bytes = np.where(is_gm, hot_rows * rbu, 0.0)
    res_keeps = res is not None and res.resident
    res_fill = res.fill_bytes_per_cycle if res is not None else stream_gm
    reload = np.where(table_in_res & (not res_keeps), shard_bytes / res_fill, 0.0)
    pin_keeps = pin_mem.resident
    reload = reload + (0.0 if pin_keeps else pinned_bytes / pin_mem.fill_bytes_per_cycle)
    reload_gm_bytes = np.where(table_in_res & (not res_keeps), shard_bytes, 0.0) + (0.0 if pin_keeps else pinned_bytes)

    row_buffers = 2.0 * rbu + dim * ACC_BYTES  # double-buffered row + one pooled vector
    chunk_buffers = np.minimum(2.0 * chunk + q * dim * ACC_BYTES, stg.capacity_bytes)
    work = np.where(is_ub, chunk_buffers, row_buffers)
    table_res_bytes = np.where(table_in_res, shard_bytes, 0.0)
    if res is None:
        kept_res, tr_res = zero, zero
        kept_stg = pinned_bytes if pin_keeps else zero
        tr_stg = work + (zero if pin_keeps else pinned_bytes)
    else:
        kept_res = (table_res_bytes if res_keeps else zero) + (pinned_bytes if pin_keeps else zero)
        tr_res = (zero if res_keeps else table_res_bytes) + (zero if pin_keeps else pinned_bytes)
        kept_stg, tr_stg = zero, work
        if roles.shared:
            kept_stg, tr_stg = kept_res, tr_stg + tr_res
            kept_res, tr_res = zero, zero

    # ---- time and its attribution to what binds it
    if core.overlaps_fetch_compute:  # double-buffered: the loop runs at the slower of fetching and computing
        loop = np.maximum(mem, comp)
        mem_counts = mem > comp
        comp_counts = ~mem_counts
    else:  # fetch, then compute (numpy runs each call to completion): both count
        loop = mem + comp
        mem_counts = comp_counts = np.ones_like(mem, dtype=bool)
    mem_lat = np.where(is_gm, fetch_lat, 0.0)
    serial = sort + route + remap + reload
    cycles = serial + loop + fill
    remap_is_lat = remap_lat >= remap_bw
    lat_c = fill + np.where(mem_counts, mem_lat, 0.0) + np.where(remap_is_lat, remap, 0.0)
    bw_c = reload + np.where(mem_counts, mem - mem_lat, 0.0) + np.where(remap_is_lat, 0.0, remap)
    comp_c = sort + route + np.where(comp_counts, comp, 0.0)
    # fixed costs in seconds: the task's set-up, and each chunk's set-up on every pass of a *-UB task
    overhead = (
        hw.overheads.per_task_s
        + np.where(k > 1, hw.overheads.per_route_s, 0.0)
        + np.where(is_ub, groups * n_chunks * hw.overheads.per_chunk_s, 0.0)
    )
    clock = ctx.clock_hz
    time_s = cycles / clock + overhead
    parts = np.stack([lat_c / clock, bw_c / clock, comp_c / clock, overhead])

    gm_bytes_s = (
        np.where(cached, 0.0, miss * (1.0 - l2h) * rbg)
        + remap_gm_bytes
        + reload_gm_bytes
        + np.where(is_gmub, groups * shard_bytes, 0.0)
    )
    l2_bytes_s = np.where(cached, 0.0, miss * l2h * rbg) + remap_l2_bytes

    # ---- does one task fit one core on its own (capacities, L1 present, room for an accumulator)
    fits = np.repeat(r_e * k_e <= ctx.n_cores, k_e)
    if res is None:
        fits &= ~table_in_res
    fits &= ~is_ub | (acc_room >= dim * ACC_BYTES)
    fits &= kept_stg + tr_stg <= stg.capacity_bytes
    if res is not None and not roles.shared:
        fits &= kept_res + tr_res <= res.capacity_bytes
    return {
        "time_s": time_s,
        "parts_s": parts,
        "kept_res": kept_res,
        "tr_res": tr_res,
        "kept_stg": kept_stg,
        "tr_stg": tr_stg,
        "gm_bytes": gm_bytes_s,
        "l2_bytes": l2_bytes_s,
        "fits": fits,
        "acc_room": acc_room,
        "touched": -np.expm1(-ctx.pooling[t] * m),  # share of queries with a look-up in the shard (Poisson)
        "dim": dim,
        "replicas": r_e,
        "shards": k_e,
        "balanced": bal_e,
        "starts": np.cumsum(k_e) - k_e,
    }


def table_costs(ctx: ModelContext, entries: Sequence[tuple[int, Knobs]]) -> list[TableCost]:
    """Cost every (table index, knobs) entry in one vectorised pass over all their shards."""
    return cost_batch(ctx, entries)[0]


def cost_batch(ctx: ModelContext, entries: Sequence[tuple[int, Knobs]]) -> tuple[list[TableCost], CostBatch]:
    """`table_costs`, with the batch its records are views of (what the cost book files).

    Per-entry figures come from whole-batch operations: a sort of every shard by (entry, decreasing time)
    orders each entry's tasks, `reduceat` takes maxima. Sums are taken per width, rows of equal length as
    one 2-D array, which adds in the same order as summing each entry's slice alone.
    """
    if not entries:
        return [], _empty_batch()
    a_ = shard_arrays(ctx, entries)
    time_s = a_["time_s"]
    kept_res, tr_res, kept_stg, tr_stg = a_["kept_res"], a_["tr_res"], a_["kept_stg"], a_["tr_stg"]
    r_e, k_e, bal_e, starts = a_["replicas"].astype(np.intp), a_["shards"], a_["balanced"], a_["starts"]
    kept, transient = (kept_res, tr_res) if kept_slot(ctx) == 0 else (kept_stg, tr_stg)
    owner = np.repeat(np.arange(len(entries)), k_e)
    order = np.lexsort((-time_s, owner))  # each entry's shards, slowest first (stable: ties keep shard order)
    task = np.repeat(order, np.repeat(r_e, k_e))  # each shard's replicas together
    n_tasks = r_e * k_e
    gm, l2, touched = _entry_sums(starts, k_e, a_["gm_bytes"], a_["l2_bytes"], a_["touched"])
    t_idx = np.array([t for t, _ in entries], dtype=np.intp)
    merge = merge_bytes(ctx, t_idx, k_e, touched)
    batch = CostBatch(
        time_s=time_s,
        parts_s=a_["parts_s"],
        memory=np.stack([kept_res, kept_stg, tr_res, tr_stg]),
        shard_desc=order - np.repeat(starts, k_e),
        task_time_s=time_s[task],
        task_kept=kept[task],
        task_transient=transient[task],
        entry={
            "tasks": n_tasks,
            "shards": k_e,
            "max_time_s": np.maximum.reduceat(time_s, starts),
            "kept_need": np.maximum.reduceat(kept + transient, starts),
            "kept_max": np.maximum.reduceat(kept, starts),
            "gm_bytes": gm * r_e,
            "l2_bytes": l2 * r_e,
            "merge_bytes": merge,
            # with its remap table (balanced shards): whole numbers of bytes, exact in float64
            "stored_bytes": ctx.table_bytes[t_idx] + np.where(bal_e, REMAP_BYTES * ctx.rows[t_idx], 0.0),
            "needs_memory": np.logical_or.reduceat((kept_res != 0) | (kept_stg != 0), starts),
            "fits": np.logical_and.reduceat(a_["fits"], starts),
        },
    )
    e_ = {name: values.tolist() for name, values in batch.entry.items()}
    task_starts = (np.cumsum(n_tasks) - n_tasks).tolist()
    results = []
    for e, (ti, knobs) in enumerate(entries):
        a = int(starts[e])
        k = e_["shards"][e]
        if e_["fits"][e]:
            reason, excess = None, 0.0
        else:
            b = a + k
            reason, excess = _infeasible(
                ctx, ti, knobs, kept_res[a:b], tr_res[a:b], kept_stg[a:b], tr_stg[a:b], a_["acc_room"][a], a_["dim"][a]
            )
        results.append(
            TableCost(
                table=ti,
                knobs=knobs,
                replicas=int(r_e[e]),
                shards=k,
                gm_bytes=e_["gm_bytes"][e],
                l2_bytes=e_["l2_bytes"][e],
                merge_bytes=e_["merge_bytes"][e],
                stored_bytes=e_["stored_bytes"][e],
                max_time_s=e_["max_time_s"][e],
                kept_need=e_["kept_need"][e],
                kept_max=e_["kept_max"][e],
                needs_memory=e_["needs_memory"][e],
                reason=reason,
                excess_bytes=excess,
                batch=batch,
                first_shard=a,
                first_task=task_starts[e],
            )
        )
    return results, batch


def merge_bytes(ctx: ModelContext, t_idx: np.ndarray, k_e: np.ndarray, touched: np.ndarray) -> np.ndarray:
    """Merge bytes of each entry (0 with one shard): each shard writes a partial pooled vector for every query it
    touched (`touched`: the entry's summed shares of queries, shard by shard), and the merge reads them back."""
    return np.where(k_e > 1, 2.0 * float(ctx.batch_size) * ctx.dim[t_idx] * ACC_BYTES * touched, 0.0)


def _entry_sums(starts: np.ndarray, k_e: np.ndarray, *per_shard: np.ndarray) -> list[np.ndarray]:
    """Each entry's sum of each per-shard array, equal to `values[start:start + k].sum()` bit for bit.

    numpy sums a slice pairwise; `np.add.reduceat` adds in another order. Summing the rows of a 2-D array
    of entries with one width takes each row's pairwise order, so one pass per distinct width is exact.
    """
    out = [np.empty(len(starts)) for _ in per_shard]
    for k in np.unique(k_e).tolist():
        sel = np.flatnonzero(k_e == k)
        rows = starts[sel][:, None] + np.arange(k)
        for o, values in zip(out, per_shard, strict=True):
            o[sel] = values[rows].sum(axis=1)
    return out


def _empty_batch() -> CostBatch:
    """The batch of no entries."""
    none = np.zeros(0)
    return CostBatch(none, np.zeros((4, 0)), np.zeros((4, 0)), none.astype(np.intp), none, none, none, {})


def _infeasible(
    ctx: ModelContext,
    t: int,
    knobs: Knobs,
    kept_res: np.ndarray,
    tr_res: np.ndarray,
    kept_stg: np.ndarray,
    tr_stg: np.ndarray,
    acc_room: float,
    dim: float,
) -> tuple[str | None, float]:
    """Why one task of these knobs cannot run on one core of this chip, and by how many bytes it overflows."""
    r, k, _sharding, strategy, hot, _dedup, chunk = knobs
    name = ctx.tables[t].name
    roles, hw, core = ctx.roles, ctx.hw, ctx.core
    if r * k > ctx.n_cores:
        return f"table {name} needs {r * k} cores (replicas x shards), {hw.name} has {ctx.n_cores}", 0.0
    code = STRATEGY_CODE[strategy]
    if code in (L1, L1_UB) and roles.resident is None:
        need = float(np.ceil(ctx.rows[t] / k) * ctx.row_bytes[t])
        return (
            f"table {name} needs {fmt_bytes(need)} of L1 ({strategy}), a core has 0 B on {hw.name} {core.name} cores",
            need,
        )
    if code in (GM_UB, L1_UB) and acc_room < dim * ACC_BYTES:
        c = chunk or ctx.default_chunk_bytes
        over = 2.0 * c + dim * ACC_BYTES - roles.staging.capacity_bytes
        return (
            f"table {name}: two chunks of {fmt_bytes(c)} ({strategy}) leave no room for one pooled vector in "
            f"{fmt_bytes(roles.staging.capacity_bytes)} of {roles.staging.name}; use a smaller chunk_bytes",
            max(over, 0.0),
        )
    worst = 0.0
    reason = None
    slots = [(roles.staging, kept_stg, tr_stg)]
    if roles.resident is not None and not roles.shared:
        slots.append((roles.resident, kept_res, tr_res))
    for memory, kept, tr in slots:
        used = float((kept + tr).max())
        over = used - memory.capacity_bytes
        if over > worst:
            worst = over
            what = "pinned hot rows" if hot and code == GM else f"{strategy} data"
            reason = (
                f"table {name} needs {fmt_bytes(used)} of {memory.name} per task ({what}), a {core.name} core has "
                f"{fmt_bytes(memory.capacity_bytes)}"
            )
    return reason, worst


def kept_slot(ctx: ModelContext) -> int:
    """Which memory holds every byte kept across batches: 0 = the resident memory (a distinct L1), 1 = staging.

    Pinned rows live in the resident memory when the core has one, else in staging; whole tables (L1,
    L1-UB) only in the resident memory. So one memory per chip holds all kept bytes.
    """
    roles = ctx.roles
    return 0 if roles.resident is not None and not roles.shared else 1
