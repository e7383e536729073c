"""Task-to-core assignment: minimise the busiest core, each core within its memory capacity.

Longest-processing-time greedy at table granularity: tables in decreasing order of their slowest task; a
table's r x k tasks go to the r x k least-loaded cores that still have room (each task of a table on its
own core), its slowest tasks on the least-loaded of those. LPT is within 4/3 of the optimum makespan for
identical machines (Graham 1969). A table replicated on every core adds the same time to every core and is
placed without search. Explicit placements are honoured and loaded first.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

import numpy as np

from autotune.model.strategies import TableCost


class _Memory:
    """Per-core bytes kept across batches and the largest transient need, for the two memory roles."""

    def __init__(self, n_cores: int, cap_res: float, cap_stg: float) -> None:
        self.kept_res = [0.0] * n_cores
        self.kept_stg = [0.0] * n_cores
        self.tr_res = [0.0] * n_cores
        self.tr_stg = [0.0] * n_cores
        self.cap_res, self.cap_stg = cap_res, cap_stg

    def fits(self, c: int, kr: float, ks: float, tr: float, ts: float) -> bool:
        return (
            self.kept_res[c] + kr + max(self.tr_res[c], tr) <= self.cap_res
            and self.kept_stg[c] + ks + max(self.tr_stg[c], ts) <= self.cap_stg
        )

    def add(self, c: int, cost: TableCost, shard: int) -> None:
        self.kept_res[c] += float(cost.kept_resident[shard])
        self.kept_stg[c] += float(cost.kept_staging[shard])
        self.tr_res[c] = max(self.tr_res[c], float(cost.transient_resident[shard]))
        self.tr_stg[c] = max(self.tr_stg[c], float(cost.transient_staging[shard]))


def assign(
    costs: Sequence[TableCost],
    fixed: Sequence[np.ndarray | None],
    n_cores: int,
    cap_resident: float,
    cap_staging: float,
) -> list[np.ndarray]:
    """Placement (an (r, k) array of core ids) of every table; `fixed[i]` given = table i's own placement."""
    P = n_cores
    placements: list[np.ndarray | None] = list(fixed)
    track = any(c.needs_memory for c in costs)
    mem = _Memory(P, cap_resident, cap_staging) if track else None
    loads = [0.0] * P
    for i, pl in enumerate(fixed):
        if pl is None:
            continue
        cost = costs[i]
        for j, core in enumerate(pl.ravel().tolist()):
            loads[core] += float(cost.task_time_s[j])
            if mem is not None:
                mem.add(core, cost, j % cost.shards)
    heap = [(loads[c], c) for c in range(P)]
    heapq.heapify(heap)
    every = np.arange(P, dtype=np.intp).reshape(P, 1)
    todo = sorted((i for i in range(len(costs)) if fixed[i] is None), key=lambda i: -costs[i].max_time_s)
    for i in todo:
        cost = costs[i]
        r, k = cost.replicas, cost.shards
        need = r * k
        if need >= P and k == 1:
            # Replicated on every core (or more copies than cores: infeasible, reported by the model).
            placements[i] = every if need == P else (np.arange(need, dtype=np.intp) % P).reshape(need, 1)
            if mem is not None:
                for c in placements[i].ravel().tolist():
                    mem.add(c, cost, 0)
            if need == P:
                continue  # the same time on every core: the heap's order does not change
            heap = _rebuild(heap, placements[i].ravel().tolist(), cost.task_time_s.tolist())
            continue
        if need == 1 and (mem is None or not cost.needs_memory):
            load, core = heap[0]
            heapq.heapreplace(heap, (load + cost.max_time_s, core))
            placements[i] = np.array([[core]], dtype=np.intp)
            continue
        kr = float(cost.kept_resident.max())
        ks = float(cost.kept_staging.max())
        tr = float(cost.transient_resident.max())
        ts = float(cost.transient_staging.max())
        check = mem is not None and cost.needs_memory
        popped: list[tuple[float, int]] = []
        chosen: list[tuple[float, int]] = []
        while len(chosen) < need and heap:
            entry = heapq.heappop(heap)
            popped.append(entry)
            if not check or mem.fits(entry[1], kr, ks, tr, ts):  # type: ignore[union-attr]
                chosen.append(entry)
        if len(chosen) < need:  # not enough room anywhere: least-loaded cores anyway (the model flags the excess)
            spare = [e for e in popped if e not in chosen]
            chosen = sorted(chosen + spare[: need - len(chosen)])
            if len(chosen) < need:  # more tasks than cores (infeasible): wrap around
                chosen = [chosen[j % len(chosen)] for j in range(need)]
        pl = np.empty((r, k), dtype=np.intp)
        new_load = {c: load for load, c in popped}
        j = 0
        for shard in cost.desc:
            t = float(cost.shard_time_s[shard])
            for rep in range(r):
                core = chosen[j][1]
                j += 1
                pl[rep, shard] = core
                new_load[core] += t
                if mem is not None:
                    mem.add(core, cost, shard)
        placements[i] = pl
        for _, c in popped:
            heapq.heappush(heap, (new_load[c], c))
    return placements  # type: ignore[return-value]


def _rebuild(heap: list[tuple[float, int]], cores: list[int], times: list[float]) -> list[tuple[float, int]]:
    load = {c: v for v, c in heap}
    for c, t in zip(cores, times, strict=True):
        load[c] += t
    out = [(v, c) for c, v in load.items()]
    heapq.heapify(out)
    return out
