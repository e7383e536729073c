"""From a placed mapping to the tasks replay runs: one `PreparedTask` per (table, replica, shard).

Replica r of a table serves queries [r B / R, (r+1) B / R) of the batch (as the model: B / R each); its k
shard tasks each see every one of those queries and keep the look-ups of their rows. The DRAM tables are
built once in the parent (shared with the forked workers, read-only); a worker makes its private copies
(the L1 strategies' shard, pinned hot rows, chunk buffers) in `localise` before any batch is timed.
"""

from __future__ import annotations

import itertools

import numpy as np

from autotune.model.mapping import Mapping
from autotune.replay.kernels import PreparedTask
from autotune.replay.tables import ShardLayout, hot_rows_of_shard, shard_layout
from autotune.workload import WorkloadProfile


def query_ranges(batch_size: int, replicas: int) -> list[tuple[int, int]]:
    """The query slice of each replica."""
    edges = [r * batch_size // replicas for r in range(replicas + 1)]
    return list(itertools.pairwise(edges))


def build_tasks(
    profile: WorkloadProfile,
    mapping: Mapping,
    tables: list[np.ndarray],
    freq: dict[str, np.ndarray],
    batch_size: int,
    default_chunk_bytes: int,
) -> tuple[list[PreparedTask], list[ShardLayout]]:
    """Every task of a mapping whose tables all carry a placement, in mapping order (replica-major)."""
    index = {t.name: i for i, t in enumerate(profile.tables)}
    tasks: list[PreparedTask] = []
    layouts: list[ShardLayout] = [None] * len(profile.tables)  # type: ignore[list-item]
    for tm in mapping.tables:
        ti = index[tm.name]
        table = tables[ti]
        f = freq[tm.name]
        layout = shard_layout(table.shape[0], tm, f)
        layouts[ti] = layout
        shard_src = [
            table[layout.edges[s] : layout.edges[s + 1]] if not layout.balanced else table[layout.members[s]]
            for s in range(tm.shards)
        ]
        hot = tm.hot_rows if tm.strategy == "GM" else 0
        hot_ids = [hot_rows_of_shard(layout.members[s], f, hot) for s in range(tm.shards)]
        chunk = tm.chunk_bytes or default_chunk_bytes
        chunk_rows = max(1, chunk // (table.shape[1] * table.itemsize))
        assert tm.placement is not None
        for r, (q0, q1) in enumerate(query_ranges(batch_size, tm.replicas)):
            for s in range(tm.shards):
                tasks.append(
                    PreparedTask(
                        table=ti,
                        replica=r,
                        shard=s,
                        core=int(tm.placement[r][s]),
                        strategy=tm.strategy,
                        dedup=tm.dedup,
                        q0=q0,
                        q1=q1,
                        shards=tm.shards,
                        lo=int(layout.edges[s]),
                        hi=int(layout.edges[s + 1]),
                        shard_of=layout.shard_of,
                        local=layout.local,
                        src=shard_src[s],
                        hot_ids=hot_ids[s],
                        hot_data=np.empty((0, table.shape[1]), dtype=table.dtype),
                        chunk_rows=chunk_rows,
                        buf=None,
                    )
                )
    return tasks, layouts


def localise(task: PreparedTask) -> None:
    """In the worker, before timing: private copies for on-core data, chunk buffers, first touch of pages."""
    if task.strategy in ("L1", "L1-UB"):
        task.src = np.array(task.src, copy=True)
    if task.hot_ids.size:
        task.hot_data = np.take(task.src, task.hot_ids, axis=0)
    if task.strategy in ("GM-UB", "L1-UB"):
        task.buf = np.zeros((min(task.chunk_rows, max(task.src.shape[0], 1)), task.src.shape[1]), dtype=task.src.dtype)
