"""What the model precomputes once per (workload, chip, batch size): per-table figures and the chip's rates.

`ModelContext` is the search's handle: build it once, then evaluate thousands of mappings against it. It
caches the profile-derived quantities and the cost of every (table, knobs) pair it has seen, because a
table's cost depends only on its own knobs (see `strategies.py`), never on the rest of the mapping.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autotune.errors import UserError
from autotune.hardware import CoreType, HardwareProfile, LocalMemory
from autotune.model.costbook import CostBook
from autotune.model.hotspot import HotGeometry, hot_geometry, hot_rows, row_reads, shard_hot_bytes
from autotune.workload import TableProfile, WorkloadProfile

#: Bytes per element of a pooled (accumulated) vector: fp32 accumulators.
ACC_BYTES = 4
#: Bytes per row of a balanced shard's id remap table (int32 new row index).
REMAP_BYTES = 4


@dataclass(frozen=True)
class MemoryRoles:
    """Which local memory plays which role in the strategies.

    `staging` ("UB"): where rows land and chunks stream through; the vector unit reads it. `resident`
    ("L1"): where a whole table (L1, L1-UB) or pinned hot rows may live; None when the look-up core has
    none (Ascend 910B vector cores). On a core with a single local memory (a GPU SM's shared memory, a CPU
    core's L2) that memory plays both roles.
    """

    staging: LocalMemory
    resident: LocalMemory | None
    l1_to_staging_bytes_per_cycle: float  # rate of rows / chunks from the resident memory to the vector unit

    @property
    def shared(self) -> bool:
        return self.resident is not None and self.resident is self.staging


def memory_roles(core: CoreType, hw_name: str = "") -> MemoryRoles:
    """Pick the staging and resident memories of a core (by vendor name first: UB and L1)."""
    if not core.memories:
        raise UserError(f"hardware profile {hw_name!r}: core type {core.name!r} has no local memory")
    ub = core.memory("UB")
    l1 = core.memory("L1")
    if ub is None:
        staging = l1 if l1 is not None else core.memories[0]
        resident = staging
    else:
        staging, resident = ub, l1
    if resident is None:
        rate = 0.0
    elif resident is staging:
        rate = resident.read_bytes_per_cycle
    elif staging.fill_from == resident.name:
        rate = staging.fill_bytes_per_cycle
    else:
        rate = resident.read_bytes_per_cycle
    return MemoryRoles(staging=staging, resident=resident, l1_to_staging_bytes_per_cycle=rate)


def _round_up(x: np.ndarray, block: int) -> np.ndarray:
    return np.ceil(x / block) * block


class ModelContext:
    """Precomputed figures of one workload on one chip at one batch size, plus the cost cache."""

    def __init__(self, profile: WorkloadProfile, hw: HardwareProfile, batch_size: int) -> None:
        if int(batch_size) < 1:
            raise UserError(f"batch size must be >= 1, got {batch_size}")
        self.profile = profile
        self.hw = hw
        self.batch_size = int(batch_size)
        self.core = hw.lookup_cores
        self.n_cores = self.core.count
        self.clock_hz = hw.clock_hz
        self.roles = memory_roles(self.core, hw.name)
        self.tables: tuple[TableProfile, ...] = profile.tables
        self.index = {t.name: i for i, t in enumerate(profile.tables)}
        c = self.core
        self.rows = np.array([t.rows for t in profile.tables], dtype=float)
        self.dim = np.array([t.dim for t in profile.tables], dtype=float)
        self.row_bytes = np.array([t.row_bytes for t in profile.tables], dtype=float)
        self.table_bytes = np.array([t.table_bytes for t in profile.tables], dtype=float)  # exact below 2**53
        self.row_bytes_gm = _round_up(self.row_bytes, max(c.gm_block_bytes, 1))  # what one DMA of a row moves
        self.row_bytes_ub = _round_up(self.row_bytes, max(self.roles.staging.block_bytes, 1))
        self.pooling = np.array([t.pooling_mean for t in profile.tables], dtype=float)
        # every bag of the table has one length (one-hot, fixed multi-hot): an unsharded task pools them as one block
        self.one_length_bags = np.array(
            [t.pooling_max >= 1 and t.pooling_mean == t.pooling_max for t in profile.tables], dtype=bool
        )
        self.distinct = np.array([max(t.distinct, 1) for t in profile.tables], dtype=float)
        # L2 is shared by the tables in proportion to the bytes each requests per query (pooling x row bytes),
        # independent of the mapping: a table's L2-resident hot set is its share / its row size.
        weight = self.pooling * self.row_bytes_gm
        share = hw.l2_capacity_bytes * weight / weight.sum() if weight.sum() > 0 else np.zeros_like(weight)
        self.l2_rows = share / self.row_bytes_gm
        # Merges of partial pooled vectors run on every core at once, capped by the chip's GM bandwidth.
        all_cores = self.n_cores * c.gm_read_bytes_per_cycle * hw.clock_hz
        self.merge_bytes_per_s = min(hw.gm_bandwidth_bytes_per_s, all_cores)
        self.default_chunk_bytes = max(int(self.roles.staging.capacity_bytes // 4), 1)
        # the hot-spot term (hotspot.py): one L2 slice serves every read of a granule, at its share of the L2 rate
        self.slice_cycles_per_byte = hw.clock_hz / hw.slice_bytes_per_s
        self.cost_cache = CostBook()  # every (table, knobs) costed so far, see costbook.py
        self._scalar_cache: dict[tuple, object] = {}

    # ---- profile-derived quantities (cached: the same few knob values recur across thousands of mappings)

    def shard_mass(self, t: int, shards: int, sharding: str) -> np.ndarray:
        """Share of the table's look-ups that each shard receives."""
        key = ("mass", t, shards, sharding)
        got = self._scalar_cache.get(key)
        if got is None:
            got = _shard_mass(self.tables[t], shards, sharding)
            self._scalar_cache[key] = got
        return got  # type: ignore[return-value]

    def unique_ratio(self, t: int, lookups: float) -> float:
        """Distinct rows per look-up among `lookups` look-ups of table t (de-duplication's saving)."""
        key = ("uniq", t, lookups)
        got = self._scalar_cache.get(key)
        if got is None:
            got = float(self.tables[t].unique_rows(lookups)) / lookups if lookups > 0 else 1.0
            self._scalar_cache[key] = got
        return got  # type: ignore[return-value]

    def pinned_hits(self, t: int, pinned_rows: float) -> tuple[float, float]:
        """(share of look-ups served by `pinned_rows` pinned rows, L2 hit rate of the remaining look-ups)."""
        key = ("pin", t, pinned_rows)
        got = self._scalar_cache.get(key)
        if got is None:
            tp = self.tables[t]
            hot = min(pinned_rows, float(self.distinct[t]))
            h = float(tp.hit_rate(hot)) if hot > 0 else 0.0
            with_l2 = float(tp.hit_rate(hot + self.l2_rows[t]))
            l2h = (with_l2 - h) / (1.0 - h) if 1.0 - h > 1e-12 else 0.0
            got = (h, min(max(l2h, 0.0), 1.0))
            self._scalar_cache[key] = got
        return got  # type: ignore[return-value]

    def hot_spot_cycles(self, t: int, replicas: int, shards: int, sharding: str, hot: int, dedup: bool) -> np.ndarray:
        """(shards,) cycles the L2 slice of each GM shard's busiest granule needs to serve one batch's reads of it."""
        distinct = dedup or self.core.caches_gm_reads  # reads then depend on the replica count
        contiguous = sharding == "contiguous" or shards == 1
        key = ("hot", t, replicas if distinct else 0, shards, contiguous, hot, distinct)
        got = self._scalar_cache.get(key)
        if got is None:
            share, geo = self._hot_geometry(t, shards, contiguous)
            reads = row_reads(share, self.batch_size * float(self.pooling[t]), replicas, distinct)
            got = shard_hot_bytes(geo, reads, hot) * self.slice_cycles_per_byte
            self._scalar_cache[key] = got
        return got  # type: ignore[return-value]

    def _hot_geometry(self, t: int, shards: int, contiguous: bool) -> tuple[np.ndarray, HotGeometry]:
        """The table's listed hot rows (shares) and where they sit for this shard count (cached)."""
        key = ("hotgeo", t, shards, contiguous)
        got = self._scalar_cache.get(key)
        if got is None:
            tp = self.tables[t]
            listed = self._scalar_cache.get(("hotrows", t))
            if listed is None:
                listed = self._scalar_cache[("hotrows", t)] = hot_rows(tp)
            share, rows = listed  # type: ignore[misc]
            geo = hot_geometry(rows, len(share), tp.rows, tp.row_bytes, self.hw.interleave_bytes, shards, contiguous)
            got = self._scalar_cache[key] = (share, geo)
        return got  # type: ignore[return-value]


def _shard_mass(tp: TableProfile, shards: int, sharding: str) -> np.ndarray:
    """Load share per shard: contiguous ranges read the profile's row-range masses; balanced shards are even,
    except that a row hotter than an even share cannot be split (it sits alone in its shard)."""
    if shards == 1:
        return np.ones(1)
    if sharding == "contiguous":
        m = np.clip(tp.range_mass(shards), 0.0, None)
        return m / m.sum() if m.sum() > 0 else np.full(shards, 1.0 / shards)
    # balanced: water-filling over the hottest rows' shares (rank i's share = hit_rate(i) - hit_rate(i-1))
    top = np.diff(np.asarray(tp.hit_rate(np.arange(shards + 1, dtype=float)), dtype=float))
    out = np.empty(shards)
    remaining = 1.0
    for j in range(shards):
        even = remaining / (shards - j)
        if top[j] > even:
            out[j] = top[j]
            remaining -= top[j]
        else:
            out[j:] = even
            break
    return out
