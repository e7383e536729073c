"""Predict the latency of one batch: `predict` (with the breakdown) and `score` / `evaluate_latency` (fast path).

latency = max(busiest core, chip GM bandwidth bound, chip L2 bandwidth bound) + merge + launch, where a core's
time is the sum of its tasks (each with its per-task overhead), the chip bounds are the bytes all tasks read
per batch over the chip-wide bandwidths, and the merge moves the partial pooled vectors of sharded tables.
Both entry points run the same `_solve`, so they agree exactly; a mapping saved with the placement that
`predict` returns reproduces the same latency bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from typing import Any

import numpy as np

from autotune.errors import UserError
from autotune.model.assign import assign, placement_array
from autotune.model.context import ModelContext
from autotune.model.costbook import MappingTasks
from autotune.model.mapping import Mapping, TableMapping
from autotune.model.strategies import BOUNDS, GM_UB, L1_UB, STRATEGY_CODE, TableCost, cost_batch, fmt_bytes, kept_slot

_CACHE_LIMIT = 500_000


@dataclass(frozen=True)
class Score:
    """What the search needs from one evaluation: the latency, and by how much the mapping does not fit."""

    latency_s: float
    feasible: bool
    memory_excess_bytes: float  # sum over cores and memories of the bytes beyond capacity (0 when it fits)
    reason: str | None
    core_time_s: float = 0.0  # the cores' times summed: breaks ties between mappings of one latency (search)


@dataclass(frozen=True)
class CoreLoad:
    core: int
    time_s: float
    memory_bytes: float  # bytes kept across batches + the largest transient need, over both memory roles
    n_tasks: int
    bound: str  # "latency" | "bandwidth" | "compute" | "overhead" | "idle"


@dataclass(frozen=True)
class TableResult:
    name: str
    strategy: str
    replicas: int
    shards: int
    sharding: str
    hot_rows: int
    dedup: bool
    time_s: float  # its slowest task
    work_s: float  # sum of its tasks
    share: float  # time_s / latency
    task_memory_bytes: float  # largest footprint of one of its tasks
    gm_bytes: float
    placement: tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class Prediction:
    """The model's verdict on one mapping, with the breakdown that explains it."""

    latency_s: float
    feasible: bool
    reason: str | None
    memory_excess_bytes: float
    batch_size: int
    hardware: str
    per_core: tuple[CoreLoad, ...]
    tables: tuple[TableResult, ...]
    breakdown: dict[str, Any]
    mapping: Mapping = field(repr=False)  # the input mapping with the placement used (reproduces latency_s)

    def to_dict(self) -> dict[str, Any]:
        return {
            "latency_s": self.latency_s,
            "feasible": self.feasible,
            "reason": self.reason,
            "memory_excess_bytes": self.memory_excess_bytes,
            "batch_size": self.batch_size,
            "hardware": self.hardware,
            "breakdown": self.breakdown,
            "per_core": [
                {
                    "core": c.core,
                    "time_s": c.time_s,
                    "memory_bytes": c.memory_bytes,
                    "n_tasks": c.n_tasks,
                    "bound": c.bound,
                }
                for c in self.per_core
            ],
            "tables": [
                {
                    "name": t.name,
                    "strategy": t.strategy,
                    "replicas": t.replicas,
                    "shards": t.shards,
                    "sharding": t.sharding,
                    "hot_rows": t.hot_rows,
                    "dedup": t.dedup,
                    "time_s": t.time_s,
                    "work_s": t.work_s,
                    "share": t.share,
                    "task_memory_bytes": t.task_memory_bytes,
                    "gm_bytes": t.gm_bytes,
                    "placement": [list(p) for p in t.placement],
                }
                for t in self.tables
            ],
        }


@dataclass
class _Solution:
    costs: list[TableCost]
    placements: list[np.ndarray]  # (r, k) core ids per table (only when asked for)
    given: list[bool]  # whether each table's placement came with the mapping
    cores: np.ndarray  # core of every task, tables in mapping order, tasks replica-major
    core_time: np.ndarray
    busiest_s: float
    gm_bound_s: float
    l2_bound_s: float
    merge_s: float
    latency_s: float
    feasible: bool
    reason: str | None
    excess: float
    memory: np.ndarray | None  # per core bytes (only when computed)


