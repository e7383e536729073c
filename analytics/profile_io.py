"""The profile directory on disk: write it atomically, read its counts back, merge two profiles.

Layout of a profile directory:
- `profile.json`: the versioned `WorkloadProfile` (autotune.workload.load_profile reads it): per table the
  sizes, counts, coverage and rank curves, reuse histograms, unique curve, bucket masses, hot ids.
- `counts.parquet`: columns table (string), id (string), row (int64), count (int64), one row per distinct
  (table, id), in no particular order. Every figure of `profile.json` derives from it (plus the per-query
  figures kept in `profile.json`), which is why two profiles merge exactly.
- `plots/` (optional): coverage.png and frequency.png.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from analytics.arrays import int64_array, large_strings, repeat_dictionary
from analytics.build import TableSettings, table_profile
from autotune.atomic import atomic_dir, write_json
from autotune.errors import UserError
from autotune.outputs import PROFILE_OUTPUT
from autotune.workload import TableProfile, WorkloadProfile, load_profile

COUNTS_FILE = "counts.parquet"
PROFILE_FILE = "profile.json"
#: The schema counts.parquet reads back with.
COUNTS_SCHEMA = pa.schema([("table", pa.string()), ("id", pa.string()), ("row", pa.int64()), ("count", pa.int64())])
#: The schema it is written with: the same Parquet columns (no Arrow schema is stored, so readers get
#: COUNTS_SCHEMA), the table name given as a dictionary (Parquet would otherwise hash every row's name).
_WRITE_SCHEMA = pa.schema(
    [("table", pa.dictionary(pa.int32(), pa.string())), ("id", pa.large_string()), ("row", pa.int64()),
     ("count", pa.int64())]
)  # fmt: skip
#: Per-column compression: LZ4 where it pays (counts 6x smaller), none for the rows (hashed rows are random:
#: LZ4 would cost a third of the write for a 1.1x smaller column) nor the ids (hashed ids: 1.3x smaller for
#: a third of the write, 0.05 s of `analyze` on the 2M-row Criteo benchmark; the file is 16% larger).
COMPRESSION = {"table": "lz4", "id": "none", "row": "none", "count": "lz4"}
#: Columns with min/max statistics: the table name, so that a reader filtering on it skips the other tables'
#: row groups (replay reads one table's rows so); nothing filters on ids, rows or counts, whose statistics
#: (every id compared as a string) cost a fifth of the write.
STATISTICS = ["table"]

#: One table's counts as written: (name, ids, rows, counts).
TableArrays = tuple[str, pa.Array, np.ndarray, np.ndarray]


class CountsWriter:
    """counts.parquet, written one table (one row group) at a time by a background thread while the caller
    computes the statistics (Parquet encoding releases the GIL, so the two share the cores).

    Use it as a context manager: on a clean exit it waits for every table and raises what the writes
    raised; on an exception it drops what is left (the caller's atomic directory is discarded anyway).
    """

    def __init__(self, path: Path) -> None:
        self._writer = pq.ParquetWriter(
            path,
            _WRITE_SCHEMA,
            compression=COMPRESSION,
            use_dictionary=["table"],
            write_statistics=STATISTICS,
            store_schema=False,
        )
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="counts-writer")
        self._pending: list[Future[None]] = []

    def add(self, name: str, ids: pa.Array, rows: np.ndarray, counts: np.ndarray) -> None:
        """Queue one table's counts (ids, row of each id, look-ups of each id) for writing."""
        self._pending.append(self._pool.submit(self._write, name, ids, rows, counts))

    def _write(self, name: str, ids: pa.Array, rows: np.ndarray, counts: np.ndarray) -> None:
        if len(ids) == 0:
            return
        cols = [repeat_dictionary(name, len(ids)), large_strings(ids), int64_array(rows), int64_array(counts)]
        self._writer.write_table(pa.table(cols, schema=_WRITE_SCHEMA))

    def __enter__(self) -> CountsWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._pool.shutdown(wait=True, cancel_futures=kind is not None)
        if kind is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
            return
        try:
            for written in self._pending:
                written.result()
        finally:
            self._writer.close()


def write_profile(
    out_dir: Path,
    profile: WorkloadProfile | Callable[[CountsWriter], WorkloadProfile],
    tables: Iterable[TableArrays] = (),
    extras: Callable[[Path, WorkloadProfile], None] | None = None,
) -> WorkloadProfile:
    """Write profile.json and counts.parquet (`tables`) into `out_dir` atomically (all or nothing); `extras`
    adds files.

    `profile` may be a function computing it; it gets the `CountsWriter` and hands it each table's counts
    as soon as it has them (`add`), so counts.parquet is written by a background thread while it computes
    the rest. An exception in either leaves nothing behind. Returns the profile written.
    """
    with atomic_dir(out_dir, PROFILE_OUTPUT) as tmp:
        with CountsWriter(tmp / COUNTS_FILE) as counts:
            for t in tables:
                counts.add(*t)
            prof = profile(counts) if callable(profile) else profile
        write_json(tmp / PROFILE_FILE, prof.to_dict())
        if extras is not None:
            extras(tmp, prof)
    return prof


def read_counts(profile_dir: Path) -> dict[str, tuple[pa.Array, np.ndarray]]:
    """Per table: (ids, counts) from a profile's counts.parquet."""
    import pyarrow.compute as pc  # here, not at the top: `analyze` never needs it (0.035 s of start-up)

    f = Path(profile_dir) / COUNTS_FILE
    try:
        t = pq.read_table(f, columns=["table", "id", "count"])
    except (OSError, pa.ArrowException) as exc:
        raise UserError(
            f"{f}: cannot read the profile's counts ({exc}); regenerate it with `autotune analyze`"
        ) from None
    names = t.column("table").combine_chunks()
    ids = t.column("id").combine_chunks()
    counts = t.column("count").combine_chunks()
    out = {}
    for name in pc.unique(names).to_pylist():
        mask = pc.equal(names, name)
        out[name] = (ids.filter(mask), counts.filter(mask).to_numpy())
    return out


def _settings(t: TableProfile) -> TableSettings:
    from_model = bool(t.extra.get("rows_from_model", False))
    return TableSettings(t.rows if from_model else None, t.dim, t.dtype, str(t.extra.get("row_map", "dense")))


def _raw(t: TableProfile, p: WorkloadProfile) -> tuple[int, int]:
    """(queries of the log, queries with a look-up of t) as counted, i.e. before any sampling scale-up."""
    s = t.extra.get("sampled")
    if p.sample_fraction and isinstance(s, dict):
        return int(s["queries_total"]), int(s["queries"])
    return p.queries, t.queries


def top_k_of(p: WorkloadProfile) -> int:
    """The hot ids kept per table when `p` was written: recorded in its source (`top_k`); profiles written
    before it was recorded give the most any table holds (a table with fewer distinct ids holds fewer)."""
    recorded = p.source.get("top_k")
    if isinstance(recorded, int) and not isinstance(recorded, bool) and recorded >= 0:
        return recorded
    return max((len(t.hot_ids) for t in p.tables), default=0)


def merge_profiles(
    a_dir: str | Path, b_dir: str | Path, out_dir: str | Path, name: str | None = None
) -> WorkloadProfile:
    """Merge two profiles of the same tables (e.g. two log shards): counts add up and every figure is
    recomputed; queries, missing, rows_read and rows_skipped add up, pooling_max is the max, and each table
    keeps as many hot ids as the inputs were asked for (`top_k`).

    Merging sampled profiles (same --sample) gives an estimate of the whole log, not the profile `analyze
    --sample` gives for it: the sample keeps rows by their position in each analysed log."""
    if Path(a_dir).resolve() == Path(b_dir).resolve():
        raise UserError(f"{b_dir}: the same profile as {a_dir}; merging it with itself would double its counts")
    if Path(out_dir).resolve() in (Path(a_dir).resolve(), Path(b_dir).resolve()):
        raise UserError(f"{out_dir}: is one of the profiles being merged; write the merge to another folder")
    a, b = load_profile(a_dir), load_profile(b_dir)
    if a.table_names != b.table_names:
        raise UserError(
            f"{b_dir}: its tables ({', '.join(b.table_names)}) differ from {a_dir}'s ({', '.join(a.table_names)}); "
            "only profiles of the same tables merge"
        )
    if a.sample_fraction != b.sample_fraction:
        raise UserError(
            f"{b_dir}: sampled at {b.sample_fraction}, {a_dir} at {a.sample_fraction}; "
            "merge profiles analysed with the same --sample"
        )
    ca, cb = read_counts(Path(a_dir)), read_counts(Path(b_dir))
    frac = a.sample_fraction
    tables, arrays = [], []
    top_k = max(top_k_of(a), top_k_of(b))
    qa_total = qb_total = 0
    for ta in a.tables:
        tb = b.table(ta.name)
        sa, sb = _settings(ta), _settings(tb)
        if (sa.dim, sa.dtype, sa.row_map, sa.rows) != (sb.dim, sb.dtype, sb.row_map, sb.rows):
            raise UserError(
                f"{b_dir}: table {ta.name!r} has a different model (rows, dim, dtype or row map) than in {a_dir}"
            )
        ids_a, n_a = ca.get(ta.name, (pa.array([], pa.string()), np.zeros(0, np.int64)))
        ids_b, n_b = cb.get(ta.name, (pa.array([], pa.string()), np.zeros(0, np.int64)))
        both = pa.table({"id": pa.concat_arrays([ids_a, ids_b]), "n": pa.array(np.concatenate([n_a, n_b]), pa.int64())})
        summed = both.group_by("id").aggregate([("n", "sum")])
        ids, counts = summed.column("id").combine_chunks(), summed.column("n_sum").to_numpy()
        (qa_total, qa), (qb_total, qb) = _raw(ta, a), _raw(tb, b)
        prof, rows = table_profile(
            ta.name,
            ids,
            counts,
            sa,
            queries_total=qa_total + qb_total,
            queries_with=qa + qb,
            pooling_max=max(ta.pooling_max, tb.pooling_max),
            top_k=top_k,
            sample_fraction=frac,
        )
        tables.append(prof)
        arrays.append((ta.name, ids, rows, counts))
    merged = WorkloadProfile(
        name=name or f"{a.name}+{b.name}",
        queries=a.queries + b.queries,
        rows_read=a.rows_read + b.rows_read,
        rows_skipped=a.rows_skipped + b.rows_skipped,
        tables=tuple(tables),
        sample_fraction=frac,
        source={"merged_from": [str(a_dir), str(b_dir)], "sources": [a.source, b.source], "top_k": top_k},
    )
    write_profile(Path(out_dir), merged, arrays)
    return load_profile(out_dir)
