"""`autotune calibrate`: fit this machine's `cpu` hardware profile from micro-benchmarks of replay's own kernels.

The model's figures are fitted to what replay's numpy kernels achieve on this machine, because those are the
costs the model must rank. Each figure times one operation of replay on its own; numpy runs each call to
completion (it gathers every row, then pools them), so the profile says `overlaps_fetch_compute = false` and
the model adds the two instead of overlapping them. The per-core figures are timed on every core at once (the
median over cores): replay runs all cores together, and this machine's cores slow each other down when they
work at once. Row gathers and pooling are timed at a task's size (TASK_LOOKUPS ids, the rows of one replay
task), not at bulk sizes whose output arrays cost page faults that a task's do not.
- GM per-row cost (`np.take`) at 64-byte rows from a DRAM-sized table = gm_latency / outstanding (cycles);
  the latency comes from a dependent-load chase (DRAM minus cache), outstanding = latency / per-row cost.
- gm_read_bytes_per_cycle: random row gathers from DRAM at 64 B to 1 KiB rows, fitted (least squares on the
  log of the cost) to the model's per-row cost max(gm_latency / outstanding, row bytes / rate);
  gm_stream_bytes_per_cycle: the *-UB kernel's chunked streaming copy of a DRAM-sized table (about 3x the
  random-row rate here): the GM-UB stream and fills from DRAM.
- L3 ("l2" in the model): the same per-row cost on a table that fits the effective last-level cache; its
  capacity is the largest tested table whose per-row cost stays below halfway to DRAM.
- The private L2 (the core's local memory): capacity from sysfs; read rate from the L1 strategy's gathers of
  64 B to 1 KiB rows from a table a quarter of its size (the geometric mean of bytes / cycles).
- gather_bytes_per_cycle: `np.take` of cached rows. Pooling (`segment_sum` of a task's gathered rows) at
  64 B to 512 B rows and bags of 1 to 8 ids mixed with bags one id longer (as replay's batches mix them),
  fitted by least squares to pool_row_cycles + row bytes / pool_bytes_per_cycle (numpy's per-row reduction
  overhead: a 64 B row costs several times its bytes' worth); the same fit on bags that all have one length
  (block_pool_*: one block sum, as replay pools an unsharded one-hot or fixed multi-hot task).
- Id work, with replay's own code: routing (`kernels.route` of a 2-shard task on bags of 1 and 4 ids, 256 ids to a
  bulk batch), fitted by least squares to per_route_s + ids x route_cycles_per_id + queries x
  route_cycles_per_query (its dozen numpy calls cost as much as 500 ids: fitted per id alone at a bulk size, a
  one-hot 512-query routed task came out 40% cheaper than measured), scan_cycles_per_id
  (`kernels.gather_rows` of a *-UB task over 9 chunks minus 1 chunk, every id in the first, per id per
  extra chunk),
  sort_cycles_per_id (`np.unique(..., return_inverse=True)` as de-duplication runs it, per id per log2 pass),
  pin_cycles_per_id (`kernels.gather_rows` of a GM task with 256 pinned rows, half the ids hits, minus `np.take`
  of the same ids, per id per log2(256) = 8 search steps).
- per_task_s and launch_s: replay's own pinned workers running N tasks each of q look-ups (N = 2, 8; q = 64,
  512, 2048) on tables twice the private cache (a task starts cold, as in replay; batches timed back to back,
  then every batch checked, as replay runs them; the faster of two passes per point): least squares of the batch
  latency L = launch + N x per_task + N x q x c. launch_s is the intercept: the barrier's wake-up spread plus
  what the first task after waking pays (cold caches and TLB of a core that waited at the barrier);
  per_task_s the fixed cost of one more task (its numpy calls, its cold inputs). merge_sync_s: one barrier of
  the same workers running no tasks.
- per_chunk_s: the *-UB kernel over 64 one-row chunks minus over one, every id in the first: per extra chunk
  (its copy call, scan and compaction calls).
- Chip GM bandwidth: every core streaming at once. Core count: this process's CPU affinity.
Every figure is written with its measurement and confidence "measured" (or "published" for what the OS
reports), atomically, where `--hw cpu` finds it.
"""

from __future__ import annotations

import datetime
import os
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autotune.hardware import CoreType, HardwareProfile, LocalMemory, Overheads
from autotune.hwformat import validate_hardware
from autotune.replay.batches import TableBatch
from autotune.replay.kernels import PreparedTask, gather_rows, route, run_task, segment_sum
from autotune.replay.runner import run as run_workers
from autotune.replay.runner import usable_cpus

MiB = 1 << 20


@dataclass(frozen=True)
class Budget:
    """How big and how long the micro-benchmarks are (`quick` is for tests and CI)."""

    dram_bytes: int
    lookups: int
    repeats: int
    chase_steps: int

    @classmethod
    def of(cls, quick: bool) -> Budget:
        if quick:
            return cls(dram_bytes=64 * MiB, lookups=1 << 14, repeats=3, chase_steps=20_000)
        return cls(dram_bytes=1024 * MiB, lookups=1 << 16, repeats=7, chase_steps=200_000)


#: Look-ups of a row-gather or pooling micro-benchmark: the rows of one replay task (B / 2 queries x pooling 4).
TASK_LOOKUPS = 4096
#: Row sizes (bytes) of the DRAM and local row-gather micro-benchmarks.
GATHER_ROW_BYTES = (64, 128, 256, 512, 1024)
#: Row sizes (bytes) and bag lengths of the pooling micro-benchmarks.
POOL_ROW_BYTES = (64, 128, 256, 512)
POOL_BAGS = (1, 2, 4, 8)
#: Tasks per worker and look-ups per task of the task-overhead grid on pinned workers.
GRID_TASKS = (2, 8)
GRID_LOOKUPS = (64, 512, 2048)
#: Routing is timed on bags of these lengths (one-hot and multi-hot) and from ROUTE_SMALL_IDS ids to a bulk batch.
ROUTE_BAGS = (1, 4)
ROUTE_SMALL_IDS = 256


