"""`replay`: run a mapping for real on this machine's cores, check its answer, time it, set the model beside it.

Steps: validate the mapping against the (scaled) profile and the chip; let the model place it (`predict`,
whose placement replay then follows); build float32 tables and draw batches from the profile's row counts
(or read consecutive queries of an actual log, `logs`);
run the tasks on pinned workers (`runner`); check every batch's pooled output against `reference`; report
the median and p99 latency of the timed batches (after `warmup` untimed ones), each core's busy time and
each table's slowest task, next to the model's prediction of the same.

Tables, batches and the reference answers can be built once (`prepare`) and replayed under many mappings
(`replay(..., data=...)`): what a fidelity benchmark needs to interleave mappings cheaply, so slow drift of
the machine hits every mapping alike.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from autotune.errors import UserError
from autotune.hardware import HardwareProfile
from autotune.loadcheck import busy_warning
from autotune.model.context import ModelContext
from autotune.model.evaluate import Prediction, predict
from autotune.model.mapping import Mapping, validate_mapping
from autotune.replay.batches import TableBatch, draw_batches, read_row_counts
from autotune.replay.logs import log_batches
from autotune.replay.plan import build_tasks
from autotune.replay.reference import reference_pool
from autotune.replay.runner import Timings, run, usable_cpus
from autotune.replay.tables import check_scale, make_table, scale_profile
from autotune.workload import WorkloadProfile

#: Replay refuses to build tables larger than this share of the memory available now (use --scale).
MEMORY_SHARE = 0.6


class ReplayMismatch(RuntimeError):
    """Replay's pooled output differs from the reference: a bug in a kernel, never a user error."""


@dataclass(frozen=True)
class ReplayResult:
    """Measured and predicted latency of one mapping on this machine."""

    mapping: Mapping  # with the placement that ran
    prediction: Prediction
    latencies_s: tuple[float, ...]  # timed batches
    busy_s: np.ndarray  # (timed batches, cores)
    table_task_s: dict[str, float]  # median over batches of each table's slowest task
    batch_size: int
    warmup: int
    scale: float
    cpus: tuple[int, ...]  # CPU of each mapping core
    source: str = "drawn from the profile's row counts"  # where the batches came from
    #: (table, the profile's dtype) of every table replayed (and predicted) as a float32 copy instead
    converted: tuple[tuple[str, str], ...] = ()

    @property
    def measured_latency_s(self) -> float:
        return float(np.median(self.latencies_s))

    @property
    def p99_latency_s(self) -> float:
        return float(np.percentile(self.latencies_s, 99))

    @property
    def relative_error(self) -> float:
        """(predicted - measured) / measured."""
        return (self.prediction.latency_s - self.measured_latency_s) / self.measured_latency_s

    def to_dict(self) -> dict[str, Any]:
        busy = np.median(self.busy_s, axis=0)
        pred = self.prediction
        return {
            "measured_latency_s": self.measured_latency_s,
            "p99_latency_s": self.p99_latency_s,
            "predicted_latency_s": pred.latency_s,
            "relative_error": self.relative_error,
            "feasible": pred.feasible,
            "batch_size": self.batch_size,
            "batches": len(self.latencies_s),
            "warmup_batches": self.warmup,
            "scale": self.scale,
            "hardware": pred.hardware,
            "checked": "every batch equals the reference",
            "batches_from": self.source,
            "dtype": "float32",
            "converted_from": dict(self.converted),
            "latencies_s": list(self.latencies_s),
            "per_core": [
                {
                    "core": c.core,
                    "cpu": self.cpus[c.core],
                    "measured_busy_s": float(busy[c.core]),
                    "predicted_s": c.time_s,
                    "tasks": c.n_tasks,
                }
                for c in pred.per_core
            ],
            "tables": [
                {
                    "name": t.name,
                    "strategy": t.strategy,
                    "replicas": t.replicas,
                    "shards": t.shards,
                    "measured_task_s": self.table_task_s[t.name],
                    "predicted_task_s": t.time_s,
                    "placement": [list(p) for p in t.placement],
                }
                for t in pred.tables
            ],
            "mapping": self.mapping.to_dict(),
        }


def float32_profile(profile: WorkloadProfile) -> WorkloadProfile:
    """Replay materialises float32 tables; the model is asked about the same."""
    if all(t.dtype == "float32" for t in profile.tables):
        return profile
    return replace(profile, tables=tuple(replace(t, dtype="float32") for t in profile.tables))


