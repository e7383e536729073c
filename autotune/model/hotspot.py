"""The memory hot-spot term: many cores reading the same hot rows through global memory meet at one L2 slice.

Physics. A chip interleaves global-memory addresses over its L2 slices (each in front of a memory channel) in
granules of `interleave_bytes`: every request for an address, hit or miss, is served by the one slice that
owns it, at that slice's share of the chip's L2 bandwidth, `l2_bandwidth_bytes_per_s / l2_slices`. The tasks
of one table run at the same time on their cores (each core runs its tables in the same order, and a per-table
operator such as the default gather runs on every core at once), so every read of the table's hottest granule
goes through one slice, however many cores issue it: no task of the table finishes its fetches before
`busiest granule bytes / slice bandwidth`. Hot rows kept contiguous (no permutation) share granules, so the
busiest granule carries the mass of every row in it; scattered hot rows each sit in their own granule.

What loads a slice: the GM strategy's row fetches that miss the pinned rows (L2 hits included: the slice
serves them). Not: tables resident in L1, pinned rows (on-chip), *-UB streams (sequential chunks: each line is
read once per chunk and consecutive granules go to different slices), reloads. With de-duplication, or on a
core whose private cache keeps the lines it read (`caches_gm_reads`: a CPU's L1/L2, a GPU SM's L1), a task
reads each distinct row once per batch: r (1 - exp(-B P s / r)) reads of a row of share s over r replicas
(Poisson look-ups), instead of B P s.

Where rows sit: the profile lists the top-K hot ids with their counts; the row map (`identity`: the id is the
row; `hash`: FNV-1a of the id modulo the rows) gives their rows, hence their byte offsets (row x row bytes,
the table starting on a granule boundary). Under `dense` (row order unknown from the top list) and under a
balanced remap (which reorders rows to spread the load), each hot row is taken to sit alone at the start of
its own granule: the least a row can load a slice, so the term never overstates there.

Pure functions of numbers; `ModelContext.hot_spot_cycles` caches them per (table, knobs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autotune.workload import TableProfile


def hot_rows(tp: TableProfile) -> tuple[np.ndarray, np.ndarray | None]:
    """(share of the table's look-ups of each listed hot id, hottest first; the row of each, or None when the row
    map does not tell)."""
    if not tp.hot_ids or tp.accesses <= 0:
        return np.zeros(0), None
    share = np.array([c for _, c in tp.hot_ids], dtype=float) / tp.accesses
    ids = [i for i, _ in tp.hot_ids]
    row_map = tp.extra.get("row_map")
    rows: np.ndarray | None = None
    if row_map == "identity":
        try:
            rows = np.array([int(i) for i in ids], dtype=np.int64)
        except ValueError:
            rows = None
    elif row_map == "hash":
        from analytics.rowmap import fnv1a64  # the analyzer's own row map, so rows match counts.parquet

        rows = (fnv1a64(ids) % np.uint64(tp.rows)).astype(np.int64)
    if rows is not None and ((rows < 0) | (rows >= tp.rows)).any():
        rows = None
    return share, rows


def row_reads(share: np.ndarray, lookups: float, replicas: int, distinct_per_task: bool) -> np.ndarray:
    """Reads per batch of each hot row through global memory, over all replicas of its shard.

    `lookups` = B x pooling, the table's look-ups per batch. Without de-duplication every look-up of a row is a
    read (B P s); with it (or a private cache that keeps lines) each of the r tasks reads the row once if any of
    its B P s / r look-ups fall on it."""
    x = lookups * share
    if not distinct_per_task:
        return x
    return replicas * -np.expm1(-x / replicas)


@dataclass(frozen=True)
class HotGeometry:
    """Where a table's listed hot rows sit, for one shard count: the granules their bytes fall in, by shard.

    A row of `row_bytes` at byte `offset` covers granules offset // G .. (offset + row_bytes - 1) // G; each
    read of it moves, in each of them, the row's bytes inside it. A (shard, granule) cell's load is the sum
    over its rows of reads x those bytes; a granule at a shard boundary is counted per shard (a lower figure).
    """

    piece_row: np.ndarray  # listed row of each (row, granule) piece
    piece_bytes: np.ndarray  # bytes of that row inside that granule
    piece_cell: np.ndarray  # (shard, granule) cell of each piece
    cell_shard: np.ndarray  # shard of each cell
    within: np.ndarray  # each listed row's rank among its shard's listed rows (0 = the shard's hottest)
    shards: int


def hot_geometry(
    rows: np.ndarray | None, listed: int, table_rows: int, row_bytes: int, granule: int, shards: int, contiguous: bool
) -> HotGeometry:
    """The granules of the `listed` hot rows (hottest first) of a table cut into `shards` shards.

    Positions: known rows (contiguous shards: row r in shard r // ceil(rows / k)), or each row alone at the
    start of its own granule, rank j in shard j mod k (hot rows spread over the shards, as the model's pinning
    assumes)."""
    if rows is not None and contiguous:
        offsets = rows.astype(np.int64) * row_bytes
        shard = rows.astype(np.int64) // -(-table_rows // shards)
    else:
        slot = -(-row_bytes // granule) * granule
        offsets = np.arange(listed, dtype=np.int64) * slot
        shard = np.arange(listed, dtype=np.int64) % shards
    first = offsets // granule
    count = (offsets + row_bytes - 1) // granule - first + 1
    row = np.repeat(np.arange(listed), count)
    g = first[row] + (np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count))
    piece_bytes = np.minimum((g + 1) * granule, offsets[row] + row_bytes) - np.maximum(g * granule, offsets[row])
    span = int(g.max()) + 1 if len(g) else 1
    cells, piece_cell = np.unique(shard[row] * span + g, return_inverse=True)
    order = np.argsort(shard, kind="stable")  # within a shard, hottest first (the list is hottest first)
    ranked = shard[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]]) if listed else np.zeros(0, dtype=np.intp)
    within = np.empty(listed, dtype=np.int64)
    within[order] = np.arange(listed) - np.repeat(starts, np.diff(np.r_[starts, listed]))
    return HotGeometry(row, piece_bytes.astype(float), piece_cell, cells // span, within, shards)


def shard_hot_bytes(geo: HotGeometry, reads: np.ndarray, pinned_per_shard: int) -> np.ndarray:
    """(shards,) for each shard, the most bytes per batch that one granule of its rows sends through its slice.

    Each shard pins its own `pinned_per_shard` hottest listed rows: their reads stay on-chip."""
    out = np.zeros(geo.shards)
    if len(geo.piece_row) == 0:
        return out
    unpinned = np.where(geo.within < pinned_per_shard, 0.0, reads)
    load = np.bincount(geo.piece_cell, weights=unpinned[geo.piece_row] * geo.piece_bytes, minlength=len(geo.cell_shard))
    np.maximum.at(out, geo.cell_shard, load)
    return out