#: A table mapping's name and knobs as written, the key of the context's cost cache on the fast path.
_RAW_KEY = attrgetter("name", "replicas", "shards", "sharding", "strategy", "hot_rows", "dedup", "chunk_bytes")
_PLACEMENT = attrgetter("placement")


def _key(t: int, tm: TableMapping) -> tuple:
    """The knobs that determine a table's cost: hot rows count only for GM, chunk bytes only for *-UB."""
    code = STRATEGY_CODE.get(tm.strategy)
    if code is None:
        raise UserError(f"table {tm.name!r}: strategy {tm.strategy!r} is not one of GM, L1, GM-UB, L1-UB")
    hot = tm.hot_rows if code == 0 else 0  # pinning is a GM option
    chunk = tm.chunk_bytes if code in (GM_UB, L1_UB) else None
    return (t, tm.replicas, tm.shards, tm.sharding, tm.strategy, hot, tm.dedup, chunk)


def table_costs_for(ctx: ModelContext, tables: tuple[TableMapping, ...]) -> list[TableCost]:
    """Costs of every table of a mapping, from the context's cost book (misses costed in one pass)."""
    costs = ctx.cost_cache.costs
    return [costs[i] for i in _cost_ids(ctx, tables)]


def _cost_ids(ctx: ModelContext, tables: tuple[TableMapping, ...]) -> list[int]:
    """The cost book entry of every table of a mapping; misses are costed in one vectorised pass.

    The book files each cost under two keys: the table's knobs as written (name first), looked up for all
    tables at once without any per-table Python work, and the knobs that matter (table index first), so
    mappings that differ only in ignored knobs share one costing.
    """
    book = ctx.cost_cache
    raw = list(map(_RAW_KEY, tables))
    ids: list[int | None] = list(map(book.ids.get, raw))
    if None in ids:
        if len(book) > _CACHE_LIMIT:
            book.clear()
            ids = [None] * len(raw)
        _cost_missing(ctx, tables, raw, ids)
    if len(tables) != len(ctx.tables) or len(set(map(itemgetter(0), raw))) != len(tables):
        raise UserError(f"mapping: must map every table of profile {ctx.profile.name!r} exactly once")
    return ids  # type: ignore[return-value]


def _cost_missing(ctx: ModelContext, tables: tuple[TableMapping, ...], raw: list[tuple], ids: list) -> None:
    """Fill the misses in `ids`: validate their names and knobs, cost the new ones in one pass, file them."""
    book, index = ctx.cost_cache, ctx.index
    missing: list[tuple[int, tuple]] = []
    for j, tm in enumerate(tables):
        if ids[j] is not None:
            continue
        t = index.get(tm.name)
        if t is None:
            raise UserError(f"mapping: table {tm.name!r} is not in profile {ctx.profile.name!r}")
        key = _key(t, tm)
        i = book.ids.get(key)
        if i is None:
            missing.append((j, key))
        else:
            book.ids[raw[j]] = ids[j] = i
    if not missing:
        return
    fresh = book.file(*cost_batch(ctx, [(key[0], key[1:]) for _, key in missing]))
    for (j, key), i in zip(missing, fresh, strict=True):
        book.ids[key] = book.ids[raw[j]] = ids[j] = i


def _fixed_placements(tables: tuple[TableMapping, ...], P: int) -> tuple[list[np.ndarray | None], list[bool]]:
    """The explicit placement of each table (None where the model assigns), and whether each was given."""
    given = list(map(_PLACEMENT, tables))
    if given.count(None) == len(given):
        return given, [False] * len(tables)
    fixed = [None if pl is None else np.asarray(pl, dtype=np.intp) for pl in given]
    for tm, pl in zip(tables, fixed, strict=True):
        if pl is not None and (pl.shape != (tm.replicas, tm.shards) or pl.min() < 0 or pl.max() >= P):
            raise UserError(
                f"mapping: table {tm.name!r}: placement must be {tm.replicas} x {tm.shards} core ids in 0..{P - 1}"
            )
    return fixed, [pl is not None for pl in fixed]


