"""Pinned worker processes: one per core of the mapping, each running its task list on every batch.

Workers are forked after the tables and batches are built, so they share them read-only; outputs go to
shared anonymous memory. Per batch: all workers and the parent meet at a barrier, each worker runs its
tasks (timed), then (if a table is sharded) a second barrier, and each worker merges its slice of the
queries of every sharded table (partial pooled vectors summed over shards), then a final barrier. A batch's
latency is the last worker's end minus the first worker's start, so the barrier's wake-up spread (launch),
the merge synchronisation and the merge itself are all in it.

Two passes over the batches. The timed pass runs them back to back into one set of output buffers, as a loaded
server runs them: nothing happens between batches but the barrier. The check pass runs them again with the same
workers and tasks, and the parent checks every batch's outputs against the reference between batches. (Checking
inside the timed pass left every table untouched for the length of the check: on the shared-cache VM this was
measured on, a 10 MB table left alone for 10 ms then gathered 2x slower. A fresh output buffer per batch, checked
after the last, wrote every batch's outputs to cold memory instead: whole-batch tasks 1.5x slower.
docs/latency-model.md.) The kernels are deterministic, so the checked pass computes what the timed pass did.
"""

from __future__ import annotations

import mmap
import multiprocessing as mp
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from autotune.errors import UserError
from autotune.replay.batches import TableBatch
from autotune.replay.kernels import PreparedTask, run_task
from autotune.replay.plan import localise

#: Seconds a barrier waits for the other workers before replay gives up (a worker died or hung).
BARRIER_TIMEOUT_S = 300.0


def usable_cpus() -> list[int]:
    """The CPUs this process may run on (its affinity mask), sorted."""
    return sorted(os.sched_getaffinity(0))


def shared_array(shape: tuple[int, ...], dtype: type | np.dtype) -> np.ndarray:
    """A zeroed array in anonymous shared memory (visible to forked children)."""
    nbytes = max(int(np.prod(shape)) * np.dtype(dtype).itemsize, 1)
    buf = mmap.mmap(-1, nbytes)
    return np.frombuffer(buf, dtype=dtype, count=int(np.prod(shape))).reshape(shape)


@dataclass(frozen=True)
class Timings:
    """Per batch and per worker: start, end of its tasks, end of its merge (perf_counter seconds); per task time."""

    start: np.ndarray  # (batches, P)
    tasks_end: np.ndarray  # (batches, P)
    end: np.ndarray  # (batches, P)
    task_s: np.ndarray  # (batches, tasks)

    @property
    def latency_s(self) -> np.ndarray:
        return self.end.max(axis=1) - self.start.min(axis=1)

    @property
    def busy_s(self) -> np.ndarray:
        """(batches, P) time each worker spent on its tasks."""
        return self.tasks_end - self.start


def _merge_jobs(
    tasks: list[PreparedTask], outs: list[np.ndarray], partials: dict[int, np.ndarray], n_workers: int, batch: int
) -> list[list[tuple[np.ndarray, list[np.ndarray]]]]:
    """Per worker: (output slice, partial slices to sum) of every sharded table replica over its query slice."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, t in enumerate(tasks):
        if t.shards > 1:
            groups.setdefault((t.table, t.replica), []).append(i)
    jobs: list[list[tuple[np.ndarray, list[np.ndarray]]]] = [[] for _ in range(n_workers)]
    for c in range(n_workers):
        ca, cb = c * batch // n_workers, (c + 1) * batch // n_workers
        for (ti, _r), members in groups.items():
            q0, q1 = tasks[members[0]].q0, tasks[members[0]].q1
            i0, i1 = max(q0, ca), min(q1, cb)
            if i0 < i1:
                jobs[c].append((outs[ti][i0:i1], [partials[i][i0 - q0 : i1 - q0] for i in members]))
    return jobs


def _merge(jobs: list[tuple[np.ndarray, list[np.ndarray]]]) -> None:
    for out, parts in jobs:
        np.add(parts[0], parts[1], out=out)
        for p in parts[2:]:
            out += p


def run(
    tasks: list[PreparedTask],
    batches: list[list[TableBatch]],
    dims: list[int],
    batch_size: int,
    n_workers: int,
    check: Callable[[int, list[np.ndarray]], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Timings:
    """Run every batch on `n_workers` pinned workers, timed; then again, `check(batch index, outputs)` after each."""
    cpus = usable_cpus()
    if n_workers > len(cpus):
        raise UserError(
            f"the mapping uses {n_workers} cores but this process may run on {len(cpus)} "
            f"(CPUs {', '.join(map(str, cpus))}); replay a mapping made for at most {len(cpus)} cores "
            "(`autotune calibrate` writes a cpu profile with this machine's core count)"
        )
    nb, nt = len(batches), len(tasks)
    outs = [shared_array((batch_size, d), np.float32) for d in dims]
    partials = {i: shared_array((t.q1 - t.q0, dims[t.table]), np.float32) for i, t in enumerate(tasks) if t.shards > 1}
    target = [partials[i] if t.shards > 1 else outs[t.table][t.q0 : t.q1] for i, t in enumerate(tasks)]
    has_merge = bool(partials)
    jobs = _merge_jobs(tasks, outs, partials, n_workers, batch_size)
    times = shared_array((nb, n_workers, 3), np.float64)
    task_s = shared_array((nb, max(nt, 1)), np.float64)
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(n_workers + 1, timeout=BARRIER_TIMEOUT_S)
    errors = ctx.SimpleQueue()

    def worker(c: int) -> None:
        try:
            os.sched_setaffinity(0, {cpus[c]})
            mine = [i for i, t in enumerate(tasks) if t.core == c]
            for i in mine:
                localise(tasks[i])
            for timed in (True, False) if check is not None else (True,):
                for b, batch in enumerate(batches):
                    barrier.wait()
                    t0 = time.perf_counter()
                    for i in mine:
                        s = time.perf_counter()
                        run_task(tasks[i], batch[tasks[i].table], target[i])
                        if timed:
                            task_s[b, i] = time.perf_counter() - s
                    t1 = time.perf_counter()
                    if has_merge:
                        barrier.wait()
                        _merge(jobs[c])
                    if timed:
                        times[b, c] = (t0, t1, time.perf_counter())
                    barrier.wait()
        except threading.BrokenBarrierError:
            pass
        except BaseException as exc:
            errors.put(f"core {c}: {type(exc).__name__}: {exc}")
            barrier.abort()
            raise SystemExit(1) from None

    procs = [ctx.Process(target=worker, args=(c,), daemon=True) for c in range(n_workers)]
    for p in procs:
        p.start()
    try:
        for b in range(nb):  # the timed pass: back to back
            barrier.wait()
            if has_merge:
                barrier.wait()
            barrier.wait()
            if progress is not None:
                progress(b)
        if check is not None:
            for b in range(nb):  # the check pass
                barrier.wait()
                if has_merge:
                    barrier.wait()
                barrier.wait()
                check(b, outs)
    except threading.BrokenBarrierError:
        message = errors.get() if not errors.empty() else "a worker stopped (killed, or out of memory?)"
        raise RuntimeError(f"replay failed: {message}") from None
    except BaseException:
        barrier.abort()  # release the workers waiting for the next batch
        raise
    finally:
        for p in procs:
            p.join(timeout=5 if check is None else 30)
            if p.is_alive():
                p.kill()
                p.join()
    return Timings(times[:, :, 0].copy(), times[:, :, 1].copy(), times[:, :, 2].copy(), task_s[:, :nt].copy())
