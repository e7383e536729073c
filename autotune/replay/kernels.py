"""The CPU analogue of each single-core strategy, in numpy: gather the task's rows, then sum-pool per query.

On a CPU the memories are caches, so a strategy is a choice of where the rows are read from and how:
- GM: `np.take` of every look-up's row from the DRAM-resident table (shared by all workers), row at a time
  in numpy's C loop; hot-row pinning serves the shard's H hottest rows from a small private copy instead.
- L1: the same gather from the core's private copy of its shard, small enough to stay in its cache.
- GM-UB: the shard streams through a chunk buffer (`chunk_bytes`): per chunk, copy it in, scan every
  look-up id for those that fall in the chunk, gather them from the buffer. Costs the shard's bytes plus a
  scan of the ids per chunk, whatever the skew.
- L1-UB: as GM-UB with the chunks copied from the core's private (cache-resident) copy of its shard.
- dedup: gather each distinct row once (`np.unique`), then expand to the look-ups from the small array.
A sharded task first routes: it scans the ids of its replica's queries and keeps those of its rows (through
the id remap for balanced shards), and lays its bags out by length (queries with one kept look-up, then two,
...): its bags have uneven lengths, and in that order every run of equal-length bags sums as one block, as an
unsharded task's bags do. Pooling sums each bag (`segment_sum`) and writes it to its query.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autotune.replay.batches import TableBatch


@dataclass
class PreparedTask:
    """One (table, replica, shard) task with everything it reads, set up before the timed batches."""

    table: int
    replica: int
    shard: int
    core: int
    strategy: str
    dedup: bool
    q0: int  # first query of its replica's slice of the batch
    q1: int  # one past the last
    shards: int
    lo: int  # contiguous shard: first global row
    hi: int  # one past the last
    shard_of: np.ndarray | None  # balanced remap: shard of every global row
    local: np.ndarray | None  # balanced remap: local row of every global row
    src: np.ndarray  # the shard's rows (DRAM table view, or the core's private copy for L1 / L1-UB)
    hot_ids: np.ndarray  # sorted local rows pinned on the core (GM with hot_rows)
    hot_data: np.ndarray  # their rows (private copy)
    chunk_rows: int  # *-UB: rows per streamed chunk
    buf: np.ndarray | None  # *-UB: the chunk buffer


def segment_sum(rows: np.ndarray, offsets: np.ndarray, out: np.ndarray, order: np.ndarray | None = None) -> None:
    """out[q] = sum of rows[offsets[q]:offsets[q+1]] (zero for empty bags); with `order`, bag j is query order[j].

    Bags of one length L are summed as an (m, L, dim) block (`sum(axis=1)`): numpy's `add.reduceat` and
    `cumsum` along rows are 3-15x slower on rows of 16-128 floats (measured). With `order` (a routed task's
    bags, laid out by nondecreasing length) each length is one contiguous block, summed in place and written
    to its queries; without it, bags of mixed lengths are gathered per length first.
    """
    lengths = np.diff(offsets)
    if order is not None:
        _sorted_segment_sum(rows, lengths, order, out)
        return
    kinds = np.unique(lengths)
    if kinds.size == 1 and rows.shape[0] == lengths.size * int(kinds[0]) and kinds[0] > 0:
        np.sum(rows.reshape(lengths.size, int(kinds[0]), rows.shape[1]), axis=1, out=out)
        return
    for L in kinds.tolist():
        qs = np.flatnonzero(lengths == L)
        if L == 0:
            out[qs] = 0.0
        elif L == 1:
            out[qs] = np.take(rows, offsets[qs], axis=0)
        else:
            idx = offsets[qs][:, None] + np.arange(L)
            out[qs] = np.take(rows, idx, axis=0).sum(axis=1)


def _sorted_segment_sum(rows: np.ndarray, lengths: np.ndarray, order: np.ndarray, out: np.ndarray) -> None:
    """`segment_sum` of bags laid out by nondecreasing length, bag j pooled into out[order[j]]."""
    edges = np.flatnonzero(np.diff(lengths)) + 1  # where the length changes
    q0 = r0 = 0
    for q1 in [*edges.tolist(), lengths.size]:
        L = int(lengths[q0])
        qs = order[q0:q1]
        if L == 0:
            out[qs] = 0.0
        else:
            r1 = r0 + (q1 - q0) * L
            out[qs] = rows[r0:r1].reshape(q1 - q0, L, rows.shape[1]).sum(axis=1)
            r0 = r1
        q0 = q1


def route(task: PreparedTask, batch: TableBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The task's look-ups as (local rows, bag offsets, bag order): bag j is query order[j] of its replica.

    Unsharded: every look-up in query order (order None). Sharded: the kept look-ups, bags laid out by
    nondecreasing length (a stable counting placement, linear in the ids).
    """
    a, b = int(batch.offsets[task.q0]), int(batch.offsets[task.q1])
    ids = batch.rows[a:b]
    if task.shards == 1:
        return ids, batch.offsets[task.q0 : task.q1 + 1] - a, None
    if task.shard_of is not None:
        mask = task.shard_of[ids] == task.shard
        local = task.local[ids[mask]]  # type: ignore[index]
    else:
        mask = (ids >= task.lo) & (ids < task.hi)
        local = ids[mask] - task.lo
    q = batch.qidx[a:b][mask] - task.q0
    counts = np.bincount(q, minlength=task.q1 - task.q0)
    order = np.argsort(counts, kind="stable")  # queries by their number of kept look-ups
    first = np.zeros(len(counts) + 1, dtype=np.int64)  # where each query's look-ups start, in query order
    np.cumsum(counts, out=first[1:])
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)  # bag boundaries in the new layout
    np.cumsum(counts[order], out=offsets[1:])
    start = np.empty(len(counts), dtype=np.int64)
    start[order] = offsets[:-1]  # where each query's bag starts in the new layout
    dest = start[q] + (np.arange(q.size) - first[q])
    placed = np.empty_like(local)
    placed[dest] = local
    return placed, offsets, order


