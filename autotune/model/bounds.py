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

The combined term (`_combined`) adds what the others leave out: the merge of sharded tables (its bytes are each
table's own, so it is priced per configuration, and its fixed sync is paid only if some table's configuration
has a merge), and the chip bandwidth terms, taken together with the work: the busiest core, the GM time and the
L2 time are each at most their maximum, so any convex combination of them is too, and each is a sum over tables.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autotune.model.context import ModelContext
from autotune.model.mapping import SHARDINGS
from autotune.model.strategies import Knobs, merge_bytes, shard_arrays

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
    combined_s: float  # as span_work_s for weighted work, GM and L2 time, plus each configuration's merge (+ sync)


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


@dataclass(frozen=True)
class GridFigures:
    """Per grid point of one table (in `knob_grid` order), the figures the bound and the table descent compare."""

    knobs: list[Knobs]
    work: np.ndarray  # time of all its tasks
    slowest: np.ndarray  # time of its slowest task
    gm: np.ndarray  # GM bytes per batch
    l2: np.ndarray  # L2 bytes per batch
    merge: np.ndarray  # merge bytes per batch (0 with one shard)
    kept: np.ndarray  # on-chip bytes kept across batches by all its tasks (the capped memories)
    kept_max: np.ndarray  # ... by its largest task
    fits: np.ndarray  # every task fits a core on its own


def _separate(ctx: ModelContext) -> bool:
    """Whether the resident memory is capped apart from staging (else only staging bytes are)."""
    return ctx.roles.resident is not None and not ctx.roles.shared


def grid_figures(ctx: ModelContext, t: int) -> GridFigures:
    """Every grid point of table t costed by the model in one vectorised pass."""
    grid = knob_grid(ctx, t)
    a = shard_arrays(ctx, [(t, knobs) for knobs in grid])
    starts, r = a["starts"], a["replicas"]
    kept = a["kept_stg"] + (a["kept_res"] if _separate(ctx) else 0.0)
    touched = np.add.reduceat(a["touched"], starts)
    return GridFigures(
        knobs=grid,
        work=np.add.reduceat(a["time_s"], starts) * r,
        slowest=np.maximum.reduceat(a["time_s"], starts),
        gm=np.add.reduceat(a["gm_bytes"], starts) * r,
        l2=np.add.reduceat(a["l2_bytes"], starts) * r,
        merge=merge_bytes(ctx, np.full(len(starts), t, dtype=np.intp), a["shards"], touched),
        kept=np.add.reduceat(kept, starts) * r,
        kept_max=np.maximum.reduceat(kept, starts),
        fits=np.logical_and.reduceat(a["fits"], starts),
    )


