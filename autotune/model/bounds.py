"""A lower bound on the latency of any mapping whose per-table knobs come from the knob grid.

latency >= max(sum over tables of the least total work / cores, the largest least-slowest task,
least GM bytes / chip GM bandwidth, least L2 bytes / chip L2 bandwidth) + launch. Each term bounds one term
of the model's latency from below: the busiest core carries at least the average work and at least the
slowest task; the chip bounds sum bytes. The minima are over every feasible point of `knob_grid` for each
table (costed exactly by the model), so the bound holds for every mapping drawn from that grid: the knob
values the search explores. The total work is also bounded with on-chip bytes priced (a Lagrangian bound,
`_memory_priced_work`): the cheapest configurations keep hot rows or whole tables on-chip, and the chip's
local memories cannot hold every table's cheapest one at once. Work and slowest task are then tied together
(`_span_constrained_work`): a mapping whose busiest core takes M runs no task longer than M, so every table
uses a configuration whose slowest task is at most M, and M >= the least total work of such configurations /
cores; the least M that satisfies this bounds every mapping.
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
    span_work_s: float  # the least busiest-core time M with M >= least work of configurations no slower than M / cores


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
    roles = ctx.roles
    separate = roles.resident is not None and not roles.shared  # else only staging bytes are capped
    capacity = ctx.n_cores * (roles.staging.capacity_bytes + (roles.resident.capacity_bytes if separate else 0))
    work, largest, gm, l2 = [], [], [], []
    points: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # per table: work, kept bytes, slowest task
    for t in range(len(ctx.tables)):
        entries = [(t, knobs) for knobs in knob_grid(ctx, t)]
        a = shard_arrays(ctx, entries)
        starts, r = a["starts"], a["replicas"]
        total = np.add.reduceat(a["time_s"], starts) * r
        slowest = np.maximum.reduceat(a["time_s"], starts)
        fits = np.logical_and.reduceat(a["fits"], starts)
        gmb = np.add.reduceat(a["gm_bytes"], starts) * r
        l2b = np.add.reduceat(a["l2_bytes"], starts) * r
        kept = a["kept_stg"] + (a["kept_res"] if separate else 0.0)
        keptb = np.add.reduceat(kept, starts) * r
        if not fits.any():  # nothing on the grid runs this table: the bound ignores it rather than lie
            continue
        work.append(total[fits].min())
        largest.append(slowest[fits].min())
        gm.append(gmb[fits].min())
        l2.append(l2b[fits].min())
        points.append((total[fits], keptb[fits], slowest[fits]))
    total_work = max(float(sum(work)), _memory_priced_work(points, capacity))
    hw = ctx.hw
    avg = total_work / ctx.n_cores
    big = float(max(largest, default=0.0))
    span = _span_constrained_work(points, capacity, ctx.n_cores)
    gmb_s = float(sum(gm)) / hw.gm_bandwidth_bytes_per_s
    l2b_s = float(sum(l2)) / hw.l2_bandwidth_bytes_per_s
    lb = LowerBound(
        latency_s=max(avg, big, span, gmb_s, l2b_s) + hw.overheads.launch_s,
        average_work_s=avg,
        largest_task_s=big,
        gm_bound_s=gmb_s,
        l2_bound_s=l2b_s,
        span_work_s=span,
    )
    ctx.__dict__["_lower_bound"] = lb
    return lb


#: Prices of on-chip bytes (seconds per byte) tried by the Lagrangian bound; any price gives a valid bound.
_PRICES = np.concatenate([[0.0], np.geomspace(1e-18, 1e-3, 241)])


def _memory_priced_work(points: list[tuple[np.ndarray, np.ndarray, np.ndarray]], capacity: float) -> float:
    """A lower bound on the total work of any mapping whose kept on-chip bytes fit the chip's local memories.

    Cheap configurations often keep bytes on-chip (hot rows, resident tables), and every table cannot have its
    cheapest one at once. For any price p >= 0 of a byte, weak duality of the relaxed problem
    min sum_t work_t  s.t.  sum_t bytes_t <= capacity  gives  sum_t min_j (work_tj + p bytes_tj) - p capacity;
    the best of a grid of prices is taken (p = 0 is the unpriced bound). Summing per-core capacities into one
    chip-wide budget only relaxes the per-core limits, so the bound stays valid.
    """
    return _priced_work(points, capacity, np.inf)


def _priced_work(points: list[tuple[np.ndarray, np.ndarray, np.ndarray]], capacity: float, span_limit: float) -> float:
    """The Lagrangian bound on total work over the configurations whose slowest task is at most `span_limit`
    (inf when some table has none)."""
    if not points:
        return 0.0
    acc = np.zeros(len(_PRICES))
    for w, b, span in points:
        ok = span <= span_limit
        if not ok.any():
            return np.inf
        acc += (w[ok][None, :] + _PRICES[:, None] * b[ok][None, :]).min(axis=1)
    return float((acc - _PRICES * capacity).max())


def _span_constrained_work(
    points: list[tuple[np.ndarray, np.ndarray, np.ndarray]], capacity: float, cores: int
) -> float:
    """The least M such that M >= (least priced work of the configurations with slowest task <= M) / cores.

    A mapping whose busiest core takes M has no task longer than M and at least that total work, spread over
    `cores`: its M satisfies the condition, so the least M that does bounds it. G(M) = work(M) / cores does
    not grow with M and only changes at the tables' slowest-task values c_i, so the answer is
    min_i max(c_i, G(c_i)), found by bisection for the first c_i with G(c_i) <= c_i."""
    if not points:
        return 0.0
    floor = max(float(span.min()) for _, _, span in points)
    cands = np.unique(np.concatenate([span for _, _, span in points]))
    cands = cands[cands >= floor]

    def g(i: int) -> float:
        return _priced_work(points, capacity, float(cands[i])) / cores

    lo, hi = 0, len(cands) - 1
    if g(hi) > cands[hi]:
        return g(hi)
    while lo < hi:  # first index whose G is at most its candidate
        mid = (lo + hi) // 2
        if g(mid) <= cands[mid]:
            hi = mid
        else:
            lo = mid + 1
    best = float(cands[lo])
    if lo > 0:
        best = min(best, g(lo - 1))
    return best
