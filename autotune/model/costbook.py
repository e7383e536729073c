"""The cost book: every (table, knobs) a context has costed, filed as flat arrays for the search's fast path.

Evaluating a mapping reads a few figures of each of its tables (task count, slowest task, bytes) and the
time and bytes of every task. Read from thousands of separate `TableCost` records (each several objects
scattered in memory), that reading costs more than the arithmetic: cache misses. Filed here, one row per
costed entry and one row per task, a mapping gathers all it needs with one fancy index per array, and the
gathered arrays are small and contiguous.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from autotune.model.strategies import CostBatch, TableCost


@dataclass(frozen=True)
class MappingTasks:
    """The costed tables of one mapping, in mapping order, as the assignment and the latency read them.

    Each table's tasks are consecutive rows of the task arrays, slowest first (`TableCost.task_desc_*`);
    `with_rows` puts an explicitly placed table's tasks in replica-major order instead.
    """

    ids: list[int]  # each table's entry in the book
    time_s: np.ndarray  # (n,) time of every task
    kept: np.ndarray  # (n,) bytes every task keeps across batches in the memory that keeps data
    transient: np.ndarray  # (n,) bytes every task holds there while it runs
    start: list[int]  # each table's first task row
    tasks: list[int]  # each table's task count (replicas x shards)
    shards: list[int]
    slowest_s: np.ndarray  # (T,) each table's slowest task
    kept_need: list[float]  # largest kept + transient bytes of one task of each table
    kept_max: list[float]  # the most one task of each table keeps
    needs_memory: list[bool]  # whether any task of each table keeps bytes
    totals: list[float]  # GM, L2, merge and stored bytes of all tables, summed in mapping order
    infeasible: list[int]  # tables whose tasks cannot run alone on one core (`TableCost.reason`), in order


class CostBook:
    """Every costed (table, knobs) of one context: the `TableCost` records and their fast-path arrays.

    `ids` maps a cache key to an entry; a record is filed once and may be found under several keys.
    """

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Forget every entry (the context's cost cache is emptied)."""
        self.ids: dict[tuple, int] = {}
        self.costs: list[TableCost] = []
        self._n_tasks = 0
        self._ints = np.zeros((0, 3), dtype=np.intp)  # per entry: tasks, shards, first task row
        self._figures = np.zeros((0, 7))  # per entry: slowest, kept need, kept max, GM, L2, merge, stored bytes
        self._flags = np.zeros((0, 2), dtype=bool)  # per entry: keeps bytes, cannot run alone
        self._task = np.zeros((0, 3))  # per task: time, kept bytes, transient bytes (a table's tasks together)

    def __len__(self) -> int:
        return len(self.ids)

    def get(self, key: tuple) -> TableCost | None:
        i = self.ids.get(key)
        return None if i is None else self.costs[i]

    def file(self, costs: list[TableCost], batch: CostBatch) -> list[int]:
        """Add the records of one costing pass (all of `batch`'s entries, in order); their entry ids."""
        first, n = len(self.costs), len(costs)
        e = batch.entry
        tasks = e["tasks"]
        n_tasks = len(batch.task_time_s)
        self._ints = _grown(self._ints, first + n)
        self._figures = _grown(self._figures, first + n)
        self._flags = _grown(self._flags, first + n)
        self._task = _grown(self._task, self._n_tasks + n_tasks)
        self._ints[first : first + n] = np.column_stack([tasks, e["shards"], self._n_tasks + np.cumsum(tasks) - tasks])
        figures = ("max_time_s", "kept_need", "kept_max", "gm_bytes", "l2_bytes", "merge_bytes", "stored_bytes")
        self._figures[first : first + n] = np.column_stack([e[name] for name in figures])
        self._flags[first : first + n, 0] = e["needs_memory"]
        self._flags[first : first + n, 1] = ~e["fits"]
        end = self._n_tasks + n_tasks
        self._task[self._n_tasks : end] = np.column_stack([batch.task_time_s, batch.task_kept, batch.task_transient])
        self._n_tasks = end
        self.costs.extend(costs)
        return list(range(first, first + n))

    def gather(self, ids: list[int]) -> MappingTasks:
        """The figures and tasks of a mapping's tables (entry ids in mapping order)."""
        ix = np.array(ids, dtype=np.intp)
        tasks, shards, first = self._ints[ix].T
        figures = self._figures[ix]
        flags = self._flags[ix]
        ends = np.cumsum(tasks)
        start = ends - tasks
        rows = np.repeat(first - start, tasks) + np.arange(ends[-1] if len(ids) else 0)  # tables' rows in turn
        time_s, kept, transient = np.ascontiguousarray(self._task[rows].T)
        # a running sum adds the tables one after the other, in mapping order, as a loop over them would
        totals = np.cumsum(figures[:, 3:], axis=0)[-1].tolist() if len(ids) else [0.0] * 4
        return MappingTasks(
            ids=ids,
            time_s=time_s,
            kept=kept,
            transient=transient,
            start=start.tolist(),
            tasks=tasks.tolist(),
            shards=shards.tolist(),
            slowest_s=figures[:, 0],
            kept_need=figures[:, 1].tolist(),
            kept_max=figures[:, 2].tolist(),
            needs_memory=flags[:, 0].tolist(),
            totals=totals,
            infeasible=np.flatnonzero(flags[:, 1]).tolist(),
        )


def _grown(a: np.ndarray, size: int) -> np.ndarray:
    """`a` with room for `size` rows (capacity doubles, so filing is amortised O(1) per row)."""
    if size <= len(a):
        return a
    out = np.zeros((max(size, 2 * len(a), 64), *a.shape[1:]), dtype=a.dtype)
    out[: len(a)] = a
    return out
