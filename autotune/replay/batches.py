"""Batches of look-ups drawn from a profile's exact row frequencies (counts.parquet) and pooling factors.

A batch of one table is CSR: `rows` (int64 row of every look-up), `offsets` (B+1 bag boundaries) and `qidx`
(the query of every look-up; what a routing step scans). Bag sizes have the profile's mean pooling factor
exactly in expectation: floor(pooling) plus one with probability frac(pooling), capped at the largest bag
seen; rows are drawn with replacement from the observed (row, count) frequencies.

A drawn batch has the profile's row frequencies and pooling factor, which is all the latency model reads;
`autotune.replay.logs` replays an actual log's consecutive queries instead (`replay --logs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autotune.errors import UserError
from autotune.workload import WorkloadProfile

COUNTS_FILE = "counts.parquet"


@dataclass(frozen=True)
class TableBatch:
    rows: np.ndarray  # (n,) int64
    offsets: np.ndarray  # (B+1,) int64
    qidx: np.ndarray  # (n,) int32: query of each look-up


def read_row_counts(profile: WorkloadProfile, scale: float = 1.0) -> dict[str, np.ndarray]:
    """Per table, look-up counts per (scaled) row: a float64 array of the table's rows."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if profile.path is None:
        raise UserError(f"profile {profile.name!r}: replay needs the profile's directory (with {COUNTS_FILE})")
    f = Path(profile.path) / COUNTS_FILE
    try:
        t = pq.read_table(f, columns=["table", "row", "count"])
    except (OSError, pa.ArrowException) as exc:
        raise UserError(
            f"{f}: cannot read the row counts replay draws look-ups from ({exc}); regenerate the profile with "
            "`autotune analyze`"
        ) from None
    names = t.column("table").combine_chunks()
    rows_all = t.column("row").combine_chunks()
    counts_all = t.column("count").combine_chunks()
    out = {}
    for tp in profile.tables:
        mask = pc.equal(names, tp.name)
        rows = rows_all.filter(mask).to_numpy().astype(np.int64)
        counts = counts_all.filter(mask).to_numpy().astype(np.float64)
        if rows.size and (rows.min() < 0 or rows.max() >= tp.rows):
            raise UserError(
                f"{f}: table {tp.name!r} has rows outside 0..{tp.rows - 1}; "
                "regenerate the profile with `autotune analyze`"
            )
        n = max(1, int(np.ceil(tp.rows * scale)))
        scaled = rows * n // tp.rows
        out[tp.name] = np.bincount(scaled, weights=counts, minlength=n)[:n]
    return out


def draw_batches(
    profile: WorkloadProfile,
    freq: dict[str, np.ndarray],
    batch_size: int,
    n_batches: int,
    seed: int,
) -> list[list[TableBatch]]:
    """`n_batches` batches of `batch_size` queries: [batch][table in profile order]."""
    rng = np.random.default_rng([seed, 7])
    cdfs = {}
    for tp in profile.tables:
        f = freq[tp.name]
        total = f.sum()
        if total <= 0:
            cdfs[tp.name] = None
        else:
            nz = np.flatnonzero(f)
            cdfs[tp.name] = (nz, np.cumsum(f[nz]) / total)
    out = []
    for _ in range(n_batches):
        batch = []
        for tp in profile.tables:
            pm = tp.pooling_mean if cdfs[tp.name] is not None else 0.0
            base = int(np.floor(pm))
            sizes = base + (rng.random(batch_size) < pm - base)
            sizes = np.minimum(sizes, max(tp.pooling_max, 1)).astype(np.int64)
            offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
            n = int(offsets[-1])
            if n:
                nz, cdf = cdfs[tp.name]
                pick = np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(nz) - 1)
                rows = nz[pick].astype(np.int64)
            else:
                rows = np.empty(0, dtype=np.int64)
            qidx = np.repeat(np.arange(batch_size, dtype=np.int32), sizes)
            batch.append(TableBatch(rows, offsets, qidx))
        out.append(batch)
    return out