def _replica_major(mt: MappingTasks, costs: list[TableCost], given: list[bool], slot: int) -> None:
    """Put the tasks of explicitly placed tables in replica-major order (the order of their placement)."""
    for i, g in enumerate(given):
        if g:
            c, rows = costs[mt.ids[i]], slice(mt.start[i], mt.start[i] + mt.tasks[i])
            mt.time_s[rows] = c.task_time_s
            mt.kept[rows] = c.task_memory[slot]
            mt.transient[rows] = c.task_memory[slot + 2]


def _solve(ctx: ModelContext, mapping: Mapping, with_placements: bool = False) -> _Solution:
    tables = mapping.tables
    book = ctx.cost_cache
    mt = book.gather(_cost_ids(ctx, tables))
    P = ctx.n_cores
    fixed, given = _fixed_placements(tables, P)
    slot = kept_slot(ctx)
    if any(given):
        _replica_major(mt, book.costs, given, slot)
    roles = ctx.roles
    cap_stg = float(roles.staging.capacity_bytes)
    cap_res = float(roles.resident.capacity_bytes) if roles.resident is not None and not roles.shared else np.inf
    cap_kept = cap_res if slot == 0 else cap_stg
    task_cores = assign(mt, fixed if any(given) else None, P, cap_kept)
    # Tasks of an assigned table are in slowest-first order, of a placed table in replica-major order; every
    # core runs at most one task of a table, so per-core sums (in table order) do not depend on which.
    cores = np.concatenate(task_cores)
    core_time = np.bincount(cores, weights=mt.time_s, minlength=P)
    busiest = float(core_time.max())

    gm, l2, merge_bytes, stored = mt.totals
    excess = 0.0  # bytes of tasks that overflow a memory on their own
    reason = None
    for i in mt.infeasible:
        c = book.costs[mt.ids[i]]
        excess += c.excess_bytes * c.replicas * c.shards
        reason = reason or c.reason
    hw = ctx.hw
    gm_bound = gm / hw.gm_bandwidth_bytes_per_s
    l2_bound = l2 / hw.l2_bandwidth_bytes_per_s
    merge = merge_bytes / ctx.merge_bytes_per_s + hw.overheads.merge_sync_s if merge_bytes > 0 else 0.0
    latency = max(busiest, gm_bound, l2_bound) + merge + hw.overheads.launch_s

    costs = [book.costs[i] for i in mt.ids] if with_placements or mt.infeasible else []
    memory = None
    # Unless a task keeps data on-chip, every task fits alone (table_costs checked) and no core overflows.
    if any(mt.needs_memory):
        used = _kept_usage(mt, cores, P)
        over_core = np.maximum(used - cap_kept, 0.0)
        if over_core.any():
            if reason is None:
                # every task fits alone, so only the memory that keeps data can overflow: this is the whole
                # overflow, the figure `_core_memory` gives (its other memory adds exact zeros)
                core = int(over_core.argmax())
                excess = max(excess, float(over_core.sum()))
                reason = _overflow_sentence(ctx, core, float(used[core]), slot)
            else:
                memory, over, _ = _core_memory(ctx, costs, given, cores, cap_res, cap_stg)
                excess = max(excess, over)  # a core's overflow includes that of the tasks on it
    if stored > hw.gm_capacity_bytes:
        excess += stored - hw.gm_capacity_bytes
        reason = reason or (
            f"the tables need {fmt_bytes(stored)} of global memory, {hw.name} has {fmt_bytes(hw.gm_capacity_bytes)}"
        )
    return _Solution(
        costs=costs,
        placements=[placement_array(c, tc, g) for c, tc, g in zip(costs, task_cores, given, strict=True)]
        if with_placements
        else [],
        given=given,
        cores=cores,
        core_time=core_time,
        busiest_s=busiest,
        gm_bound_s=gm_bound,
        l2_bound_s=l2_bound,
        merge_s=merge,
        latency_s=latency,
        feasible=reason is None,
        reason=reason,
        excess=float(excess),
        memory=memory,
    )


