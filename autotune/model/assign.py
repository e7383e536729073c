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

from autotune.model.strategies import TableCost


def assign(
    costs: Sequence[TableCost],
    fixed: Sequence[np.ndarray | None],
    n_cores: int,
    cap_resident: float,
    cap_staging: float,
    slot: int = 1,
    track: bool = True,
) -> list[np.ndarray]:
    """The core of every task of every table, tasks in `TableCost.task_desc_*` order (slowest first).

    `fixed[i]` given = table i's own (r, k) placement, honoured (its result is then its cores in replica-major
    order, the order of `TableCost.task_time_s`). `placement_array` turns a result into an (r, k) array.
    `slot` is the memory that keeps bytes across batches (`strategies.kept_slot`: 0 resident, 1 staging).
    With `track` False, memory is ignored.
    """
    P = n_cores
    placements: list[np.ndarray | None] = [None if pl is None else pl.ravel() for pl in fixed]
    track = track and any(c.needs_memory for c in costs)
    loads = np.zeros(P)
    # bytes each core keeps across batches, in the one memory that keeps them (strategies.kept_slot)
    kept = np.zeros(P) if track else None
    cap = cap_resident if slot == 0 else cap_staging
    todo = _longest_first(costs, fixed)
    if len(todo) < len(costs):
        _load_fixed(costs, fixed, loads, kept, slot)
    kept_bound = float(kept.max()) if kept is not None else 0.0
    every = np.arange(P, dtype=np.intp)
    for i in todo:
        need, shards, needs_memory, slowest, times, kept_need, keeps, kept_max = costs[i].placing
        if kept is None or not needs_memory:
            # memory plays no part: the least-loaded cores take the table's tasks, slowest task first
            if need == 1:
                core = int(loads.argmin())
                loads[core] += slowest
                placements[i] = every[core : core + 1]
            elif need == P and shards == 1:
                loads += slowest  # the same time on every core: the order does not change
                placements[i] = every
            elif need < P:
                order = loads.argsort()[:need]
                loads[order] += times
                placements[i] = order
            else:
                placements[i] = _place_wide(loads, loads, None, costs[i], need)
            continue
        if kept_bound + kept_need > cap:
            # room for the bytes a task keeps plus its own transient need; cores without room go last: they
            # are used only when nothing else is left (the model then reports the overflow)
            key = loads + (kept + kept_need > cap) * 1e30
        else:  # every core has room (kept_bound bounds the most any core keeps): load alone decides
            key = loads
        if need < P:
            order = key.argsort()[:need]
            loads[order] += times
            kept[order] += keeps
            kept_bound += kept_max
            placements[i] = order
        else:
            placements[i] = _place_wide(key, loads, kept, costs[i], need)
            kept_bound += kept_max * (need if need > P else 1)
    return placements  # type: ignore[return-value]


def _longest_first(costs: Sequence[TableCost], fixed: Sequence[np.ndarray | None]) -> list[int]:
    """Tables without a placement, slowest task first (ties keep mapping order): the LPT order."""
    slowest = [c.max_time_s for c in costs]
    return [i for i in sorted(range(len(costs)), key=slowest.__getitem__, reverse=True) if fixed[i] is None]


def _load_fixed(
    costs: Sequence[TableCost],
    fixed: Sequence[np.ndarray | None],
    loads: np.ndarray,
    kept: np.ndarray | None,
    slot: int,
) -> None:
    """Add the time (and kept bytes) of the explicitly placed tables to their cores."""
    for c, pl in zip(costs, fixed, strict=True):
        if pl is None:
            continue
        cores = pl.ravel()
        np.add.at(loads, cores, c.task_time_s)
        if kept is not None:
            np.add.at(kept, cores, c.task_memory[slot])


def _place_wide(key: np.ndarray, loads: np.ndarray, kept: np.ndarray | None, c: TableCost, need: int) -> np.ndarray:
    """Place a table with as many tasks as cores or more (more is infeasible, reported by the model: the tasks
    wrap around the cores)."""
    order = key.argsort()[:need]
    if need > len(loads):
        order = np.resize(order, need)
        np.add.at(loads, order, c.task_desc_time_s)
        if kept is not None:
            np.add.at(kept, order, c.task_desc_kept)
    else:  # distinct cores: a plain fancy-index update is exact
        loads[order] += c.task_desc_time_s
        if kept is not None:
            kept[order] += c.task_desc_kept
    return order


def placement_array(cost: TableCost, cores: np.ndarray, explicit: bool) -> np.ndarray:
    """The (replicas, shards) array of core ids from `assign`'s result for one table."""
    if explicit:
        return cores.reshape(cost.replicas, cost.shards)
    pl = np.empty((cost.replicas, cost.shards), dtype=np.intp)
    pl[cost.task_replica_desc, cost.task_shard_desc] = cores
    return pl