def gather_rows(task: PreparedTask, ids: np.ndarray) -> np.ndarray:
    """The rows of `ids` (local to the shard) by the task's strategy."""
    if task.strategy in ("GM-UB", "L1-UB"):
        return _streamed(task, ids)
    if task.hot_ids.size:
        pos = np.searchsorted(task.hot_ids, ids)
        np.minimum(pos, task.hot_ids.size - 1, out=pos)
        hit = task.hot_ids[pos] == ids
        g = np.empty((ids.size, task.src.shape[1]), dtype=task.src.dtype)
        g[hit] = np.take(task.hot_data, pos[hit], axis=0)
        miss = ~hit
        g[miss] = np.take(task.src, ids[miss], axis=0)
        return g
    return np.take(task.src, ids, axis=0)


def _streamed(task: PreparedTask, ids: np.ndarray) -> np.ndarray:
    src, buf, step = task.src, task.buf, task.chunk_rows
    g = np.empty((ids.size, src.shape[1]), dtype=src.dtype)
    for c0 in range(0, src.shape[0], step):
        c1 = min(src.shape[0], c0 + step)
        chunk = buf[: c1 - c0]  # type: ignore[index]
        np.copyto(chunk, src[c0:c1])  # the chunk streams into the staging buffer
        sel = np.flatnonzero((ids >= c0) & (ids < c1))  # every id is scanned for each chunk
        if sel.size:
            g[sel] = np.take(chunk, ids[sel] - c0, axis=0)
    return g


def run_task(task: PreparedTask, batch: TableBatch, out: np.ndarray) -> None:
    """Run one task on one batch: route, gather (de-duplicated if asked), pool into `out` (its queries x dim)."""
    ids, offsets, order = route(task, batch)
    if task.dedup and ids.size:
        uniq, inv = np.unique(ids, return_inverse=True)
        rows = np.take(gather_rows(task, uniq), inv, axis=0)
    else:
        rows = gather_rows(task, ids)
    segment_sum(rows, offsets, out, order)
