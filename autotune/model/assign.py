"""Task-to-core assignment: minimise the busiest core, each core within its memory capacity.

Longest-processing-time greedy at table granularity: tables in decreasing order of their slowest task; a
table's r x k tasks go to the r x k least-loaded cores that still have room (each task of a table on its
own core), its slowest tasks on the least-loaded of those. LPT is within 4/3 of the optimum makespan for
identical machines (Graham 1969). A table replicated on every core adds the same time to every core and is
placed without search. Explicit placements are honoured and loaded first. Each table is a handful of numpy
operations on the per-core arrays, so the cost grows with tables, not with tasks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from autotune.model.costbook import MappingTasks
from autotune.model.strategies import TableCost


def assign(mt: MappingTasks, fixed: Sequence[np.ndarray | None] | None, n_cores: int, cap: float) -> list[np.ndarray]:
    """The core of every task of every table, each table's tasks in the order of its rows in `mt`.

    `fixed[i]` given = table i's own (r, k) placement, honoured (`mt` then holds its tasks replica-major);
    the others' tasks are slowest first; `fixed` None: no table has one. `placement_array` turns a result
    into an (r, k) array. `cap`: the capacity of the memory that keeps bytes across batches
    (`strategies.kept_slot`); a core is a candidate for a task only if its kept bytes plus the task's kept
    and transient bytes fit, else it is used last.
    """
    P = n_cores
    placements: list[np.ndarray | None] = [None] * len(mt.tasks)
    loads = np.zeros(P)
    # bytes each core keeps across batches, in the one memory that keeps them (strategies.kept_slot)
    kept = np.zeros(P) if any(mt.needs_memory) else None
    todo = np.argsort(-mt.slowest_s, kind="stable").tolist()  # LPT order: slowest first, ties in mapping order
    if fixed is not None:
        todo = [i for i in todo if fixed[i] is None]
        _load_fixed(mt, fixed, loads, kept)
        placements = [None if pl is None else pl.ravel() for pl in fixed]
    kept_bound = float(kept.max()) if kept is not None else 0.0
    every = np.arange(P, dtype=np.intp)
    time_s, keeps = mt.time_s, mt.kept
    starts, tasks, shards, needs_memory = mt.start, mt.tasks, mt.shards, mt.needs_memory
    for i in todo:
        need, a = tasks[i], starts[i]
        if kept is None or not needs_memory[i]:
            # memory plays no part: the least-loaded cores take the table's tasks, slowest task first
            if need == 1:
                core = int(loads.argmin())
                loads[core] += time_s[a]
                placements[i] = every[core : core + 1]
            elif need == P and shards[i] == 1:
                loads += time_s[a]  # the same time on every core: the order does not change
                placements[i] = every
            elif need < P:
                order = loads.argsort()[:need]
                loads[order] += time_s[a : a + need]
                placements[i] = order
            else:
                placements[i] = _place_wide(loads, loads, None, mt, i)
            continue
        kept_need = mt.kept_need[i]
        if kept_bound + kept_need > cap:
            # room for the bytes a task keeps plus its own transient need; cores without room go last: they
            # are used only when nothing else is left (the model then reports the overflow)
            key = loads + (kept + kept_need > cap) * 1e30
        else:  # every core has room (kept_bound bounds the most any core keeps): load alone decides
            key = loads
        if need < P:
            order = key.argsort()[:need]
            loads[order] += time_s[a : a + need]
            kept[order] += keeps[a : a + need]
            kept_bound += mt.kept_max[i]
            placements[i] = order
        else:
            placements[i] = _place_wide(key, loads, kept, mt, i)
            kept_bound += mt.kept_max[i] * (need if need > P else 1)
    return placements  # type: ignore[return-value]


def _load_fixed(
    mt: MappingTasks, fixed: Sequence[np.ndarray | None], loads: np.ndarray, kept: np.ndarray | None
) -> None:
    """Add the time (and kept bytes) of the explicitly placed tables to their cores."""
    for i, pl in enumerate(fixed):
        if pl is None:
            continue
        rows = slice(mt.start[i], mt.start[i] + mt.tasks[i])
        np.add.at(loads, pl.ravel(), mt.time_s[rows])
        if kept is not None:
            np.add.at(kept, pl.ravel(), mt.kept[rows])


def _place_wide(key: np.ndarray, loads: np.ndarray, kept: np.ndarray | None, mt: MappingTasks, i: int) -> np.ndarray:
    """Place table i when it has as many tasks as cores or more (more is infeasible, reported by the model:
    the tasks wrap around the cores)."""
    need = mt.tasks[i]
    rows = slice(mt.start[i], mt.start[i] + need)
    order = key.argsort()[:need]
    if need > len(loads):
        order = np.resize(order, need)
        np.add.at(loads, order, mt.time_s[rows])
        if kept is not None:
            np.add.at(kept, order, mt.kept[rows])
    else:  # distinct cores: a plain fancy-index update is exact
        loads[order] += mt.time_s[rows]
        if kept is not None:
            kept[order] += mt.kept[rows]
    return order


def placement_array(cost: TableCost, cores: np.ndarray, explicit: bool) -> np.ndarray:
    """The (replicas, shards) array of core ids from `assign`'s result for one table."""
    if explicit:
        return cores.reshape(cost.replicas, cost.shards)
    pl = np.empty((cost.replicas, cost.shards), dtype=np.intp)
    pl[cost.task_replica_desc, cost.task_shard_desc] = cores
    return pl
