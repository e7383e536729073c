"""What `autotune show` reports about a run, as plain data: per-core load, per-table placement, imbalance.

Pure functions of the model's `Prediction`, in the shape of TorchRec's planner report (a per-rank table, a
per-table table, imbalance figures), so the human view and `--json` print the same figures.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from autotune.model.evaluate import CoreLoad, Prediction, TableResult
from autotune.search.loaded import LoadedRun

#: What the per-table "slowest task / latency" column is, printed under the table (the shares do not add up).
SLOWEST_TASK_NOTE = (
    "slowest task / latency: the table's slowest task (replica or shard) over the batch latency; tasks of "
    "different tables run side by side on other cores, so the column does not sum to 100%"
)


def pareto_line(points: int, where: str) -> str:
    """The line report.md and `show` print for a two-objective run."""
    return (
        f"Pareto set (latency, memory): {points} distinct point{'s' if points != 1 else ''} in {where}; "
        "the mapping here is the lowest-latency one"
    )


def imbalance(per_core: Sequence[CoreLoad]) -> dict[str, Any]:
    """Load imbalance of the cores.

    `busiest_over_mean`: the busiest core's time over the mean over all cores (idle ones count: an idle core
    is capacity the mapping leaves unused); `max_over_min`: busiest over least busy among the cores with
    work (None when no core, or a core with tasks but no time); `idle_cores`: cores without a task.
    """
    times = [c.time_s for c in per_core]
    busy = [c.time_s for c in per_core if c.n_tasks > 0]
    top = max(times) if times else 0.0
    mean = sum(times) / len(times) if times else 0.0
    least = min(busy) if busy else 0.0
    busiest = max(per_core, key=lambda c: c.time_s).core if per_core else None
    return {
        "busiest_core": busiest,
        "busiest_s": top,
        "mean_s": mean,
        "busiest_over_mean": top / mean if mean > 0 else 1.0,
        "max_over_min": top / least if least > 0 else None,
        "idle_cores": len(times) - len(busy),
        "cores": len(times),
    }


def core_tasks(tables: Iterable[TableResult], n_cores: int) -> list[list[dict[str, Any]]]:
    """For every core, its tasks as {table, replica, shard}, in mapping order."""
    out: list[list[dict[str, Any]]] = [[] for _ in range(n_cores)]
    for t in tables:
        for r, row in enumerate(t.placement):
            for s, core in enumerate(row):
                out[core].append({"table": t.name, "replica": r, "shard": s})
    return out


def task_label(task: dict[str, Any], shards: int) -> str:
    """'t3' for an unsharded table's task, 't3/s1' for shard 1 of a sharded one."""
    return task["table"] if shards == 1 else f"{task['table']}/s{task['shard']}"


def core_ranges(cores: Iterable[int]) -> str:
    """Core ids as sorted ranges: [5, 0, 1, 2, 7] -> '0-2,5,7'."""
    ids = sorted(set(cores))
    parts: list[str] = []
    i = 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        parts.append(str(ids[i]) if i == j else f"{ids[i]}-{ids[j]}")
        i = j + 1
    return ",".join(parts)


def run_summary(run: LoadedRun) -> dict[str, Any]:
    """Everything `autotune show` reports, as JSON-ready data."""
    pred: Prediction = run.prediction
    tasks = core_tasks(pred.tables, len(pred.per_core))
    shards = {t.name: t.shards for t in pred.tables}
    per_core = [
        {
            "core": c.core,
            "n_tasks": c.n_tasks,
            "time_s": c.time_s,
            "memory_bytes": c.memory_bytes,
            "bound": c.bound,
            "tasks": [task_label(t, shards[t["table"]]) for t in tasks[c.core]],
        }
        for c in pred.per_core
    ]
    tables = [
        {
            "name": t.name,
            "placement": [list(row) for row in t.placement],
            "cores": core_ranges(c for row in t.placement for c in row),
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
        }
        for t in pred.tables
    ]
    return {
        "run": run.name,
        "path": str(run.path),
        "hardware": run.hw.name,
        "cores": run.hw.n_cores,
        "core_type": run.hw.lookup_cores.name,
        "profile": run.profile.name,
        "batch_size": run.batch_size,
        "status": run.status,
        "status_note": run.status_note,
        "latency_s": pred.latency_s,
        "stored_latency_s": run.stored_latency_s,
        "matches_stored": run.matches_stored,
        "lower_bound_s": run.lower_bound_s,
        "feasible": pred.feasible,
        "reason": pred.reason,
        "breakdown": pred.breakdown,
        "imbalance": imbalance(pred.per_core),
        "per_core": per_core,
        "tables": tables,
        "pareto": _pareto(run),
    }


def _pareto(run: LoadedRun) -> dict[str, Any] | None:
    """The run's Pareto set as run.json records it (two objectives only): how many points, and which file."""
    rec = run.doc.get("pareto")
    if not isinstance(rec, dict) or not isinstance(rec.get("points"), int) or not isinstance(rec.get("file"), str):
        return None
    return {"points": rec["points"], "file": str(run.path / rec["file"])}
