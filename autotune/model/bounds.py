"""A lower bound on the latency of any mapping whose per-table knobs come from the knob grid.

latency >= max(sum over tables of the least total work / cores, the largest least-slowest task,
least GM bytes / chip GM bandwidth, least L2 bytes / chip L2 bandwidth) + launch. Each term bounds one term
of the model's latency from below: the busiest core carries at least the average work and at least the
slowest task; the chip bounds sum bytes. The minima are over every feasible point of `knob_grid` for each
table (costed exactly by the model), so the bound holds for every mapping drawn from that grid: the knob
values the search explores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autotune.model.context import ModelContext
from autotune.model.mapping import SHARDINGS
from autotune.model.strategies import Knobs, shard_arrays

#: Hot rows tried for the GM strategy, and chunk sizes (fractions of the staging memory) for *-UB.
HOT_ROWS_GRID: tuple[int, ...] = (0, 16, 256, 4096, 65536)
CHUNK_FRACTIONS: tuple[float, ...] = (1 / 16, 1 / 8, 1 / 4, 3 / 8)


@dataclass(frozen=True)
class LowerBound:
    latency_s: float
    average_work_s: float  # least total work of all tables / cores
    largest_task_s: float  # the largest, over tables, of the least slowest task
    gm_bound_s: float
    l2_bound_s: float


def counts(n_cores: int) -> tuple[int, ...]:
    """Replica and shard counts of the grid: powers of two below the core count, and the core count."""
    out = []
    c = 1
    while c < n_cores:
        out.append(c)
        c *= 2
    out.append(n_cores)
    return tuple(out)


def knob_grid(ctx: ModelContext, t: int) -> list[Knobs]:
    """Every knob combination of the grid for table `t` (replicas x shards <= cores, shards <= rows)."""
    P = ctx.n_cores
    rows = int(ctx.rows[t])
    cap = ctx.roles.staging.capacity_bytes
    chunks = sorted({max(int(cap * f) // 32 * 32, 32) for f in CHUNK_FRACTIONS})
    out: list[Knobs] = []
    for r in counts(P):
        for k in counts(P):
            if r * k > P or k > rows:
                continue
            for sharding in SHARDINGS if k > 1 else ("contiguous",):
                for dedup in (False, True):
                    for hot in HOT_ROWS_GRID:
                        if hot <= rows:
                            out.append((r, k, sharding, "GM", hot, dedup, None))
                    out.append((r, k, sharding, "L1", 0, dedup, None))
                    for strategy in ("GM-UB", "L1-UB"):
                        for chunk in chunks:
                            out.append((r, k, sharding, strategy, 0, dedup, chunk))
    return out


def lower_bound(ctx: ModelContext) -> LowerBound:
    """The lower bound over the knob grid (see the module docstring)."""
    cached = ctx.__dict__.get("_lower_bound")
    if cached is not None:
        return cached
    work, largest, gm, l2 = [], [], [], []
    for t in range(len(ctx.tables)):
        entries = [(t, knobs) for knobs in knob_grid(ctx, t)]
        a = shard_arrays(ctx, entries)
        starts, r = a["starts"], a["replicas"]
        total = np.add.reduceat(a["time_s"], starts) * r
        slowest = np.maximum.reduceat(a["time_s"], starts)
        fits = np.logical_and.reduceat(a["fits"], starts)
        gmb = np.add.reduceat(a["gm_bytes"], starts) * r
        l2b = np.add.reduceat(a["l2_bytes"], starts) * r
        if not fits.any():  # nothing on the grid runs this table: the bound ignores it rather than lie
            continue
        work.append(total[fits].min())
        largest.append(slowest[fits].min())
        gm.append(gmb[fits].min())
        l2.append(l2b[fits].min())
    hw = ctx.hw
    avg = float(sum(work)) / ctx.n_cores
    big = float(max(largest, default=0.0))
    gmb_s = float(sum(gm)) / hw.gm_bandwidth_bytes_per_s
    l2b_s = float(sum(l2)) / hw.l2_bandwidth_bytes_per_s
    lb = LowerBound(
        latency_s=max(avg, big, gmb_s, l2b_s) + hw.overheads.launch_s,
        average_work_s=avg,
        largest_task_s=big,
        gm_bound_s=gmb_s,
        l2_bound_s=l2b_s,
    )
    ctx.__dict__["_lower_bound"] = lb
    return lb