def _median_time(fn: Callable[[], Any], repeats: int) -> float:
    fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def _sysfs_cache(level: int) -> int | None:
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    for d in sorted(base.glob("index*")):
        try:
            if int((d / "level").read_text()) == level and (d / "type").read_text().strip() in ("Unified", "Data"):
                text = (d / "size").read_text().strip()
                mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1], 1)
                return int(text.rstrip("KMG")) * mult
        except (OSError, ValueError):
            continue
    return None


def _line_bytes() -> int:
    try:
        return int(Path("/sys/devices/system/cpu/cpu0/cache/index0/coherency_line_size").read_text())
    except (OSError, ValueError):
        return 64


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _clock_hz() -> float:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return float(line.split(":", 1)[1]) * 1e6
    except (OSError, ValueError):
        pass
    return 2.5e9


def _mem_total() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 1 << 34


#: Bag size of the pooling micro-benchmarks (a typical pooling factor).
POOL_BAG = 4


def row_cost_s(
    table: np.ndarray, lookups: int, repeats: int, rng: np.random.Generator, pooling: int = POOL_BAG
) -> float:
    """Seconds per look-up of the GM / L1 kernel (gather + sum pooling) on random rows of `table` (fresh ids
    every repetition, as `gather_cost_s`)."""
    ids = _fresh_ids(table.shape[0], lookups, repeats, rng)
    offsets = bag_offsets(lookups, pooling, rng)
    out = np.empty((len(offsets) - 1, table.shape[1]), dtype=np.float32)
    return _median_time(lambda: segment_sum(np.take(table, next(ids), axis=0), offsets, out), repeats) / lookups


