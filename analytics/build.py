"""Assemble a `TableProfile` from one table's counts: the row map, the statistics, the sampling scale-up.

Used both by `analyze` (counts straight from the log) and by `merge_profiles` (counts added from two
profiles), so a merged profile is exactly the profile of the concatenated logs.

Sampled profiles (`sample_fraction` f): `counts.parquet` keeps the sample's raw counts; accesses, queries,
missing and hot-id counts are scaled by 1/f (estimates), shares (top_share, coverage, curves, histograms)
are the sample's own (ratio estimates), `distinct` is the distinct ids seen in the sample (a lower bound,
flagged `distinct_is_lower_bound`), and `stderr` gives the binomial standard error sqrt(s (1 - s) / n) of
top_share and of each coverage share, n = sampled look-ups (it ignores correlation between look-ups of one
query, so read it as a lower bound on the error too).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from analytics import stats
from analytics.rowmap import map_rows
from autotune.workload import TableProfile


@dataclass(frozen=True)
class TableSettings:
    """How one table is sized and mapped: model rows (None: not in a model), dim, dtype, row map."""

    rows: int | None
    dim: int
    dtype: str
    row_map: str


def default_row_map(requested: str | None, rows: int | None) -> str:
    """The row map of a table: the requested one, else `hash` when the model gives rows, else `dense`."""
    if requested:
        return requested
    return "hash" if rows is not None else "dense"


def distinct_rows(rows: np.ndarray) -> int:
    """How many different rows the ids hit (hashing can map two ids to one row), by one sort (numpy's
    `np.unique` on int64 is many times slower here)."""
    if len(rows) == 0:
        return 0
    s = np.sort(rows)
    return 1 + int(np.count_nonzero(s[1:] != s[:-1]))


def table_profile(
    name: str,
    ids: pa.Array,
    counts: np.ndarray,
    settings: TableSettings,
    *,
    queries_total: int,
    queries_with: int,
    pooling_max: int,
    top_k: int,
    sample_fraction: float | None = None,
    mapped: tuple[np.ndarray, int] | None = None,
) -> tuple[TableProfile, np.ndarray]:
    """The profile of one table and the row of each id (for `counts.parquet`); counts are raw (sampled).

    `mapped` is `map_rows(ids, settings.row_map, settings.rows, name)` when the caller already has it."""
    rows, n_rows = mapped if mapped is not None else map_rows(ids, settings.row_map, settings.rows, name)
    hist = stats.count_histogram(counts)
    cs = stats.count_stats(counts, hist)
    scale = 1.0 / sample_fraction if sample_fraction else 1.0

    def up(x: int) -> int:
        return round(x * scale)

    extra: dict = {"row_map": settings.row_map, "rows_from_model": settings.rows is not None}
    if settings.row_map == "hash":
        extra["distinct_rows"] = distinct_rows(rows)
    if sample_fraction:
        extra["sampled"] = {
            "accesses": cs.accesses,
            "queries": queries_with,
            "missing": queries_total - queries_with,
            "queries_total": queries_total,
        }
        extra["distinct_is_lower_bound"] = True
        extra["stderr"] = {
            "top_share": stats.binomial_stderr(cs.top_share, cs.accesses),
            "coverage": {k: stats.binomial_stderr(v, cs.accesses) for k, v in cs.coverage.items()},
        }
    hot = stats.hot_ids(ids, counts, top_k, hist)
    profile = TableProfile(
        name=name,
        rows=n_rows,
        dim=settings.dim,
        dtype=settings.dtype,
        accesses=up(cs.accesses),
        queries=up(queries_with),
        missing=up(queries_total - queries_with),
        distinct=cs.distinct,
        pooling_mean=cs.accesses / queries_total if queries_total else 0.0,
        pooling_max=pooling_max,
        top_share=cs.top_share,
        zipf_alpha=cs.zipf_alpha,
        coverage=cs.coverage,
        rank_curve=cs.rank_curve,
        unique_curve=cs.unique_curve,
        reuse_rows=cs.reuse_rows,
        reuse_accesses=cs.reuse_accesses,
        bucket_mass=stats.bucket_mass(rows, counts, n_rows),
        hot_ids=tuple((i, up(c)) for i, c in hot),
        extra=extra,
    )
    return profile, rows