def lower_bound(ctx: ModelContext) -> LowerBound:
    """The lower bound over the knob grid (see the module docstring)."""
    cached = ctx.__dict__.get("_lower_bound")
    if cached is not None:
        return cached
    roles = ctx.roles
    separate = _separate(ctx)
    capacity = ctx.n_cores * (roles.staging.capacity_bytes + (roles.resident.capacity_bytes if separate else 0))
    work, largest, gm, l2 = [], [], [], []
    points: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # per table: work, kept bytes, slowest task
    configs: list[_Configs] = []
    for t in range(len(ctx.tables)):
        f = grid_figures(ctx, t)
        fits = f.fits
        if not fits.any():  # nothing on the grid runs this table: the bound ignores it rather than lie
            continue
        work.append(f.work[fits].min())
        largest.append(f.slowest[fits].min())
        gm.append(f.gm[fits].min())
        l2.append(f.l2[fits].min())
        points.append((f.work[fits], f.kept[fits], f.slowest[fits]))
        merge_s = f.merge[fits] / ctx.merge_bytes_per_s
        configs.append(_Configs(f.work[fits], f.gm[fits], f.l2[fits], merge_s, f.kept[fits], f.slowest[fits]))
    total_work = max(float(sum(work)), _memory_priced_work(points, capacity))
    hw = ctx.hw
    avg = total_work / ctx.n_cores
    big = float(max(largest, default=0.0))
    span = _span_constrained_work(points, capacity, ctx.n_cores)
    gmb_s = float(sum(gm)) / hw.gm_bandwidth_bytes_per_s
    l2b_s = float(sum(l2)) / hw.l2_bandwidth_bytes_per_s
    combined = _combined(configs, capacity, ctx.n_cores, hw.gm_bandwidth_bytes_per_s, hw.l2_bandwidth_bytes_per_s)
    combined = min(
        combined + hw.overheads.merge_sync_s,
        _combined(
            [c.without_merge() for c in configs],
            capacity,
            ctx.n_cores,
            hw.gm_bandwidth_bytes_per_s,
            hw.l2_bandwidth_bytes_per_s,
        ),
    )
    combined *= 1 - _ROUNDING
    lb = LowerBound(
        latency_s=max(avg, big, span, gmb_s, l2b_s, combined) + hw.overheads.launch_s,
        average_work_s=avg,
        largest_task_s=big,
        gm_bound_s=gmb_s,
        l2_bound_s=l2b_s,
        span_work_s=span,
        combined_s=combined,
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
    `cores`: its M satisfies the condition, so the least M that does bounds it (`_span_bound`)."""
    return _span_bound([(w / cores, b, span) for w, b, span in points], capacity)


def _span_bound(
    points: list[tuple[np.ndarray, np.ndarray, np.ndarray]], capacity: float, prices: np.ndarray = _PRICES
) -> float:
    """min over M of max(M, G(M)), G(M) = the Lagrangian bound on the summed cost of the configurations whose
    slowest task is at most M (points: per table cost, kept bytes, slowest task), over `prices` per kept byte.

    G does not grow with M and only changes at the tables' slowest-task values c_i, so the answer is
    min_i max(c_i, G(c_i)), found by bisection for the first c_i with G(c_i) <= c_i. Each table's priced costs
    are sorted by slowest task and their running minima kept (prices x configurations), so G(M) costs one
    look-up per table and price."""
    if not points:
        return 0.0
    tables = []
    for cost, kept, span in points:
        order = np.argsort(span, kind="stable")
        priced = cost[order][None, :] + prices[:, None] * kept[order][None, :]
        tables.append((span[order], np.minimum.accumulate(priced, axis=1)))
    floor = max(float(span[0]) for span, _ in tables)
    cands = np.unique(np.concatenate([span for span, _ in tables]))
    cands = cands[cands >= floor]

    def g(i: int) -> float:
        acc = -prices * capacity
        for span, best in tables:
            acc = acc + best[:, np.searchsorted(span, cands[i], side="right") - 1]
        return float(acc.max())

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


@dataclass(frozen=True)
class _Configs:
    """Every feasible grid configuration of one table: total work, GM and L2 bytes, merge seconds (without the
    sync), kept on-chip bytes, slowest task."""

    work: np.ndarray
    gm: np.ndarray
    l2: np.ndarray
    merge_s: np.ndarray
    kept: np.ndarray
    slowest: np.ndarray

    def without_merge(self) -> _Configs:
        """Only the configurations with nothing to merge (one shard)."""
        ok = self.merge_s == 0
        return _Configs(*(getattr(self, f)[ok] for f in ("work", "gm", "l2", "merge_s", "kept", "slowest")))


#: Weights (work, GM, L2) of the convex combinations of the busiest core, GM and L2 time that `_combined` starts
#: from (steps of 0.2), and the steps by which it then moves weight between two of them while that helps.
_WEIGHTS = tuple((a / 5, b / 5, (5 - a - b) / 5) for a in range(6) for b in range(6 - a))
_WEIGHT_STEPS = (0.1, 0.05, 0.025)
#: Every fourth price of `_PRICES` (steps of 78%): the combined term evaluates many weights.
_COMBINED_PRICES = slice(None, None, 4)
#: Relative margin taken off the combined term: it sums per-table figures in another order than the model does.
_ROUNDING = 1e-12


def _combined(configs: list[_Configs], capacity: float, cores: int, gm_bw: float, l2_bw: float) -> float:
    """A lower bound on max(busiest core, GM time, L2 time) + merge bytes / merge rate (sync excluded).

    For weights w >= 0 summing to 1, max(T, g, l) >= w1 T + w2 g + w3 l >= w1 work / cores + w2 g + w3 l, and
    max(T, X) + merge >= max(T, X + merge); every term of X + merge is a sum over tables of the configuration
    each uses, and T is at least each configuration's slowest task: `_span_bound` of the per-table cost
    w1 work / cores + w2 gm / gm_bw + w3 l2 / l2_bw + merge. The best weights of a grid are taken.
    A table with no configuration left makes the bound infinite (that family of mappings is empty)."""
    if any(len(c.work) == 0 for c in configs):
        return np.inf

    def value(w: tuple[float, float, float]) -> float:
        pts = [
            (w[0] * c.work / cores + w[1] * c.gm / gm_bw + w[2] * c.l2 / l2_bw + c.merge_s, c.kept, c.slowest)
            for c in configs
        ]
        return _span_bound(pts, capacity, _PRICES[_COMBINED_PRICES])

    scored = {w: value(w) for w in _WEIGHTS}
    w = max(scored, key=scored.__getitem__)
    for step in _WEIGHT_STEPS:  # move `step` of weight from one term to another while the bound rises
        improved = True
        while improved:
            improved = False
            for i, j in ((0, 1), (1, 0), (0, 2), (2, 0), (1, 2), (2, 1)):
                if w[i] < step - 1e-9:
                    continue
                cand = list(w)
                cand[i] -= step
                cand[j] += step
                v = scored.get(tuple(cand)) or value(tuple(cand))
                scored[tuple(cand)] = v
                if v > scored[w]:
                    w, improved = tuple(cand), True
    return max(scored.values())