def converted_dtypes(profile: WorkloadProfile) -> tuple[tuple[str, str], ...]:
    """(table, dtype) of the tables replay runs as float32 copies: its kernels and its exactness check (integer
    values whose sums float32 holds exactly) are float32 only, and numpy has no fast float16 or int8 pooling."""
    return tuple((t.name, t.dtype) for t in profile.tables if t.dtype != "float32")


def converted_note(converted: tuple[tuple[str, str], ...]) -> str | None:
    """One line saying which tables were replayed and predicted as float32 instead of their own dtype."""
    if not converted:
        return None
    by_dtype: dict[str, list[str]] = {}
    for name, dtype in converted:
        by_dtype.setdefault(dtype, []).append(name)
    shown = "; ".join(
        f"{dtype}: {', '.join(names[:3])}{f' and {len(names) - 3} more' if len(names) > 3 else ''}"
        for dtype, names in by_dtype.items()
    )
    return (
        f"note: {len(converted)} table(s) replayed and predicted as float32 copies, not their own dtype ({shown}): "
        "replay's CPU kernels are float32 only, so latencies are those of 4-byte elements"
    )


def _available_bytes() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 62


def _check_fits(profile: WorkloadProfile, mapping: Mapping, scale: float) -> None:
    need = 0
    by = {t.name: t for t in profile.tables}
    for tm in mapping.tables:
        t = by[tm.name]
        copies = 1 + (1 if tm.sharding == "balanced" and tm.shards > 1 else 0)
        copies += tm.replicas if tm.strategy in ("L1", "L1-UB") else 0
        need += t.rows * t.dim * 4 * copies
    avail = _available_bytes()
    if need > MEMORY_SHARE * avail:
        fit = scale * MEMORY_SHARE * avail / need
        raise UserError(
            f"the tables of profile {profile.name!r} need {need / 2**30:.1f} GiB as float32 (with copies), "
            f"{avail / 2**30:.1f} GiB is available: pass --scale {fit:.3g} or less to materialise a share of "
            "each table's rows"
        )


@dataclass(frozen=True, eq=False)
class ReplayData:
    """The float32 tables and drawn batches of one (profile, batch size, scale, seed), reusable across mappings."""

    profile: WorkloadProfile  # scaled, float32: what the model is asked about
    batch_size: int
    scale: float
    seed: int
    freq: dict[str, np.ndarray]  # look-up counts per (scaled) row
    tables: list[np.ndarray]
    batches: list[list[TableBatch]]  # [batch][table]
    source: str = "drawn from the profile's row counts"  # or the log's consecutive queries
    _refs: dict[tuple[int, int], np.ndarray] = field(default_factory=dict, repr=False)

    def reference(self, b: int, ti: int) -> np.ndarray:
        """The reference pooled output of table `ti` in batch `b` (computed once)."""
        key = (b, ti)
        if key not in self._refs:
            self._refs[key] = reference_pool(self.tables[ti], self.batches[b][ti], self.batch_size)
        return self._refs[key]


def prepare(
    profile: WorkloadProfile,
    batch_size: int,
    n_batches: int,
    scale: float = 1.0,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    logs: Sequence[str | Path] | None = None,
) -> ReplayData:
    """Build the tables and draw `n_batches` batches (warm-up ones included) of `profile` for replay; with
    `logs`, the batches are the log's consecutive queries instead (`autotune.replay.logs`)."""
    say = progress or (lambda _m: None)
    check_scale(scale)
    if batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {batch_size}")
    prof = float32_profile(scale_profile(profile, scale))
    freq = read_row_counts(profile, scale)
    if logs:
        batches = log_batches(profile, logs, batch_size, n_batches, scale, say)
        source = f"consecutive queries of the log {', '.join(map(str, logs))}"
    else:
        batches = draw_batches(prof, freq, batch_size, n_batches, seed)
        source = "drawn from the profile's row counts"
    say(f"building {len(prof.tables)} float32 table(s): {sum(t.table_bytes for t in prof.tables) / 2**20:.1f} MiB")
    tables = [make_table(t.rows, t.dim, seed, i) for i, t in enumerate(prof.tables)]
    return ReplayData(prof, batch_size, scale, seed, freq, tables, batches, source)


