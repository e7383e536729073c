"""Real embedding tables for replay: seeded float32 rows, row shards, and each shard's hottest rows.

Values are small integers stored as float32 (-8..8): every pooled sum of fewer than 2^20 rows is then exact
in float32 whatever the summation order, so replay's pooled output must equal the reference bit for bit.

`--scale s` shrinks every table to ceil(rows x s) rows (at least one) for workloads that do not fit this
machine's memory; look-ups are mapped with row' = row x rows' // rows, which keeps every contiguous row
range's share of the look-ups (what row sharding sees) and the hot rows' ranks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from autotune.errors import UserError
from autotune.model.mapping import TableMapping
from autotune.workload import WorkloadProfile

#: Table values are integers in [-VALUE_RANGE, VALUE_RANGE] (exact float32 sums).
VALUE_RANGE = 8
_FILL_ROWS = 1 << 16
#: Balanced sharding places this many hottest rows one by one (LPT); the tail evens out the row counts.
LPT_ROWS = 4096


def scaled_rows(rows: int, scale: float) -> int:
    """Rows of a table after `--scale`."""
    return max(1, math.ceil(rows * scale))


def scale_profile(profile: WorkloadProfile, scale: float) -> WorkloadProfile:
    """The profile the model sees for scaled tables: fewer rows, the same look-up law (distinct ids capped)."""
    if scale == 1.0:
        return profile
    tables = tuple(
        replace(t, rows=scaled_rows(t.rows, scale), distinct=min(t.distinct, scaled_rows(t.rows, scale)))
        for t in profile.tables
    )
    return replace(profile, tables=tables)


def check_scale(scale: float) -> None:
    if not (0.0 < scale <= 1.0) or not math.isfinite(scale):
        raise UserError(f"--scale must be in (0, 1] (the share of each table's rows to materialise), got {scale}")


def make_table(rows: int, dim: int, seed: int, index: int) -> np.ndarray:
    """A (rows, dim) float32 table of small integers, deterministic in (seed, table index), pages touched."""
    rng = np.random.default_rng([seed, index])
    out = np.empty((rows, dim), dtype=np.float32)
    for a in range(0, rows, _FILL_ROWS):
        b = min(rows, a + _FILL_ROWS)
        out[a:b] = rng.integers(-VALUE_RANGE, VALUE_RANGE + 1, size=(b - a, dim), dtype=np.int8)
    return out


@dataclass(frozen=True)
class ShardLayout:
    """How one table's rows split into its mapping's shards.

    Contiguous: shard s holds rows edges[s]..edges[s+1]-1 and a look-up's local row is row - edges[s].
    Balanced: `shard_of[row]` and `local[row]` (the id remap): the hottest rows (up to LPT_ROWS) dealt by
    decreasing frequency, each to the shard with the least look-up mass so far (longest-processing-time
    first), so the shards' masses are even as the model assumes; the light tail then evens out row counts
    (shards may differ in rows: a row hotter than an even share leaves its shard with fewer rows).
    """

    shards: int
    balanced: bool
    edges: np.ndarray  # (k+1,) contiguous row ranges (also set for balanced: unused)
    shard_of: np.ndarray | None  # (rows,) int16, balanced only
    local: np.ndarray | None  # (rows,) int32, balanced only
    members: tuple[np.ndarray, ...]  # global rows of each shard, in local order

    def shard_rows(self, s: int) -> int:
        return len(self.members[s])


def shard_layout(rows: int, tm: TableMapping, freq: np.ndarray) -> ShardLayout:
    """The row layout of table mapping `tm` over a table of `rows` rows with look-up counts `freq`."""
    k = tm.shards
    edges = np.round(np.linspace(0, rows, k + 1)).astype(np.int64)
    if k == 1 or tm.sharding != "balanced":
        members = tuple(np.arange(edges[s], edges[s + 1], dtype=np.int64) for s in range(k))
        return ShardLayout(k, False, edges, None, None, members)
    order = np.argsort(-freq, kind="stable")
    shard_of = np.empty(rows, dtype=np.int16)
    load = np.zeros(k)
    counts = np.zeros(k, dtype=np.int64)
    head = order[: min(int(np.count_nonzero(freq)), LPT_ROWS)]
    for row in head.tolist():  # LPT on the look-up mass of the hottest rows
        s = int(np.argmin(load))
        shard_of[row] = s
        load[s] += freq[row]
        counts[s] += 1
    # the tail (light or unread rows) evens out the row counts: fewest rows first
    rest = order[len(head) :]
    target = -(-(rows) // k)
    room = np.maximum(target - counts, 0)
    shard_of[rest] = np.repeat(np.arange(k), room)[: len(rest)]
    members = tuple(np.flatnonzero(shard_of == s) for s in range(k))
    local = np.empty(rows, dtype=np.int32)
    for m in members:
        local[m] = np.arange(len(m), dtype=np.int32)
    return ShardLayout(k, True, edges, shard_of, local, members)


def hot_rows_of_shard(members: np.ndarray, freq: np.ndarray, hot: int) -> np.ndarray:
    """Local indices (sorted) of the `hot` most frequently read rows of a shard (its pinned set)."""
    if hot <= 0 or len(members) == 0:
        return np.empty(0, dtype=np.int64)
    f = freq[members]
    hot = min(hot, int(np.count_nonzero(f)))
    if hot == 0:
        return np.empty(0, dtype=np.int64)
    top = np.argpartition(-f, hot - 1)[:hot]
    return np.sort(top).astype(np.int64)