def _fresh_ids(rows: int, lookups: int, repeats: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """One random id set per call of `_median_time` (its untimed first call included), drawn before timing.

    Timing the same ids again re-reads rows the first call left in the caches: on a 1 GiB table, 4096 random
    64 B rows cost 16 cycles each with the same ids and 97 with fresh ones (512 B rows: 147 against 242),
    and replay's batches never repeat their ids."""
    return iter([rng.integers(0, rows, lookups) for _ in range(repeats + 1)])


def bag_offsets(lookups: int, bag: int, rng: np.random.Generator) -> np.ndarray:
    """CSR offsets of `lookups` ids in bags of `bag` or `bag + 1` ids, in random order (the last one trimmed).

    This is how replay lays out a task's bags: a profile's pooling factor is rarely an integer, so its batches
    mix bags of floor(P) and floor(P) + 1 ids (`replay.batches`), and `segment_sum` then pools each length
    separately. Bags of a single length take its one-block fast path (priced apart: block_pool_*); timed
    alone they would price mixed-length pooling below what replay pays (measured: the fitted pooling rate
    2.4x too fast, every replayed mapping slower than predicted).
    """
    lengths = bag + rng.integers(0, 2, lookups // bag + 1)
    ends = np.minimum(np.cumsum(lengths), lookups)
    ends = ends[: int(np.searchsorted(ends, lookups)) + 1]
    return np.concatenate([[0], ends]).astype(np.int64)


def gather_cost_s(table: np.ndarray, lookups: int, repeats: int, rng: np.random.Generator) -> float:
    """Seconds per row of the GM / L1 kernel's gather alone (`np.take` of random rows of `table`, fresh ids each
    repetition)."""
    ids = _fresh_ids(table.shape[0], lookups, repeats, rng)
    return _median_time(lambda: np.take(table, next(ids), axis=0), repeats) / lookups


def pool_cost_s(
    row_bytes: int, lookups: int, repeats: int, bag: int = POOL_BAG, seed: int = 0, one_length: bool = False
) -> float:
    """Seconds per row of sum pooling (`segment_sum`, bags of `bag` or `bag + 1`) of `lookups` rows of `row_bytes`.

    `one_length`: every bag has `bag` ids, as a one-hot or fixed multi-hot table's unsharded task lays them out;
    `segment_sum` then sums them as one (bags, bag, dim) block (measured 1.5-2.5x cheaper per row)."""
    rows = np.ones((lookups, row_bytes // 4), np.float32)
    if one_length:
        offsets = np.arange(0, lookups // bag * bag + 1, bag, dtype=np.int64)
    else:
        offsets = bag_offsets(lookups, bag, np.random.default_rng(seed))
    out = np.empty((len(offsets) - 1, row_bytes // 4), np.float32)
    return _median_time(lambda: segment_sum(rows, offsets, out), repeats) / lookups


def _id_batch(lookups: int, rows: int, rng: np.random.Generator, bag: int = POOL_BAG) -> TableBatch:
    """A batch of `lookups` uniform ids over `rows` rows in bags of `bag` ids (CSR, as replay draws them)."""
    queries = lookups // bag
    offsets = np.arange(0, queries * bag + 1, bag, dtype=np.int64)
    qidx = np.repeat(np.arange(queries, dtype=np.int32), bag)
    return TableBatch(rng.integers(0, rows, queries * bag), offsets, qidx)


def route_points(lookups: int, repeats: int, rng: np.random.Generator) -> list[list[float]]:
    """Replay's routing step (shard 0 of 2 contiguous shards keeps its look-ups) timed over a grid of batch sizes
    and bag lengths: [ids, queries, seconds] per point. A routing pass costs a dozen numpy calls whatever its size,
    per id (mask, compaction) and per query (counts, prefix sums, the bag layout's sort): the grid separates them."""
    rows = 1 << 16
    task = _task(np.zeros((rows // 2, 16), np.float32), "GM")
    task.shards = 2
    out = []
    for bag in ROUTE_BAGS:
        for n in (ROUTE_SMALL_IDS, TASK_LOOKUPS, max(lookups, TASK_LOOKUPS)):
            batch = _id_batch(n, rows, rng, bag)
            task.q1 = len(batch.offsets) - 1
            t = _median_time(lambda batch=batch: route(task, batch), repeats)
            out.append([float(len(batch.rows)), float(task.q1), t])
    return out


def scan_s_per_id(lookups: int, repeats: int, rng: np.random.Generator) -> float:
    """Seconds per id per chunk of the *-UB scan: a small cached shard in 9 chunks minus the same ids against 1.

    Every id falls in the first chunk, so the 8 extra chunks cost their (small) copy and a scan of every id
    that keeps none: the scan alone, not the gather of the hits.
    """
    chunk = 64
    ids = rng.integers(0, chunk, lookups)
    many = _task(np.zeros((9 * chunk, 16), np.float32), "GM-UB", chunk)
    one = _task(np.zeros((chunk, 16), np.float32), "GM-UB", chunk)
    t_many = _median_time(lambda: gather_rows(many, ids), repeats)
    t_one = _median_time(lambda: gather_rows(one, ids), repeats)
    return max(t_many - t_one, 1e-12 * lookups) / (8 * lookups)


def sort_s_per_id_pass(lookups: int, repeats: int, rng: np.random.Generator) -> float:
    """Seconds per id per pass of de-duplication's sort (`np.unique` with the inverse, as replay runs it)."""
    ids = rng.integers(0, 1 << 20, lookups)
    passes = max(1.0, float(np.ceil(np.log2(max(lookups, 2)))))
    return _median_time(lambda: np.unique(ids, return_inverse=True), repeats) / (lookups * passes)


#: Pinned rows of the pinned-set test micro-benchmark (8 binary-search steps).
PIN_ROWS = 256


def pin_s_per_id_step(lookups: int, repeats: int, rng: np.random.Generator) -> float:
    """Seconds per id per search step of replay's pinned-row test: a GM task with PIN_ROWS pinned rows (half the
    ids hit) minus a plain gather of the same ids, on a cached table so the rows cost the same both ways."""
    src = np.zeros((4096, 16), np.float32)
    task = _task(src, "GM")
    task.hot_ids = np.sort(rng.choice(src.shape[0], PIN_ROWS, replace=False)).astype(np.int64)
    task.hot_data = np.take(src, task.hot_ids, axis=0)
    ids = rng.integers(0, src.shape[0], lookups)
    ids[: lookups // 2] = rng.choice(task.hot_ids, lookups // 2)
    t_pin = _median_time(lambda: gather_rows(task, ids), repeats)
    t_take = _median_time(lambda: np.take(src, ids, axis=0), repeats)
    return max(t_pin - t_take, 1e-12 * lookups) / (lookups * np.log2(PIN_ROWS))


def chase_s(arr: np.ndarray, steps: int) -> float:
    """Seconds per step of a dependent-load chase through the random cycle `arr` (Python loop included)."""
    i = 0
    t = time.perf_counter()
    for _ in range(steps):
        i = arr[i]
    return (time.perf_counter() - t) / steps


def _cycle(n: int, rng: np.random.Generator) -> np.ndarray:
    perm = rng.permutation(n)
    nxt = np.empty(n, dtype=np.int64)
    nxt[perm] = np.roll(perm, -1)
    return nxt


def stream_s_per_byte(table: np.ndarray, chunk_bytes: int, repeats: int) -> float:
    """Seconds per byte of the *-UB kernel's chunked streaming copy (no look-ups) of `table`."""
    rows = table.shape[0]
    chunk_rows = max(1, chunk_bytes // (table.shape[1] * 4))
    task = _task(table, "GM-UB", chunk_rows)
    batch = TableBatch(np.empty(0, np.int64), np.zeros(2, np.int64), np.empty(0, np.int32))
    out = np.empty((1, table.shape[1]), np.float32)
    return _median_time(lambda: run_task(task, batch, out), repeats) / (rows * table.shape[1] * 4)


def _task(src: np.ndarray, strategy: str, chunk_rows: int = 1) -> PreparedTask:
    return PreparedTask(
        table=0, replica=0, shard=0, core=0, strategy=strategy, dedup=False, q0=0, q1=1, shards=1, lo=0,
        hi=src.shape[0], shard_of=None, local=None, src=src, hot_ids=np.empty(0, np.int64),
        hot_data=np.empty((0, src.shape[1]), np.float32), chunk_rows=chunk_rows,
        buf=np.zeros((min(chunk_rows, src.shape[0]), src.shape[1]), np.float32) if strategy.endswith("UB") else None,
    )  # fmt: skip


def _parallel_stream_bps(table: np.ndarray, chunk_bytes: int, cpus: list[int], repeats: int) -> float:
    """Chip-wide bytes per second with every CPU streaming its own part of `table` at once."""
    import multiprocessing as mp

    P = len(cpus)
    parts = np.array_split(table, P)
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(P + 1, timeout=120)

    def work(c: int) -> None:
        os.sched_setaffinity(0, {cpus[c]})
        task = _task(parts[c], "GM-UB", max(1, chunk_bytes // (table.shape[1] * 4)))
        batch = TableBatch(np.empty(0, np.int64), np.zeros(2, np.int64), np.empty(0, np.int32))
        out = np.empty((1, table.shape[1]), np.float32)
        for _ in range(repeats + 1):
            barrier.wait()
            run_task(task, batch, out)
            barrier.wait()

    procs = [ctx.Process(target=work, args=(c,), daemon=True) for c in range(P)]
    for p in procs:
        p.start()
    ts = []
    for _ in range(repeats + 1):
        barrier.wait()
        t = time.perf_counter()
        barrier.wait()
        ts.append(time.perf_counter() - t)
    for p in procs:
        p.join(timeout=30)
    return table.nbytes / float(np.median(ts[1:]))


def chunk_s(repeats: int, rng: np.random.Generator) -> float:
    """Seconds per extra chunk of the *-UB kernel: 64 one-row chunks minus one, 16 ids all in the first chunk."""
    ids = rng.integers(0, 1, 16)
    many = _task(np.zeros((64, 16), np.float32), "GM-UB", 1)
    one = _task(np.zeros((1, 16), np.float32), "GM-UB", 1)
    t_many = _median_time(lambda: gather_rows(many, ids), repeats)
    t_one = _median_time(lambda: gather_rows(one, ids), repeats)
    return max(t_many - t_one, 0.0) / 63


def _barrier_s(n_workers: int, repeats: int) -> float:
    """Latency of a batch of no tasks on `n_workers` pinned workers: one barrier round."""
    batches: list[list[TableBatch]] = [[] for _ in range(repeats * 4 + 2)]
    t = run_workers([], batches, [], 1, n_workers)
    return float(np.median(t.latency_s[2:]))


def task_grid(cpus: list[int], repeats: int, rng: np.random.Generator, table_bytes: int) -> list[list[float]]:
    """[tasks per worker N, look-ups per task q, median batch latency s] of replay's runner over the grid.

    Every worker runs N GM tasks of its own tables (twice the core's private cache each: `table_bytes`, rows of
    32 float32, bags of 1) over a batch of q queries, so each task starts as a task of replay does: with its
    inputs and the code it runs evicted by the task before it. The outputs are checked against a plain sum
    after the timed pass, as replay checks them (`runner.run`).
    """
    from autotune.replay.reference import reference_pool

    P = len(cpus)
    rows = max(table_bytes // 128, 256)
    out = []
    for n_tasks in GRID_TASKS:
        T = P * n_tasks
        tables = [rng.integers(-8, 9, (rows, 32), dtype=np.int8).astype(np.float32) for _ in range(T)]
        for q in GRID_LOOKUPS:
            tasks = []
            for i, src in enumerate(tables):
                t = _task(src, "GM")
                t.table, t.core, t.q1 = i, i // n_tasks, q
                tasks.append(t)
            offsets, qidx = np.arange(q + 1, dtype=np.int64), np.arange(q, dtype=np.int32)
            batches = [
                [TableBatch(rng.integers(0, rows, q), offsets, qidx) for _ in range(T)] for _ in range(repeats * 3 + 2)
            ]

            def check(b: int, outs: list[np.ndarray], batches=batches, tables=tables, q=q) -> None:
                for i, o in enumerate(outs):
                    if not np.array_equal(o, reference_pool(tables[i], batches[b][i], q)):
                        raise RuntimeError(f"calibrate: task grid output {i} differs from the reference")

            t = run_workers(tasks, batches, [32] * T, q, P, check=check)
            out.append([float(n_tasks), float(q), float(np.median(t.latency_s[2:]))])
    return out


def core_figures(b: Budget, big: np.ndarray, near: np.ndarray, far: np.ndarray, l2: int, seed: int) -> dict[str, Any]:
    """The per-core micro-benchmarks of one core (seconds): row gathers, pooling, id work, streaming, chases."""
    rng = np.random.default_rng([seed, 11])
    m: dict[str, Any] = {}
    sizes = sorted({max(l2 // 4, 64 * 1024), *(s * MiB for s in (8, 32, 128, 512) if s * MiB < b.dram_bytes)})
    sizes.append(b.dram_bytes)
    reps = b.repeats * 5  # task-sized timings are short: more of them
    m["gather_by_size_64B"] = {s: gather_cost_s(big[: s // 4].reshape(-1, 16), TASK_LOOKUPS, reps, rng) for s in sizes}
    m["gather_dram"] = {rb: gather_cost_s(big.reshape(-1, rb // 4), TASK_LOOKUPS, reps, rng) for rb in GATHER_ROW_BYTES}
    m["gather_pool_dram_64B"] = row_cost_s(big.reshape(-1, 16), TASK_LOOKUPS, reps, rng)
    small = big[: max(l2 // 16, 16 * 1024)]  # a quarter of the private L2, as float32 elements
    m["gather_l2"] = {rb: gather_cost_s(small.reshape(-1, rb // 4), TASK_LOOKUPS, reps, rng) for rb in GATHER_ROW_BYTES}
    cached = np.ones((512, 64), dtype=np.float32)  # 128 KiB: cache-resident
    ids = rng.integers(0, 512, b.lookups)
    m["take_cached_s_per_byte"] = _median_time(lambda: np.take(cached, ids, axis=0), b.repeats) / (b.lookups * 256)
    m["pool_s_per_row"] = {
        rb: {bag: pool_cost_s(rb, TASK_LOOKUPS, reps, bag) for bag in POOL_BAGS} for rb in POOL_ROW_BYTES
    }
    m["block_pool_s_per_row"] = {
        rb: {bag: pool_cost_s(rb, TASK_LOOKUPS, reps, bag, one_length=True) for bag in POOL_BAGS}
        for rb in POOL_ROW_BYTES
    }
    m["route_points"] = route_points(b.lookups, b.repeats * 5, rng)
    m["scan_s_per_id"] = scan_s_per_id(b.lookups, b.repeats, rng)
    m["sort_s_per_id_pass"] = sort_s_per_id_pass(b.lookups, b.repeats, rng)
    m["pin_s_per_id_step"] = pin_s_per_id_step(b.lookups, b.repeats, rng)
    m["stream_s_per_byte"] = stream_s_per_byte(big.reshape(-1, 64), chunk_bytes(l2), b.repeats)
    one = _task(small.reshape(-1, 16), "GM")
    batch = TableBatch(np.zeros(1, np.int64), np.array([0, 1], np.int64), np.zeros(1, np.int32))
    out1 = np.empty((1, 16), np.float32)
    m["one_task_s"] = _median_time(lambda: run_task(one, batch, out1), b.repeats * 20)
    m["chunk_s"] = chunk_s(b.repeats * 20, rng)
    m["chase_near_s"] = chase_s(near, b.chase_steps)
    m["chase_far_s"] = chase_s(far, b.chase_steps)
    return m


def chunk_bytes(l2: int) -> int:
    """The *-UB chunk of the streaming micro-benchmarks: a quarter of the private L2 (the model's default)."""
    return max(l2 // 4, 4096)


def on_every_core(cpus: list[int], fn: Callable[[int], dict[str, Any]]) -> list[dict[str, Any]]:
    """`fn(core index)` run at the same time on every CPU, each in a forked process pinned to its CPU."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(len(cpus), timeout=600)
    pipes = [ctx.Pipe(duplex=False) for _ in cpus]

    def work(c: int) -> None:
        os.sched_setaffinity(0, {cpus[c]})
        barrier.wait()
        pipes[c][1].send(fn(c))

    procs = [ctx.Process(target=work, args=(c,), daemon=True) for c in range(len(cpus))]
    for p in procs:
        p.start()
    for _, send in pipes:  # only the children write: a dead child's pipe must read as end-of-file, not hang
        send.close()
    try:
        return [recv.recv() for recv, _ in pipes]
    except EOFError:
        raise RuntimeError("calibrate: a micro-benchmark worker died (out of memory?)") from None
    finally:
        for p in procs:
            p.join(timeout=30)


def median_figures(per_core: list[Any]) -> Any:
    """Element-wise median of the cores' (nested) figures."""
    first = per_core[0]
    if isinstance(first, dict):
        return {k: median_figures([d[k] for d in per_core]) for k in first}
    if isinstance(first, list):
        return [median_figures([d[i] for d in per_core]) for i in range(len(first))]
    return float(np.median(per_core))


#: How a --quick profile says so in its description and in every figure's source (it is still "measured").
QUICK_MARK = " --quick"
QUICK_WHY = "quick: small tables and few repeats, rough figures"


def measure(quick: bool = False, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Every micro-benchmark, in seconds and bytes (the raw facts the fit reads).

    The per-core figures are timed on every core at once (the median over cores is kept): replay and a serving
    process run every core together, and this machine's cores slow each other down when they do (shared
    caches, memory controllers, or a host that places two vCPUs on one physical core).
    """
    say = progress or (lambda _m: None)
    b = Budget.of(quick)
    rng = np.random.default_rng(0)
    cpus = usable_cpus()
    l2 = _sysfs_cache(2) or 1 * MiB
    l3 = _sysfs_cache(3) or 8 * MiB
    m: dict[str, Any] = {"cpus": cpus, "l2_bytes": l2, "l3_bytes": l3, "line_bytes": _line_bytes(), "quick": quick}
    m["load_average_1min"] = os.getloadavg()[0]  # before any of our work: what other jobs add
    m["clock_hz"], m["cpu_model"], m["mem_total"] = _clock_hz(), _cpu_model(), _mem_total()
    say(f"allocating a {b.dram_bytes // MiB} MiB table (DRAM-sized) and the latency chase cycles")
    big = np.ones(b.dram_bytes // 4, dtype=np.float32)
    near = _cycle(4096, rng)
    far = _cycle(b.dram_bytes // 8, rng) if not quick else _cycle(8 * MiB, rng)
    say(
        f"per-core micro-benchmarks on all {len(cpus)} cores at once: row gathers by table and row size, pooling, "
        "routing, chunk scans, sorts, streaming, latency chases"
    )
    per_core = on_every_core(cpus, lambda c: core_figures(b, big, near, far, l2, c))
    m.update(median_figures(per_core))
    m["per_core_figures"] = len(per_core)
    chunk = chunk_bytes(l2)
    m["chunk_bytes"] = chunk
    say(f"every core streaming at once ({len(cpus)} cores); worker launch")
    m["chip_stream_bps"] = _parallel_stream_bps(big.reshape(-1, 64), chunk, cpus, max(b.repeats // 2, 2))
    m["barrier_s"] = _barrier_s(len(cpus), b.repeats)
    say(f"task overheads on {len(cpus)} pinned workers ({len(GRID_TASKS) * len(GRID_LOOKUPS)} runs)")
    # two passes, the faster of each point: a shared machine's other jobs only ever add time
    passes = [task_grid(cpus, b.repeats, rng, 2 * l2) for _ in range(1 if quick else 2)]
    m["task_grid"] = [[n, q, min(p[i][2] for p in passes)] for i, (n, q, _) in enumerate(passes[0])]
    return m


def fit_rate(cycles_by_bytes: dict[int, float], floor: float) -> float:
    """The rate R (B/cycle) whose per-row cost max(floor, bytes / R) best fits the measured cycles per row.

    Least squares on the logarithm (every row size counts alike, whatever its cost): for the rows where the
    bandwidth term binds, the best R is the geometric mean of bytes / cycles; each split of the sizes into
    floor-bound (small) and bandwidth-bound (large) rows is tried and the best fit kept.
    """
    pts = sorted((float(b), float(c)) for b, c in cycles_by_bytes.items())
    best: tuple[float, float] | None = None
    for j in range(len(pts)):
        bound = pts[j:]  # the larger rows: bandwidth-bound
        rate = float(np.exp(np.mean([np.log(b / c) for b, c in bound])))
        err = sum((np.log(max(floor, b / rate)) - np.log(c)) ** 2 for b, c in pts)
        if best is None or err < best[0] - 1e-15:
            best = (err, rate)
    assert best is not None
    return best[1]


def fit_pooling(cycles: dict[int, dict[int, float]]) -> tuple[float, float]:
    """(pool_row_cycles, pool_bytes_per_cycle): least squares of cycles per row = a + row bytes / rate over every
    (row size, bag) point."""
    xs = np.array([float(rb) for rb, bags in cycles.items() for _ in bags])
    ys = np.array([float(c) for bags in cycles.values() for c in bags.values()])
    slope, intercept = np.polyfit(xs, ys, 1)
    rate = 1.0 / slope if slope > 0 else float(xs.max() / ys.max())
    return max(float(intercept), 0.0), float(rate)


def fit_task_grid(grid: list[list[float]]) -> tuple[float, float]:
    """(launch_s, per_task_s): least squares of batch latency L = launch + N x per_task + N x q x c over the grid
    of [N tasks per worker, q look-ups per task, L seconds]."""
    g = np.array(grid, dtype=float)
    A = np.column_stack([np.ones(len(g)), g[:, 0], g[:, 0] * g[:, 1]])
    launch, per_task, _ = np.linalg.lstsq(A, g[:, 2], rcond=None)[0]
    return max(float(launch), 0.0), max(float(per_task), 0.0)


def fit_route(points: list[list[float]]) -> tuple[float, float, float]:
    """(per_route_s, seconds per id, seconds per query): least squares of a routing pass's time
    t = per_route + ids x c_id + queries x c_query over [ids, queries, t] points (none below zero), on relative
    errors: the points span 256 to 65k ids, and small tasks (what a batch of 512 routes) must count as much."""
    g = np.array(points, dtype=float)
    A = np.column_stack([np.ones(len(g)), g[:, 0], g[:, 1]]) / g[:, 2:3]
    fixed, per_id, per_query = np.linalg.lstsq(A, np.ones(len(g)), rcond=None)[0]
    return max(float(fixed), 0.0), max(float(per_id), 0.0), max(float(per_query), 0.0)


def fit(m: dict[str, Any], when: str | None = None) -> HardwareProfile:
    """The `cpu` hardware profile whose model figures reproduce the measurements `m`."""
    clock = float(m["clock_hz"])
    cyc = lambda s: s * clock  # noqa: E731
    P = len(m["cpus"])
    when = when or datetime.date.today().isoformat()
    quick = bool(m.get("quick", False))
    src = f"autotune calibrate{QUICK_MARK if quick else ''} {when} on {m['cpu_model']}"
    line = int(m["line_bytes"])
    by_size = {int(k): float(v) for k, v in m["gather_by_size_64B"].items()}
    sizes = sorted(by_size)
    c_l2p, c_dram = by_size[sizes[0]], by_size[sizes[-1]]
    half = c_l2p + 0.5 * max(c_dram - c_l2p, 0.0)
    below = [s for s in sizes[1:-1] if by_size[s] <= half]
    l3_eff = max(below) if below else min(int(m["l3_bytes"]), sizes[-1] // 2)
    c_l3 = by_size[max(below)] if below else 0.5 * (c_l2p + c_dram)
    gm_row = cyc(float(m["gather_dram"][64]))  # cycles per 64-byte row gathered from DRAM
    l3_row = min(cyc(c_l3), gm_row)
    stream_rate = 1.0 / cyc(float(m["stream_s_per_byte"]))  # B/cycle
    lat_meas = max(cyc(float(m["chase_far_s"]) - float(m["chase_near_s"])), gm_row)
    outstanding = max(1, round(lat_meas / gm_row))
    gm_lat = outstanding * gm_row
    l2_lat = outstanding * l3_row
    # random-row bandwidth over the measured row sizes (the GM per-row cost's bandwidth term), L3 scaled by the
    # 64 B ratio; the local memory's read rate (no latency floor: rows are in the core's cache) the same way
    gm_rate = fit_rate({int(k): cyc(float(v)) for k, v in m["gather_dram"].items()}, gm_row)
    l2_rate = gm_rate * gm_row / l3_row
    local_rate = fit_rate({int(k): cyc(float(v)) for k, v in m["gather_l2"].items()}, 0.0)
    gather_rate = 1.0 / cyc(float(m["take_cached_s_per_byte"]))
    # pooling per row = pool_row_cycles + row bytes / pool_bytes_per_cycle over every (row size, bag) point
    pool = {int(rb): {int(bag): cyc(float(s)) for bag, s in bags.items()} for rb, bags in m["pool_s_per_row"].items()}
    pool_row, pool_rate = fit_pooling(pool)
    # the same fit on bags that all have one length (one block reduction per task)
    block = {
        int(rb): {int(bag): cyc(float(s)) for bag, s in bags.items()} for rb, bags in m["block_pool_s_per_row"].items()
    }
    block_row, block_rate = fit_pooling(block)
    launch, per_task = fit_task_grid(m["task_grid"])
    per_route, route_id_s, route_query_s = fit_route(m["route_points"])
    route_c, route_q = cyc(route_id_s), cyc(route_query_s)
    scan_c, sort_c, pin_c = (cyc(float(m[k])) for k in ("scan_s_per_id", "sort_s_per_id_pass", "pin_s_per_id_step"))
    # numpy gathers every row, then pools them: the combined kernel costs the sum of the two, not the larger
    both, gather_64, pool_64 = cyc(float(m["gather_pool_dram_64B"])), gm_row, pool[64][POOL_BAG]
    chip_gm = max(float(m["chip_stream_bps"]), stream_rate * clock, gm_rate * clock)
    chip_l2 = P * l2_rate * clock
    l2_bytes = int(m["l2_bytes"])
    prov = {
        "clock_hz": (f"/proc/cpuinfo 'cpu MHz' ({src}); per-cycle rates below are measured seconds x this", "measured"),
        "chip.gm_capacity_bytes": (f"/proc/meminfo MemTotal ({src})", "published"),
        "chip.gm_bandwidth_bytes_per_s": (f"{P} pinned cores streaming chunks at once ({src})", "measured"),
        "chip.l2_capacity_bytes": (
            f"effective last-level cache: largest tested table whose random 64 B row gather stays below halfway "
            f"to DRAM cost (sysfs L3 {int(m['l3_bytes']) // MiB} MiB, shared) ({src})",
            "measured",
        ),
        "chip.l2_bandwidth_bytes_per_s": (f"{P} cores x l2_read_bytes_per_cycle x clock_hz", "derived"),
        "chip.l2_slices": ("one last-level-cache slice per core (ring / mesh parts)", "derived"),
        "chip.interleave_bytes": ("the cache line: lines are hashed over the last-level-cache slices", "derived"),
        "core_types.core.caches_gm_reads": ("a row read again by a core hits its private L1/L2", "published"),
        "overheads.launch_s": (
            f"replay's {P} pinned workers running N tasks of q look-ups (N in {GRID_TASKS}, q in {GRID_LOOKUPS}): "
            f"intercept of the least-squares batch latency launch + N x per_task + N x q x c: barrier wake-up "
            f"spread and the first task's cold start after the core idled ({src})",
            "measured",
        ),
        "overheads.per_task_s": (
            f"the same fit's cost of one more task per worker (numpy call set-up of route, gather and pooling, "
            f"cold inputs); a one-look-up task alone in a warm loop: {float(m['one_task_s']) * 1e6:.1f} us ({src})",
            "measured",
        ),
        "overheads.merge_sync_s": (f"a batch of no tasks on {P} pinned workers: one barrier round ({src})", "measured"),
        "overheads.per_chunk_s": (
            f"replay's *-UB gather over 64 one-row chunks minus over 1, 16 ids all in the first: per extra chunk "
            f"(copy, scan and compaction calls) ({src})",
            "measured",
        ),
        "core_types.core.count": (f"CPUs in this process's affinity mask: {m['cpus']} ({src})", "measured"),
        "core_types.core.runs_lookups": ("every core gathers and pools rows", "published"),
        "core_types.core.gm_read_bytes_per_cycle": (
            f"random row gathers (np.take, {TASK_LOOKUPS} rows) of {', '.join(map(str, GATHER_ROW_BYTES))} B rows "
            f"from a DRAM-sized table, every core at once (median over cores): least squares (log) of "
            f"max(64 B row cost, bytes / rate) ({src})",
            "measured",
        ),
        "core_types.core.gm_stream_bytes_per_cycle": (
            f"the *-UB kernel's chunked streaming copy of a DRAM-sized table, every core at once (median over cores) "
            f"({src})",
            "measured",
        ),
        "core_types.core.l2_read_bytes_per_cycle": (
            f"gm_read_bytes_per_cycle scaled by the DRAM / L3 ratio of the 64 B row gather cost ({src})",
            "measured",
        ),
        "core_types.core.gm_latency_cycles": (
            f"dependent-load chase, DRAM minus cache ({cyc(float(m['chase_far_s']) - float(m['chase_near_s'])):.0f} "
            f"cycles), rounded to outstanding x the 64 B row gather cost ({src})",
            "measured",
        ),
        "core_types.core.l2_latency_cycles": (
            f"outstanding x the 64 B row gather cost on an L3-sized table ({src})",
            "measured",
        ),
        "core_types.core.outstanding_requests": (
            "gm_latency_cycles / (64 B row gather cost from DRAM), rounded",
            "measured",
        ),
        "core_types.core.gm_block_bytes": ("sysfs coherency_line_size: the cache line", "published"),
        "core_types.core.gather_bytes_per_cycle": (f"np.take of cache-resident 256 B rows ({src})", "measured"),
        "core_types.core.pool_bytes_per_cycle": (
            f"segment_sum (sum pooling) of {TASK_LOOKUPS} gathered rows of {', '.join(map(str, POOL_ROW_BYTES))} B in "
            f"bags of {', '.join(map(str, POOL_BAGS))}: least-squares slope of cycles per row over row bytes "
            f"(64 B rows, bags of {POOL_BAG}: {pool[64][POOL_BAG]:.0f} cycles) ({src})",
            "measured",
        ),
        "core_types.core.pool_row_cycles": (
            f"segment_sum per-row intercept at 0 B of the same fit: numpy's per-row reduction overhead ({src})",
            "measured",
        ),
        "core_types.core.block_pool_bytes_per_cycle": (
            f"segment_sum of the same rows in bags that all have one length ({', '.join(map(str, POOL_BAGS))} ids; "
            f"one (bags, length, dim) block sum, as replay pools an unsharded task of a one-hot or fixed multi-hot "
            f"table): least-squares slope (512 B rows, bags of {POOL_BAG}: {block[512][POOL_BAG]:.0f} cycles against "
            f"{pool[512][POOL_BAG]:.0f} on mixed lengths) ({src})",
            "measured",
        ),
        "core_types.core.block_pool_row_cycles": (
            f"per-row intercept at 0 B of the same one-length fit ({src})",
            "measured",
        ),
        "core_types.core.route_cycles_per_id": (
            f"replay's route() of a 2-shard contiguous task on bags of {' and '.join(map(str, ROUTE_BAGS))} ids, "
            f"{ROUTE_SMALL_IDS} ids to a bulk batch: least-squares slope per id of t = per_route + ids x c_id + "
            f"queries x c_query (mask, compaction of ids and query indices) ({src})",
            "measured",
        ),
        "core_types.core.route_cycles_per_query": (
            f"the same fit's slope per query (per-query counts, prefix sums, the bag layout's sort) ({src})",
            "measured",
        ),
        "overheads.per_route_s": (
            f"the same fit's intercept: set-up of one routing pass (its dozen numpy calls) ({src})",
            "measured",
        ),
        "core_types.core.scan_cycles_per_id": (
            f"replay's *-UB gather_rows over 9 cached chunks minus over 1, every id in the first: per id per "
            f"extra chunk ({src})",
            "measured",
        ),
        "core_types.core.sort_cycles_per_id": (
            f"np.unique(ids, return_inverse=True) as replay's de-duplication runs it, per id per ceil(log2 n) pass "
            f"({src})",
            "measured",
        ),
        "core_types.core.pin_cycles_per_id": (
            f"replay's GM gather_rows with {PIN_ROWS} pinned rows (np.searchsorted, hit mask, two gathers into "
            f"place), half the ids hits, minus np.take of the same ids: per id per log2({PIN_ROWS}) step ({src})",
            "measured",
        ),
        "core_types.core.overlaps_fetch_compute": (
            f"numpy runs each call to completion: gather + pool of 64 B DRAM rows took {both:.0f} cycles per row, "
            f"gather alone {gather_64:.0f} + pooling alone {pool_64:.0f} = {gather_64 + pool_64:.0f} ({src})",
            "measured",
        ),
        "core_types.core.memories.L2.capacity_bytes": ("sysfs: private L2 of one core", "published"),
        "core_types.core.memories.L2.resident": (
            "a cache: a table that fits stays warm when the core runs only its tasks",
            "derived",
        ),
        "core_types.core.memories.L2.block_bytes": ("sysfs coherency_line_size: the cache line", "published"),
        "core_types.core.memories.L2.read_bytes_per_cycle": (
            f"L1 strategy: random row gathers (np.take, {TASK_LOOKUPS} rows) of "
            f"{', '.join(map(str, GATHER_ROW_BYTES))} B rows on a table a quarter of the L2: geometric mean of "
            f"bytes / cycles ({src})",
            "measured",
        ),
        "core_types.core.memories.L2.fill_bytes_per_cycle": (
            f"chunked streaming copy of a DRAM-sized table, every core at once (median over cores) ({src})",
            "measured",
        ),
    }
    mem = LocalMemory("L2", l2_bytes, True, line, local_rate, "GM", stream_rate)
    core = CoreType(
        name="core",
        count=P,
        memories=(mem,),
        gm_read_bytes_per_cycle=gm_rate,
        gm_stream_bytes_per_cycle=stream_rate,
        l2_read_bytes_per_cycle=l2_rate,
        gm_latency_cycles=gm_lat,
        l2_latency_cycles=l2_lat,
        outstanding_requests=outstanding,
        gm_block_bytes=line,
        gather_bytes_per_cycle=gather_rate,
        pool_bytes_per_cycle=pool_rate,
        pool_row_cycles=pool_row,
        block_pool_bytes_per_cycle=block_rate,
        block_pool_row_cycles=block_row,
        route_cycles_per_id=route_c,
        route_cycles_per_query=route_q,
        scan_cycles_per_id=scan_c,
        sort_cycles_per_id=sort_c,
        pin_cycles_per_id=pin_c,
        overlaps_fetch_compute=False,
        caches_gm_reads=True,
    )
    hw = HardwareProfile(
        name="cpu",
        description=(
            f"This machine: {P} x {m['cpu_model']}, fitted by autotune calibrate{QUICK_MARK if quick else ''} on {when}"
            + (f" ({QUICK_WHY})" if quick else "")
            + (f" (load average {float(m['load_average_1min']):.2f} at the start)" if "load_average_1min" in m else "")
        ),
        family="cpu",
        clock_hz=clock,
        core_types=(core,),
        gm_capacity_bytes=int(m["mem_total"]),
        gm_bandwidth_bytes_per_s=chip_gm,
        l2_capacity_bytes=int(min(l3_eff, int(m["mem_total"]) - 1)),
        l2_bandwidth_bytes_per_s=chip_l2,
        l2_slices=P,
        interleave_bytes=line,
        overheads=Overheads(
            launch_s=launch,
            per_task_s=per_task,
            merge_sync_s=float(m["barrier_s"]),
            per_chunk_s=float(m["chunk_s"]),
            per_route_s=per_route,
        ),
        provenance=prov,
    )
    validate_hardware(hw, "calibrated cpu profile")
    return hw
