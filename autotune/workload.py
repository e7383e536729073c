"""The workload profile: what the latency model knows about each embedding table's look-ups.

`analytics` computes it from query logs and writes `profile.json` (this module's `to_dict`); the model and
the search read it through `load_profile`. Everything here is a pure function of the stored figures, so the
model never touches the logs.

Curves are stored on fixed grids and interpolated:
- `rank_curve`: (H, share of accesses served by the H hottest ids); answers "hit rate of a hot set of H
  rows" (FAE's pinning, L2 residency).
- `unique_curve`: (n, expected distinct ids among n look-ups drawn from the observed frequencies);
  answers "how many rows does de-duplication fetch for a batch slice of n look-ups".
- `bucket_mass`: share of accesses per contiguous row range (`N_BUCKETS` equal ranges of the table's rows,
  after the row map); answers "how much load does a contiguous row shard receive".
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autotune.dtypes import DTYPE_BYTES
from autotune.errors import UserError

PROFILE_VERSION = 1
#: Percent-of-distinct-ids keys of the reported coverage curve (DESIGN section 3).
COVERAGE_PERCENTS: tuple[str, ...] = ("0.01", "0.1", "1", "10", "50")
#: Power-of-two reuse bins (0,1], (1,2], (2,4], ..., (16384,32768], (32768,inf): DreamShard's 17 features.
REUSE_BINS = 17
#: Contiguous row-range buckets of `bucket_mass`.
N_BUCKETS = 1024
#: `0.0 <= x`: False for a negative number and for NaN (which `json.loads` accepts), so neither passes as a share.
_AT_LEAST_ZERO = (0.0).__le__

#: int8 rows carry an fp32 scale and bias (FBGEMM's fused 8-bit rowwise layout): 8 bytes per row.
INT8_ROW_OVERHEAD_BYTES = 8


def row_bytes(dim: int, dtype: str) -> int:
    """Bytes of one embedding row of `dim` elements of `dtype`."""
    if dtype not in DTYPE_BYTES:
        raise UserError(f"unknown dtype {dtype!r}: use one of {', '.join(DTYPE_BYTES)}")
    extra = INT8_ROW_OVERHEAD_BYTES if dtype in ("int8", "uint8") else 0
    return dim * DTYPE_BYTES[dtype] + extra


@dataclass(frozen=True)
class TableProfile:
    """Look-up statistics of one embedding table."""

    name: str
    rows: int  # rows of the table (model spec), or distinct ids observed without one
    dim: int
    dtype: str
    accesses: int  # non-missing look-ups over the whole log
    queries: int  # queries in which this table had at least one look-up
    missing: int  # queries in which this table's value was missing (no look-up)
    distinct: int  # distinct ids looked up
    pooling_mean: float  # look-ups per query (accesses / all queries): the pooling factor
    pooling_max: int  # largest bag in one query
    top_share: float  # share of accesses of the most frequent id
    zipf_alpha: float  # fitted exponent of count ~ rank^-alpha
    coverage: dict[str, float]  # percent of distinct ids -> share of accesses of that hottest share
    rank_curve: tuple[tuple[int, float], ...]  # (H hottest ids, share of accesses), from (0, 0) to (distinct, 1)
    unique_curve: tuple[tuple[int, float], ...]  # (n look-ups, expected distinct ids among them)
    reuse_rows: tuple[float, ...]  # share of distinct ids per power-of-two count bin (REUSE_BINS)
    reuse_accesses: tuple[float, ...]  # share of accesses per power-of-two count bin (REUSE_BINS)
    bucket_mass: tuple[float, ...]  # share of accesses per contiguous row range (N_BUCKETS, sums to 1)
    hot_ids: tuple[tuple[str, int], ...] = ()  # top-K (id, count), hottest first
    extra: dict[str, Any] = field(default_factory=dict)  # fields a newer writer added; kept, not interpreted

    @property
    def row_bytes(self) -> int:
        return row_bytes(self.dim, self.dtype)

    @property
    def table_bytes(self) -> int:
        return self.rows * self.row_bytes

    def hit_rate(self, hot_rows: float | np.ndarray) -> float | np.ndarray:
        """Share of accesses served by the `hot_rows` hottest rows (0 for none, 1 for all distinct ids)."""
        h, share = self._rank_arrays
        return np.interp(hot_rows, h, share)

    def unique_rows(self, lookups: float | np.ndarray) -> float | np.ndarray:
        """Expected distinct rows among `lookups` look-ups drawn from this table's frequencies.

        Below one look-up the answer is the look-up count itself; beyond the stored grid it saturates at
        the number of distinct ids.
        """
        n, u = self._unique_arrays
        x = np.asarray(lookups, dtype=float)
        logx = np.log2(np.maximum(x, 1.0))
        res = np.interp(logx, np.log2(n), u)
        res = np.where(x < 1.0, x, np.minimum(res, x))
        return float(res) if np.ndim(res) == 0 else res

    def range_mass(self, shards: int) -> np.ndarray:
        """Share of accesses of each of `shards` equal contiguous row ranges (what row-wise sharding sees)."""
        cum = self._bucket_cum
        edges = np.linspace(0.0, 1.0, shards + 1)
        at = np.interp(edges, np.linspace(0.0, 1.0, len(cum)), cum)
        return np.diff(at)

    @property
    def _rank_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return _cached(self, "_rank", lambda: _pairs(self.rank_curve))

    @property
    def _unique_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return _cached(self, "_unique", lambda: _pairs(self.unique_curve))

    @property
    def _bucket_cum(self) -> np.ndarray:
        return _cached(self, "_bcum", lambda: np.concatenate([[0.0], np.cumsum(self.bucket_mass)]))

    def to_dict(self) -> dict[str, Any]:
        d = {
            "name": self.name,
            "rows": self.rows,
            "dim": self.dim,
            "dtype": self.dtype,
            "accesses": self.accesses,
            "queries": self.queries,
            "missing": self.missing,
            "distinct": self.distinct,
            "pooling_mean": self.pooling_mean,
            "pooling_max": self.pooling_max,
            "top_share": self.top_share,
            "zipf_alpha": self.zipf_alpha,
            "coverage": dict(self.coverage),
            "rank_curve": [list(p) for p in self.rank_curve],
            "unique_curve": [list(p) for p in self.unique_curve],
            "reuse_rows": list(self.reuse_rows),
            "reuse_accesses": list(self.reuse_accesses),
            "bucket_mass": list(self.bucket_mass),
            "hot_ids": [list(p) for p in self.hot_ids],
        }
        d.update(self.extra)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "profile") -> TableProfile:
        """Build from a `profile.json` table entry; any missing or nonsensical field is a `UserError`."""
        name = d.get("name")
        if not isinstance(name, str) or not name:
            raise UserError(f"{where}: a table has no 'name'; regenerate the profile with `autotune analyze`")
        at = f"{where}: table {name!r}"

        def num(key: str, kind: type, minimum: float = 0) -> Any:
            v = d.get(key)
            if isinstance(v, bool) or not isinstance(v, int | float) or (kind is int and not float(v).is_integer()):
                raise UserError(f"{at}: field '{key}' must be a number, got {v!r}")
            if not math.isfinite(v) or v < minimum:
                raise UserError(f"{at}: field '{key}' must be >= {minimum}, got {v!r}")
            return kind(v)

        def curve(key: str) -> tuple[tuple[int, float], ...]:
            v = d.get(key)
            if not isinstance(v, list) or len(v) < 2 or not all(isinstance(p, list) and len(p) == 2 for p in v):
                raise UserError(f"{at}: field '{key}' must be a list of at least two [x, y] pairs")
            xs = [p[0] for p in v]
            if any(b <= a for a, b in itertools.pairwise(xs)):
                raise UserError(f"{at}: field '{key}' must have strictly increasing x values")
            return tuple((int(x), float(y)) for x, y in v)

        def vector(key: str, length: int | None) -> tuple[float, ...]:
            v = d.get(key)
            if not isinstance(v, list) or (length is not None and len(v) != length):
                raise UserError(f"{at}: field '{key}' must be a list of {length} numbers")
            # tested at C speed in the common case (only floats and ints, as json.loads gives them)
            plain = set(map(type, v)) <= {float, int}
            if (not plain and any(not isinstance(x, int | float) for x in v)) or not all(map(_AT_LEAST_ZERO, v)):
                raise UserError(f"{at}: field '{key}' must hold non-negative numbers")
            return tuple(map(float, v))

        dtype = d.get("dtype", "float32")
        if dtype not in DTYPE_BYTES:
            raise UserError(f"{at}: field 'dtype' is {dtype!r}; use one of {', '.join(DTYPE_BYTES)}")
        rows = num("rows", int, 1)
        distinct = num("distinct", int)
        known = set(cls.__dataclass_fields__) - {"extra"}
        bucket = vector("bucket_mass", None)
        if not bucket:
            raise UserError(f"{at}: field 'bucket_mass' is empty")
        cov = d.get("coverage")
        if not isinstance(cov, dict):
            raise UserError(f"{at}: field 'coverage' must be an object of percent -> share")
        return cls(
            name=name,
            rows=rows,
            dim=num("dim", int, 1),
            dtype=dtype,
            accesses=num("accesses", int),
            queries=num("queries", int),
            missing=num("missing", int),
            distinct=distinct,
            pooling_mean=num("pooling_mean", float),
            pooling_max=num("pooling_max", int),
            top_share=num("top_share", float),
            zipf_alpha=num("zipf_alpha", float),
            coverage={str(k): float(v) for k, v in cov.items()},
            rank_curve=curve("rank_curve"),
            unique_curve=curve("unique_curve"),
            reuse_rows=vector("reuse_rows", REUSE_BINS),
            reuse_accesses=vector("reuse_accesses", REUSE_BINS),
            bucket_mass=bucket,
            hot_ids=tuple((str(i), int(c)) for i, c in d.get("hot_ids", [])),
            extra={k: v for k, v in d.items() if k not in known},
        )


@dataclass(frozen=True)
class WorkloadProfile:
    """Per-table look-up statistics of one query log (or of several merged)."""

    name: str
    queries: int  # queries (samples) in the log
    rows_read: int  # log rows parsed (for long format: (query, table, id) rows)
    rows_skipped: int  # malformed rows skipped
    tables: tuple[TableProfile, ...]
    sample_fraction: float | None = None  # set when profiled from a sample: figures are estimates
    source: dict[str, Any] = field(default_factory=dict)  # inputs, format, row map, tool version
    path: Path | None = None  # directory it was loaded from

    def table(self, name: str) -> TableProfile:
        for t in self.tables:
            if t.name == name:
                return t
        raise UserError(
            f"profile {self.name!r} has no table {name!r}; tables: {', '.join(t.name for t in self.tables)}"
        )

    @property
    def table_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tables)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": PROFILE_VERSION,
            "name": self.name,
            "queries": self.queries,
            "rows_read": self.rows_read,
            "rows_skipped": self.rows_skipped,
            "sample_fraction": self.sample_fraction,
            "source": self.source,
            "tables": [t.to_dict() for t in self.tables],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "profile", path: Path | None = None) -> WorkloadProfile:
        version = d.get("version")
        if version != PROFILE_VERSION:
            raise UserError(
                f"{where}: field 'version' is {version!r}, this autotune reads version {PROFILE_VERSION}; "
                "regenerate the profile with `autotune analyze`"
            )
        tables = d.get("tables")
        if not isinstance(tables, list) or not tables:
            raise UserError(f"{where}: field 'tables' must be a non-empty list")
        parsed = tuple(TableProfile.from_dict(t, where) if isinstance(t, dict) else _bad_table(where) for t in tables)
        names = [t.name for t in parsed]
        if len(set(names)) != len(names):
            raise UserError(f"{where}: field 'tables' names a table twice")
        queries = d.get("queries")
        if not isinstance(queries, int) or queries < 0:
            raise UserError(f"{where}: field 'queries' must be a non-negative integer, got {queries!r}")
        return cls(
            name=str(d.get("name", "profile")),
            queries=queries,
            rows_read=int(d.get("rows_read", 0)),
            rows_skipped=int(d.get("rows_skipped", 0)),
            tables=parsed,
            sample_fraction=d.get("sample_fraction"),
            source=dict(d.get("source", {})),
            path=path,
        )


def load_profile(path: str | Path) -> WorkloadProfile:
    """Load and validate a workload profile from its directory or its `profile.json`."""
    p = Path(path)
    f = p / "profile.json" if p.is_dir() else p
    if not f.exists():
        raise UserError(f"{p}: no workload profile here (expected profile.json); create one with `autotune analyze`")
    try:
        d = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{f}: not a readable profile.json ({exc}); regenerate it with `autotune analyze`") from None
    if not isinstance(d, dict):
        raise UserError(f"{f}: a profile must be a JSON object")
    return WorkloadProfile.from_dict(d, where=str(f), path=f.parent)


def _bad_table(where: str) -> TableProfile:
    raise UserError(f"{where}: every entry of 'tables' must be an object")


def _pairs(points: tuple[tuple[int, float], ...]) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(points, dtype=float)
    return a[:, 0], a[:, 1]


def _cached(obj: object, key: str, make: Any) -> Any:
    # Frozen dataclasses still have a __dict__: cache derived arrays there (the model's inner loop reads them).
    cache = obj.__dict__.setdefault("_cache", {})
    if key not in cache:
        cache[key] = make()
    return cache[key]