def _kept_usage(mt: MappingTasks, cores: np.ndarray, P: int) -> np.ndarray:
    """Bytes each core needs in the memory that keeps data across batches (the only memory that can overflow
    once each task fits alone: the other holds one task's transient data at a time): what its tasks keep plus
    the largest transient need among them."""
    peak = np.zeros(P)
    np.maximum.at(peak, cores, mt.transient)
    return np.bincount(cores, weights=mt.kept, minlength=P) + peak


def _overflow_sentence(ctx: ModelContext, core: int, used: float, slot: int) -> str:
    """Why the mapping does not fit: the core that overflows most and the memory it overflows."""
    roles = ctx.roles
    mem = roles.resident if slot == 0 else roles.staging
    return (
        f"core {core} needs {fmt_bytes(used)} of {mem.name} for the data its tasks keep on-chip, "  # type: ignore[union-attr]
        f"it has {fmt_bytes(mem.capacity_bytes)}"  # type: ignore[union-attr]
    )


def _core_memory(
    ctx: ModelContext, costs: list[TableCost], given: list[bool], cores: np.ndarray, cap_res: float, cap_stg: float
) -> tuple[np.ndarray, float, str | None]:
    """Per-core bytes (kept + largest transient, both roles), total overflow, and a sentence on the worst core."""
    P = ctx.n_cores
    kr, ks, tr, ts = np.concatenate(
        [c.task_memory if g else c.task_desc_memory for c, g in zip(costs, given, strict=True)], axis=1
    )
    kept_r = np.bincount(cores, weights=kr, minlength=P)
    kept_s = np.bincount(cores, weights=ks, minlength=P)
    max_r = np.zeros(P)
    max_s = np.zeros(P)
    np.maximum.at(max_r, cores, tr)
    np.maximum.at(max_s, cores, ts)
    used_r, used_s = kept_r + max_r, kept_s + max_s
    over_r = np.maximum(used_r - cap_res, 0.0)
    over_s = np.maximum(used_s - cap_stg, 0.0)
    over = float(over_r.sum() + over_s.sum())
    what = None
    if over > 0:
        slot, over_m, used_m = (1, over_s, used_s) if over_s.max() >= over_r.max() else (0, over_r, used_r)
        core = int(over_m.argmax())
        what = _overflow_sentence(ctx, core, float(used_m[core]), slot)
    return used_r + used_s, over, what


def _hot_spot(ctx: ModelContext, mapping: Mapping) -> tuple[float, str | None]:
    """The memory hot-spot time of the mapping's worst GM table (0 and None when no table reads GM by rows)."""
    worst, name = 0.0, None
    res = ctx.roles.resident
    caching = ctx.core.caches_gm_reads and res is not None and res.resident
    for tm in mapping.tables:
        if tm.strategy != "GM":
            continue
        t = ctx.index[tm.name]
        if caching and np.ceil(ctx.rows[t] / tm.shards) * ctx.row_bytes[t] <= res.capacity_bytes:
            continue  # its shards are read from the core's private cache: no slice traffic (as strategies.py)
        cycles = ctx.hot_spot_cycles(t, tm.replicas, tm.shards, tm.sharding, tm.hot_rows, tm.dedup)
        spot = float(cycles.max(initial=0.0)) / ctx.clock_hz
        if spot > worst:
            worst, name = spot, tm.name
    return worst, name


def score(ctx: ModelContext, mapping: Mapping) -> Score:
    """Fast path for the search: latency and feasibility, no breakdown."""
    s = _solve(ctx, mapping)
    return Score(
        latency_s=s.latency_s,
        feasible=s.feasible,
        memory_excess_bytes=s.excess,
        reason=s.reason,
        core_time_s=float(s.core_time.sum()),
    )


def evaluate_latency(ctx: ModelContext, mapping: Mapping) -> float:
    """Fast path for the search: the predicted latency in seconds (feasible or not; see `score`)."""
    return _solve(ctx, mapping).latency_s


