"""The hardware profile: the figures of one chip that the latency model needs, with their provenance.

A profile is a TOML file under `hwprofiles/` (bundled in the wheel); `autotune.hwload` reads and validates
it into these frozen types. Units are in the field names (`_bytes`, `_s`, `_hz`, `_per_cycle`) so a
formula reads as physics. Every figure in the TOML file carries a source and a confidence (published,
derived, guessed, measured); `HardwareProfile.provenance` keeps them, keyed by the figure's dotted path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

CONFIDENCES = ("published", "derived", "guessed", "measured")


@dataclass(frozen=True)
class LocalMemory:
    """An on-core memory a look-up strategy can use (Ascend L1 or UB, a GPU SM's shared memory, a CPU L2)."""

    name: str  # "L1", "UB", "SMEM", "L2" ... as the vendor calls it
    capacity_bytes: int  # usable by one core
    resident: bool  # may data stay here across batches (preloaded once), or must it be refilled per batch
    block_bytes: int  # transfer granularity into this memory (Ascend UB moves 32-byte blocks)
    read_bytes_per_cycle: float  # this memory -> compute unit (what an on-chip gather reads at)
    fill_from: str  # "GM" or the name of the local memory it is filled from (910A: L1 -> UB)
    fill_bytes_per_cycle: float  # rate at which it is filled from `fill_from`, per core


@dataclass(frozen=True)
class CoreType:
    """One kind of core of the chip and its per-core figures."""

    name: str  # "vector" (Ascend AIV), "aicore" (910A), "sm", "core"
    count: int
    memories: tuple[LocalMemory, ...]  # local memories, innermost last is not implied: look up by name
    gm_read_bytes_per_cycle: float  # per-core global-memory read rate of scattered rows (the GM strategy's fetches)
    gm_stream_bytes_per_cycle: float  # per-core sequential (streaming) read rate: *-UB chunks, fills from GM
    l2_read_bytes_per_cycle: float  # sustained per-core read rate when the data is in L2
    gm_latency_cycles: float  # issue-to-data latency of one global-memory read
    l2_latency_cycles: float  # issue-to-data latency of one L2 hit
    outstanding_requests: int  # reads one core can keep in flight (DMA queue depth / MLP)
    gm_block_bytes: int  # minimum global-memory transfer (DMA block, GPU sector, CPU line)
    gather_bytes_per_cycle: float  # vector gather of rows already in local memory
    pool_bytes_per_cycle: float  # vector accumulate (sum pooling) throughput
    pool_row_cycles: float  # fixed cost of accumulating one row beyond its bytes (one instruction issue / loop step)
    # the same for a task whose bags all have one length (one-hot or fixed multi-hot, unsharded): pooled as one
    # block reduction; on a CPU numpy's (bags, length, dim) sum, 1.5-2.5x cheaper than bags of mixed lengths
    block_pool_bytes_per_cycle: float
    block_pool_row_cycles: float
    route_cycles_per_id: float  # a sharded task keeping its own look-ups: test one id, compact it and its query
    route_cycles_per_query: float  # the same task, per query of its replica's slice: count, prefix sum, bag layout
    scan_cycles_per_id: float  # a *-UB task, per id per streamed chunk: compare with the chunk's rows, keep the hits
    sort_cycles_per_id: float  # de-duplication sort, per id per pass (ceil(log2 n) passes for n ids)
    pin_cycles_per_id: float  # GM with pinned rows: test an id against the sorted pinned set, per id per search step
    overlaps_fetch_compute: bool  # row fetches run under compute (double buffering); False: one after the other
    caches_gm_reads: bool  # a private cache keeps the lines a core read from GM (CPU L1/L2, GPU L1); Ascend DMA: no
    runs_lookups: bool = True  # whether embedding look-up tasks may be placed on this core type

    def memory(self, name: str) -> LocalMemory | None:
        for m in self.memories:
            if m.name == name:
                return m
        return None


@dataclass(frozen=True)
class Overheads:
    """Fixed costs that do not scale with data."""

    launch_s: float  # kernel launch / dispatch of one batch
    per_task_s: float  # set-up of one (table or shard) task on a core
    merge_sync_s: float  # one cross-core synchronisation before partial pooled vectors are merged
    per_chunk_s: float = 0.0  # set-up of one streamed chunk of a *-UB task (DMA issue and sync / loop step)
    per_route_s: float = 0.0  # set-up of one sharded task's routing pass (its vector ops / numpy calls)


@dataclass(frozen=True)
class HardwareProfile:
    """All figures of one chip. Chip-wide bandwidths cap the sum over cores."""

    name: str
    description: str
    family: str  # "ascend", "gpu", "cpu"
    clock_hz: float
    core_types: tuple[CoreType, ...]
    gm_capacity_bytes: int  # HBM / DRAM capacity
    gm_bandwidth_bytes_per_s: float  # chip-wide global-memory bandwidth
    l2_capacity_bytes: int  # shared last-level cache
    l2_bandwidth_bytes_per_s: float  # chip-wide L2 bandwidth
    l2_slices: int  # L2 slices (each before a memory channel) that addresses are interleaved over
    interleave_bytes: int  # granule of that interleave: every byte of one granule is served by one slice
    overheads: Overheads
    provenance: dict[str, tuple[str, str]] = field(default_factory=dict)  # figure path -> (source, confidence)
    path: Path | None = None

    @property
    def lookup_cores(self) -> CoreType:
        """The core type that runs embedding look-ups (the first with `runs_lookups`)."""
        for c in self.core_types:
            if c.runs_lookups:
                return c
        raise ValueError(f"hardware profile {self.name!r} has no core type that runs look-ups")

    @property
    def n_cores(self) -> int:
        return self.lookup_cores.count

    @property
    def slice_bytes_per_s(self) -> float:
        """Bandwidth of one L2 slice: the chip's L2 bandwidth is the sum over its slices."""
        return self.l2_bandwidth_bytes_per_s / self.l2_slices