def replay(
    profile: WorkloadProfile,
    hw: HardwareProfile,
    mapping: Mapping,
    batch_size: int,
    n_batches: int = 20,
    warmup: int = 3,
    scale: float = 1.0,
    seed: int = 0,
    where: str = "mapping",
    progress: Callable[[str], None] | None = None,
    data: ReplayData | None = None,
    logs: Sequence[str | Path] | None = None,
) -> ReplayResult:
    """Run `mapping` for real; raise `UserError` on bad input, `ReplayMismatch` if the answer is wrong.

    `data` (from `prepare` with the same profile, batch size, scale and seed, and at least `warmup +
    n_batches` batches) skips building tables and drawing batches; its first `warmup + n_batches` are run.
    `logs` replays those query logs' consecutive queries instead of batches drawn from the profile.
    """
    load1 = os.getloadavg()[0]  # before replay's own work: what other jobs add
    say = progress or (lambda _m: None)
    check_scale(scale)
    if n_batches < 1:
        raise UserError(f"--batches must be >= 1, got {n_batches}")
    if warmup < 0:
        raise UserError(f"--warmup must be >= 0, got {warmup}")
    if batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {batch_size}")
    prof = float32_profile(scale_profile(profile, scale))
    if data is not None and (
        (data.batch_size, data.scale, data.seed) != (batch_size, scale, seed)
        or data.profile.table_names != prof.table_names
        or len(data.batches) < warmup + n_batches
    ):
        raise ValueError("replay data was prepared for another profile, batch size, scale, seed or fewer batches")
    validate_mapping(mapping, prof, hw, where=where)
    cpus = usable_cpus()
    if hw.n_cores > len(cpus):
        raise UserError(
            f"hardware profile {hw.name!r} has {hw.n_cores} look-up cores but this machine lets replay use "
            f"{len(cpus)} (CPUs {', '.join(map(str, cpus))}): run `autotune calibrate` and replay with --hw cpu, "
            f"or use a profile and mapping for at most {len(cpus)} cores"
        )
    _check_fits(prof, mapping, scale)
    ctx = ModelContext(prof, hw, batch_size)
    pred = predict(prof, hw, mapping, batch_size, ctx=ctx)
    placed = pred.mapping
    if data is None:
        data = prepare(profile, batch_size, warmup + n_batches, scale, seed, progress, logs)
    batches = data.batches[: warmup + n_batches]
    tasks, _ = build_tasks(prof, placed, data.tables, data.freq, batch_size, ctx.default_chunk_bytes)
    converted = converted_dtypes(profile)
    note = converted_note(converted)
    if note:  # only now, past every input check (a bad log), so an error stays one line
        say(note)
    names = prof.table_names

    def check(b: int, outs: list[np.ndarray]) -> None:
        for ti, out in enumerate(outs):
            want = data.reference(b, ti)
            if not np.array_equal(out, want):
                bad = int(np.count_nonzero(np.any(out != want, axis=1)))
                raise ReplayMismatch(
                    f"table {names[ti]!r}, batch {b}: the pooled output differs from the reference in {bad} of "
                    f"{batch_size} queries"
                )

    say(f"running {warmup} warm-up + {n_batches} timed batch(es) of {batch_size} on {hw.n_cores} pinned core(s)")
    warning = busy_warning(load1, len(usable_cpus()), "stop them for latencies the model can be judged against")
    if warning:
        say(warning)
    timings = run(tasks, batches, [t.dim for t in prof.tables], batch_size, hw.n_cores, check=check)
    res = _result(placed, pred, timings, tasks, names, batch_size, warmup, scale, cpus[: hw.n_cores])
    return replace(res, source=data.source, converted=converted)


def _result(
    placed: Mapping,
    pred: Prediction,
    timings: Timings,
    tasks: list,
    names: tuple[str, ...],
    batch_size: int,
    warmup: int,
    scale: float,
    cpus: list[int],
) -> ReplayResult:
    timed = slice(warmup, None)
    task_med = np.median(timings.task_s[timed], axis=0) if tasks else np.zeros(0)
    slowest: dict[str, float] = {n: 0.0 for n in names}
    for i, t in enumerate(tasks):
        slowest[names[t.table]] = max(slowest[names[t.table]], float(task_med[i]))
    return ReplayResult(
        mapping=placed,
        prediction=pred,
        latencies_s=tuple(float(x) for x in timings.latency_s[timed]),
        busy_s=timings.busy_s[timed],
        table_task_s=slowest,
        batch_size=batch_size,
        warmup=warmup,
        scale=scale,
        cpus=tuple(cpus),
    )