def predict(profile: Any, hw: Any, mapping: Mapping, batch_size: int, ctx: ModelContext | None = None) -> Prediction:
    """The predicted latency of one batch and its breakdown. Pass `ctx` to reuse a context's caches."""
    if ctx is None:
        ctx = ModelContext(profile, hw, batch_size)
    s = _solve(ctx, mapping, with_placements=True)
    P = ctx.n_cores
    if s.memory is None:
        roles = ctx.roles
        cap_res = roles.resident.capacity_bytes if roles.resident is not None and not roles.shared else np.inf
        s.memory = _core_memory(ctx, s.costs, s.given, s.cores, cap_res, roles.staging.capacity_bytes)[0]
    n_tasks = np.bincount(s.cores, minlength=P)
    parts = np.concatenate(
        [
            np.tile(c.parts_s, (1, c.replicas)) if g else c.parts_s[:, c.task_shard_desc]
            for c, g in zip(s.costs, s.given, strict=True)
        ],
        axis=1,
    )
    per_bound = np.stack([np.bincount(s.cores, weights=parts[b], minlength=P) for b in range(len(BOUNDS))])
    mem = s.memory
    per_core = tuple(
        CoreLoad(
            core=c,
            time_s=float(s.core_time[c]),
            memory_bytes=float(mem[c]),
            n_tasks=int(n_tasks[c]),
            bound=BOUNDS[int(per_bound[:, c].argmax())] if n_tasks[c] else "idle",
        )
        for c in range(P)
    )
    results = []
    placements: dict[str, tuple[tuple[int, ...], ...]] = {}
    for tm, c, pl in zip(mapping.tables, s.costs, s.placements, strict=True):
        place = tuple(tuple(int(x) for x in row) for row in pl.tolist())
        placements[tm.name] = place
        foot = c.kept_resident + c.kept_staging + c.transient_resident + c.transient_staging
        results.append(
            TableResult(
                name=tm.name,
                strategy=tm.strategy,
                replicas=tm.replicas,
                shards=tm.shards,
                sharding=tm.sharding,
                hot_rows=tm.hot_rows,
                dedup=tm.dedup,
                time_s=c.max_time_s,
                work_s=float(c.task_time_s.sum()),
                share=c.max_time_s / s.latency_s,
                task_memory_bytes=float(foot.max()),
                gm_bytes=c.gm_bytes,
                placement=place,
            )
        )
    hw = ctx.hw
    core_bound = max(s.busiest_s, s.gm_bound_s, s.l2_bound_s)
    if core_bound == s.busiest_s:
        binding = "busiest core"
    elif core_bound == s.gm_bound_s:
        binding = "chip GM bandwidth"
    else:
        binding = "chip L2 bandwidth"
    mean = float(s.core_time.mean())
    spot_s, spot_table = _hot_spot(ctx, mapping)
    breakdown = {
        "busiest_core_s": s.busiest_s,
        "busiest_core": int(s.core_time.argmax()),
        "mean_core_s": mean,
        "imbalance": s.busiest_s / mean if mean > 0 else 1.0,
        "chip_gm_bound_s": s.gm_bound_s,
        "chip_l2_bound_s": s.l2_bound_s,
        "merge_s": s.merge_s,
        "launch_s": hw.overheads.launch_s,
        "bound": binding,
        "gm_bytes": sum(c.gm_bytes for c in s.costs),
        "l2_bytes": sum(c.l2_bytes for c in s.costs),
        "merge_bytes": sum(c.merge_bytes for c in s.costs),
        "hot_spot_s": spot_s,  # the longest any GM shard's fetches wait on the L2 slice of its busiest granule
        "hot_spot_table": spot_table,
    }
    return Prediction(
        latency_s=s.latency_s,
        feasible=s.feasible,
        reason=s.reason,
        memory_excess_bytes=s.excess,
        batch_size=ctx.batch_size,
        hardware=hw.name,
        per_core=per_core,
        tables=tuple(results),
        breakdown=breakdown,
        mapping=mapping.with_placement(placements),
    )
