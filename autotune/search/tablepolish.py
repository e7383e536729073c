"""Table-by-table descent from the best mapping: each table's knobs in turn, the others fixed, keeping any change
that lowers the latency.

The search space ties every table's single-core configuration to one on-chip memory budget and one `pick`
(`space.py`), so a mapping where a few tables pin many hot rows and the rest pin few lies between its points:
on meta84 on the 910B, the best trial gives every heavy table 16 hot rows where some could pin 256 as one task
(README, "Search quality"). Here each table may take any grid point (`bounds.knob_grid`) that no other point
beats on every figure the latency depends on: total work, slowest task, bytes kept on-chip by one task, GM and
L2 bytes, merge bytes. The result is a set of per-table overrides that `apply_overrides` lays over the mapping
the trial's parameters describe; the driver stores them with the trial (`TABLES_ATTR`), so the study, the run
and a resumed search all reproduce it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from collections.abc import Mapping as MappingABC
from dataclasses import replace

import numpy as np

from autotune.model.bounds import grid_figures
from autotune.model.context import ModelContext
from autotune.model.evaluate import score, table_costs_for
from autotune.model.mapping import Mapping, TableMapping
from autotune.model.strategies import Knobs

#: The trial user attribute holding a polished trial's per-table knobs: {table: [r, k, sharding, strategy,
#: hot rows, dedup, chunk bytes]}.
TABLES_ATTR = "tables"
#: Hears each point the descent reaches: its overrides and latency.
Listener = Callable[[dict[str, list], float], None]
MAX_SWEEPS = 100  # the budget ends it first on large workloads


def apply_overrides(mapping: Mapping, overrides: MappingABC[str, Sequence] | None) -> Mapping:
    """The mapping with the named tables' knobs replaced (placements chosen by the model)."""
    if not overrides:
        return mapping
    return replace(
        mapping,
        tables=tuple(
            TableMapping(tm.name, *overrides[tm.name]) if tm.name in overrides else tm for tm in mapping.tables
        ),
    )


def knobs_of(tm: TableMapping) -> list:
    """A table's knobs as stored in `TABLES_ATTR` (JSON-ready)."""
    return [tm.replicas, tm.shards, tm.sharding, tm.strategy, tm.hot_rows, tm.dedup, tm.chunk_bytes]


def candidates(ctx: ModelContext, t: int) -> list[Knobs]:
    """Table t's grid points that run alone on a core and that no other such point matches or beats on total
    work, slowest task, kept bytes of one task, GM + L2 bytes and merge bytes. The others are left out: they
    seldom lower the latency where these do not (the assignment also sees how a table's time and bytes spread
    over its tasks), and leaving them out cuts the moves about tenfold."""
    f = grid_figures(ctx, t)
    figures = np.stack([f.work, f.slowest, f.kept_max, f.gm + f.l2, f.merge], axis=1)
    ok = np.flatnonzero(f.fits)
    x = figures[ok]
    front: list[int] = []
    for i in np.lexsort(x.T[::-1]):  # lexicographic order: a point can only be matched by one before it
        if front and bool(np.all(x[front] <= x[i], axis=1).any()):
            continue
        front.append(int(i))
    return [f.knobs[int(ok[i])] for i in front]


def polish_tables(
    ctx: ModelContext,
    mapping: Mapping,
    budget_s: float,
    on_sweep: Listener | None = None,
) -> tuple[dict[str, list], float]:
    """The per-table overrides reached from `mapping` by single-table moves (within `budget_s`), and the
    latency they give (inf if the mapping and every move are infeasible). Tables are visited heaviest first;
    `on_sweep(overrides, latency)` hears the point reached after every sweep that moved a table and at the end."""
    deadline = time.monotonic() + budget_s
    base = replace(mapping, tables=tuple(replace(tm, placement=None) for tm in mapping.tables))
    tables = list(base.tables)
    s = score(ctx, base)
    best, best_time = (s.latency_s, s.core_time_s) if s.feasible else (np.inf, np.inf)
    fronts: list[list[Knobs]] = []
    for t in range(len(tables)):
        if time.monotonic() > deadline:
            return {}, best
        fronts.append(candidates(ctx, ctx.index[tables[t].name]))
    _cost_all(ctx, tables, fronts)
    work = [float(c.task_time_s.sum()) for c in table_costs_for(ctx, tuple(tables))]
    order = sorted(range(len(tables)), key=lambda i: -work[i])
    changed: set[int] = set()
    for _ in range(MAX_SWEEPS):
        improved = False
        for i in order:
            move = None
            for knobs in fronts[i]:
                cand = TableMapping(tables[i].name, *knobs)
                if cand == tables[i]:
                    continue
                if time.monotonic() > deadline:
                    if move is not None:
                        tables = move
                        changed.add(i)
                    return _report(tables, changed, best, on_sweep)
                trial = [*tables[:i], cand, *tables[i + 1 :]]
                s = score(ctx, Mapping(tables=tuple(trial)))
                # lower latency, or the same with less time over all cores: a move off the busiest core that
                # makes room for the next one (the latency alone is flat under most single moves)
                if s.feasible and (s.latency_s, s.core_time_s) < (best, best_time * (1 - 1e-12)):
                    best, best_time, move = s.latency_s, s.core_time_s, trial
            if move is not None:  # the table's best move
                tables, improved = move, True
                changed.add(i)
        if not improved:
            break
        if on_sweep is not None:
            on_sweep(_overrides(tables, changed), best)
    return _report(tables, changed, best, on_sweep)


def _overrides(tables: list[TableMapping], changed: set[int]) -> dict[str, list]:
    return {tables[i].name: knobs_of(tables[i]) for i in sorted(changed)}


def _report(
    tables: list[TableMapping], changed: set[int], best: float, on_sweep: Listener | None
) -> tuple[dict[str, list], float]:
    out = _overrides(tables, changed)
    if on_sweep is not None and changed:
        on_sweep(out, best)
    return out, best


def _cost_all(ctx: ModelContext, tables: list[TableMapping], fronts: list[list[Knobs]]) -> None:
    """Cost every candidate up front, one vectorised pass per candidate rank (a mapping of each table's j-th)."""
    for j in range(max(map(len, fronts), default=0)):
        row = [TableMapping(tm.name, *f[j]) if j < len(f) else tm for tm, f in zip(tables, fronts, strict=True)]
        score(ctx, Mapping(tables=tuple(row)))
