"""The mappings to beat, each a `Mapping` the same model evaluates (DESIGN sections 5 and 8).

- default-gather: every table GM, the batch split evenly over all cores (what a default compiler's gather
  does: every core looks up its slice of the batch in every table).
- table-wise: each table whole on one core, round-robin in profile order.
- row-wise: every table split evenly by rows over all cores (contiguous ranges).
- greedy-size / greedy-lookups / greedy-dim-pooling-logrows: each table whole on one core, longest-
  processing-time bin packing on a cost key (DreamShard / NeuroShard's greedy baselines): tables in
  decreasing key order, each to the core with the smallest summed key. GM keeps nothing on-chip, so the
  memory caps of those papers (device memory) never bind here.
- hugectr: HugeCTR's hybrid embedding: rows whose count over `iterations` batches reaches
  batch x iterations x sqrt(2 p_dup_max / (M (M - 1))) (M = batch per core) are frequent and served from
  on-chip memory; every table is sharded by rows over all cores. The frequent rows of a shard are pinned on
  that shard's core (hot_rows = frequent / shards), within the memory each core has.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable

import numpy as np

from autotune.model.context import ModelContext
from autotune.model.mapping import Mapping, TableMapping, profile_hash
from autotune.workload import TableProfile

BASELINES: tuple[str, ...] = (
    "default-gather",
    "table-wise",
    "row-wise",
    "greedy-size",
    "greedy-lookups",
    "greedy-dim-pooling-logrows",
    "hugectr",
)
#: HugeCTR hybrid embedding: batches over which categories are counted, and the duplicate probability bound.
HUGECTR_ITERATIONS = 20
HUGECTR_P_DUP_MAX = 0.01


def _mapping(ctx: ModelContext, name: str, tables: list[TableMapping]) -> Mapping:
    return Mapping(
        tables=tuple(tables),
        name=name,
        hardware=ctx.hw.name,
        batch_size=ctx.batch_size,
        profile={"name": ctx.profile.name, "hash": _hash(ctx)},
    )


def _hash(ctx: ModelContext) -> str:
    key = "profile_hash"
    got = ctx.__dict__.get(key)
    if got is None:
        got = profile_hash(ctx.profile)
        ctx.__dict__[key] = got
    return got


def default_gather(ctx: ModelContext) -> Mapping:
    P = ctx.n_cores
    return _mapping(ctx, "default-gather", [TableMapping(t.name, replicas=P) for t in ctx.tables])


def table_wise(ctx: ModelContext) -> Mapping:
    P = ctx.n_cores
    return _mapping(ctx, "table-wise", [TableMapping(t.name, placement=((i % P,),)) for i, t in enumerate(ctx.tables)])


def row_wise(ctx: ModelContext) -> Mapping:
    P = ctx.n_cores
    return _mapping(ctx, "row-wise", [TableMapping(t.name, shards=min(P, t.rows)) for t in ctx.tables])


def _key_size(t: TableProfile) -> float:
    return float(t.table_bytes)


def _key_lookups(t: TableProfile) -> float:
    return t.pooling_mean


def _key_dim_pooling_logrows(t: TableProfile) -> float:
    return t.dim * t.pooling_mean * math.log10(t.rows)


GREEDY_KEYS: dict[str, Callable[[TableProfile], float]] = {
    "greedy-size": _key_size,
    "greedy-lookups": _key_lookups,
    "greedy-dim-pooling-logrows": _key_dim_pooling_logrows,
}


def greedy(ctx: ModelContext, name: str) -> Mapping:
    """LPT bin packing of whole tables on the key named `name` (one of GREEDY_KEYS)."""
    key = GREEDY_KEYS[name]
    P = ctx.n_cores
    order = sorted(range(len(ctx.tables)), key=lambda i: (-key(ctx.tables[i]), i))
    heap = [(0.0, c) for c in range(P)]
    core_of = {}
    for i in order:
        load, core = heap[0]
        heapq.heapreplace(heap, (load + key(ctx.tables[i]), core))
        core_of[i] = core
    return _mapping(ctx, name, [TableMapping(t.name, placement=((core_of[i],),)) for i, t in enumerate(ctx.tables)])


def frequent_rows(t: TableProfile, batch_size: int, n_cores: int) -> int:
    """HugeCTR's frequent categories of a table: rows whose count over the counting window reaches the threshold.

    Count of the rank-i row over `HUGECTR_ITERATIONS` batches = iterations x batch x pooling x p_i; the
    threshold is batch x iterations x sqrt(2 p_dup_max / (M (M - 1))), so a row is frequent when
    p_i >= sqrt(2 p_dup_max / (M (M - 1))) / pooling. p_i is read off the rank curve's slope.
    """
    M = batch_size / n_cores
    if M <= 1 or t.pooling_mean <= 0:
        return 0
    p_thr = math.sqrt(2 * HUGECTR_P_DUP_MAX / (M * (M - 1))) / t.pooling_mean
    h = np.array([p[0] for p in t.rank_curve], dtype=float)
    s = np.array([p[1] for p in t.rank_curve], dtype=float)
    slope = np.diff(s) / np.diff(h)
    above = np.nonzero(slope >= p_thr)[0]
    return int(h[above[-1] + 1]) if above.size else 0


def hugectr(ctx: ModelContext) -> Mapping:
    P = ctx.n_cores
    roles = ctx.roles
    pin = roles.resident if roles.resident is not None else roles.staging
    shards = [min(P, t.rows) for t in ctx.tables]
    hot = [math.ceil(frequent_rows(t, ctx.batch_size, P) / k) for t, k in zip(ctx.tables, shards, strict=True)]
    rb = ctx.row_bytes_ub
    # Room for pinned rows on one core: every core holds one shard of every table. Keep the row buffers.
    work = float(np.max(2 * rb + ctx.dim * 4)) if pin is roles.staging else 0.0
    budget = max(pin.capacity_bytes - work, 0.0)
    if pin.resident:
        need = float(sum(h * b for h, b in zip(hot, rb, strict=True)))
        scale = min(1.0, budget / need) if need > 0 else 1.0
        hot = [int(h * scale) for h in hot]
    else:
        hot = [min(h, int(budget // b)) for h, b in zip(hot, rb, strict=True)]
    return _mapping(
        ctx,
        "hugectr",
        [TableMapping(t.name, shards=k, hot_rows=h) for t, k, h in zip(ctx.tables, shards, hot, strict=True)],
    )


def baseline(ctx: ModelContext, name: str) -> Mapping:
    """The baseline mapping called `name` (one of BASELINES)."""
    if name == "default-gather":
        return default_gather(ctx)
    if name == "table-wise":
        return table_wise(ctx)
    if name == "row-wise":
        return row_wise(ctx)
    if name in GREEDY_KEYS:
        return greedy(ctx, name)
    if name == "hugectr":
        return hugectr(ctx)
    raise ValueError(f"unknown baseline {name!r}; baselines: {', '.join(BASELINES)}")


def all_baselines(ctx: ModelContext) -> dict[str, Mapping]:
    """Every baseline, by name, in BASELINES order."""
    return {name: baseline(ctx, name) for name in BASELINES}
