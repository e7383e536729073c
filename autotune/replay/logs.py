"""Batches from an actual query log (`replay --logs`): consecutive queries, ids mapped to rows as `analyze` did.

The log is read with the analytics readers (`analytics.sources` expands files, folders and globs and sniffs the
format; `analytics.readers` parses it once into DuckDB), so every format `analyze` reads replays: Criteo, wide
CSV/TSV (bags split by the profile's `--multi-sep`), wide Parquet (list columns are bags) and long form
(query_id, table, id; a query's look-ups in log order, queries in order of first appearance). Missing values
(NULL, empty) are not look-ups, as in `analytics.counting`.

Ids become rows by the table's row map recorded in the profile (`row_map` of each table): `hash` and
`identity` are recomputed with `analytics.rowmap.map_rows` on the profile's table size; `dense` numbers the
analysed log's distinct ids, so its rows are looked up in the profile's counts.parquet (an id it never saw
has no row: an error). With `--scale`, rows map to row x rows' // rows, as for drawn batches.

Batch b holds queries b x B .. (b+1) x B - 1 of the log; a log shorter than the batches asked for is replayed
from its start again (wrapping), and says so.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from autotune.errors import UserError
from autotune.replay.batches import COUNTS_FILE, TableBatch
from autotune.replay.tables import scaled_rows
from autotune.workload import WorkloadProfile

#: DuckDB's memory limit while reading a log for replay (it spills beyond it).
MEMORY_LIMIT = "1GB"


@dataclass(frozen=True)
class LogLookups:
    """One table's look-ups of the log's first queries, in log order (CSR over queries)."""

    ids: pa.Array  # string ids of every look-up
    offsets: np.ndarray  # (queries + 1,) int64


def log_batches(
    profile: WorkloadProfile,
    paths: Sequence[str | Path],
    batch_size: int,
    n_batches: int,
    scale: float = 1.0,
    progress: Callable[[str], None] | None = None,
) -> list[list[TableBatch]]:
    """`n_batches` batches of `batch_size` consecutive queries of the log: [batch][table in profile order]."""
    say = progress or (lambda _m: None)
    want = batch_size * n_batches
    lookups, queries = read_log(profile, paths, want, say)
    if queries < batch_size:
        raise UserError(
            f"{paths[0]}: the log holds {queries} queries, fewer than one batch of {batch_size}; "
            "pass a smaller --batch-size"
        )
    if queries < want:
        say(f"the log holds {queries} queries, {want} are asked for: replaying it from its start again")
    per_table = []
    for tp in profile.tables:
        lk = lookups[tp.name]
        rows = map_log_rows(profile, tp.name, lk.ids)
        n = scaled_rows(tp.rows, scale)
        per_table.append((rows * n // tp.rows, lk.offsets))
    take = np.arange(want) % queries  # query of the log at each position of the batches (wrapping)
    out = []
    for b in range(n_batches):
        qs = take[b * batch_size : (b + 1) * batch_size]
        out.append([_slice(rows, offsets, qs) for rows, offsets in per_table])
    return out


def _slice(rows: np.ndarray, offsets: np.ndarray, qs: np.ndarray) -> TableBatch:
    """The CSR batch of queries `qs` (log positions) of one table."""
    sizes = offsets[qs + 1] - offsets[qs]
    new = np.zeros(len(qs) + 1, dtype=np.int64)
    np.cumsum(sizes, out=new[1:])
    # each look-up's position in `rows`: its query's start in the log plus its place in the bag
    pos = np.repeat(offsets[qs] - new[:-1], sizes) + np.arange(int(new[-1]))
    qidx = np.repeat(np.arange(len(qs), dtype=np.int32), sizes)
    return TableBatch(rows[pos].astype(np.int64), new, qidx)


def read_log(
    profile: WorkloadProfile, paths: Sequence[str | Path], limit: int, say: Callable[[str], None]
) -> tuple[dict[str, LogLookups], int]:
    """The look-ups of each profile table in the log's first `limit` queries, and how many queries were read."""
    from analytics import readers, sources
    from analytics.pipeline import _resolve_format
    from analytics.sql import connect

    if not paths:
        raise UserError("--logs: no log given")
    files = sources.expand([str(p) for p in paths])
    fmt, sniffed = _resolve_format("auto", files)
    reader = readers.reader_for(fmt, files, sniffed, readers.ReadOptions())
    names = profile.table_names
    where = str(files[0].path)
    scratch = Path(tempfile.mkdtemp(prefix="autotune-replay-log."))
    try:
        con = connect(str(scratch), MEMORY_LIMIT, None)
        try:
            say(f"reading {len(files)} log file(s) ({fmt})")
            if reader.layout == "long":
                return _read_long(con, reader.load(con, ()), names, limit, where, profile.name)
            cols = reader.columns()
            lacking = [n for n in names if n not in cols]
            if lacking:
                raise UserError(
                    f"{where}: the log has no column {lacking[0]!r}, a table of profile {profile.name!r} "
                    f"(columns: {', '.join(cols)}); replay a log of the same tables, or profile this log with "
                    "`autotune analyze`"
                )
            return _read_wide(con, reader.load(con, names), names, limit, _multi_sep(profile.source))
        finally:
            con.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _multi_sep(source: dict) -> str | None:
    """The bag separator analyze used; a merged profile keeps it per merged source (`merge_profiles`)."""
    if source.get("multi_sep"):
        return source["multi_sep"]
    seps = {s.get("multi_sep") for s in source.get("sources", ()) if isinstance(s, dict)} - {None}
    return seps.pop() if len(seps) == 1 else None


def _read_wide(con, loaded, names: tuple[str, ...], limit: int, multi_sep: str | None):
    """Each table column as a list of valid ids per query (one-id cells: a list of zero or one)."""
    from analytics.counting import _bag_elements, _valid
    from analytics.sql import ident

    exprs = []
    for c in names:
        text = c in loaded.varchar
        elements = _bag_elements(c, loaded, multi_sep)
        if elements is None:
            exprs.append(f"CASE WHEN {_valid(ident(c), text)} THEN [CAST({ident(c)} AS VARCHAR)] ELSE [] END")
        else:
            exprs.append(
                f"coalesce(list_transform(list_filter({elements}, lambda x: {_valid('x', text)}), "
                "lambda x: CAST(x AS VARCHAR)), [])"
            )
    select = ", ".join(f"{e} AS {ident(c)}" for e, c in zip(exprs, names, strict=True))
    t = con.sql(f"SELECT {select} FROM {loaded.relation} LIMIT {int(limit)}").to_arrow_table()
    out = {}
    for c in names:
        col = t.column(c).combine_chunks()
        col = col.cast(pa.large_list(pa.string()))
        offsets = np.asarray(col.offsets, dtype=np.int64)
        out[c] = LogLookups(col.values.slice(int(offsets[0]), int(offsets[-1] - offsets[0])), offsets - offsets[0])
    return out, t.num_rows


def _read_long(con, loaded, names: tuple[str, ...], limit: int, where: str, profile_name: str):
    """Long form: the first `limit` queries (by first appearance) and each table's ids in log order."""
    rel = loaded.relation
    present = {r[0] for r in con.execute(f'SELECT DISTINCT "table" FROM {rel} WHERE "table" IS NOT NULL').fetchall()}
    lacking = [n for n in names if n not in present]
    if lacking:
        raise UserError(
            f"{where}: the log has no look-up of table {lacking[0]!r} of profile {profile_name!r} (tables: "
            f"{', '.join(sorted(present))}); replay a log of the same tables, or profile this log with "
            "`autotune analyze`"
        )
    t = con.sql(
        f'WITH r AS (SELECT row_number() OVER () AS pos, query_id, "table", id FROM {rel}), '
        f"q AS (SELECT query_id, min(pos) AS first FROM r WHERE query_id IS NOT NULL GROUP BY query_id "
        f"ORDER BY first LIMIT {int(limit)}), "
        "qn AS (SELECT query_id, row_number() OVER (ORDER BY first) - 1 AS qn FROM q) "
        'SELECT qn.qn AS q, r."table" AS tab, r.id AS id FROM r JOIN qn USING (query_id) '
        "WHERE r.id IS NOT NULL AND r.id <> '' ORDER BY qn.qn, r.pos"
    ).to_arrow_table()
    queries = con.execute(
        f"SELECT count(*) FROM (SELECT DISTINCT query_id FROM {rel} WHERE query_id IS NOT NULL LIMIT {int(limit)})"
    ).fetchall()[0][0]
    q = np.asarray(t.column("q").combine_chunks().to_numpy(zero_copy_only=False), dtype=np.int64)
    tab = t.column("tab").combine_chunks()
    ids = t.column("id").combine_chunks()
    out = {}
    for n in names:
        mask = pc.equal(tab, n)
        counts = np.bincount(q[np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)], minlength=queries)
        offsets = np.zeros(queries + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        out[n] = LogLookups(ids.filter(mask).cast(pa.string()), offsets)
    return out, int(queries)


def map_log_rows(profile: WorkloadProfile, table: str, ids: pa.Array) -> np.ndarray:
    """Row of every id (int64) by the row map `analyze` used for this table."""
    from analytics.rowmap import map_rows

    tp = profile.table(table)
    mode = tp.extra.get("row_map") or profile.source.get("row_map")
    if len(ids) == 0:
        return np.zeros(0, dtype=np.int64)
    uniq = pc.unique(ids)
    inverse = np.asarray(pc.index_in(ids, value_set=uniq), dtype=np.int64)
    if mode in ("hash", "identity"):
        rows, _ = map_rows(uniq, mode, tp.rows, table)
    elif mode == "dense":
        rows = _dense_rows(profile, table, uniq)
    else:
        raise UserError(
            f"profile {profile.name!r}, table {table!r}: unknown row map {mode!r}; regenerate the profile with "
            "`autotune analyze`"
        )
    return np.asarray(rows, dtype=np.int64)[inverse]


def _dense_rows(profile: WorkloadProfile, table: str, uniq: pa.Array) -> np.ndarray:
    """Rows of `uniq` under the dense map: those analyze gave the ids, read back from counts.parquet."""
    f = Path(profile.path or ".") / COUNTS_FILE
    try:
        t = pq.read_table(f, columns=["table", "id", "row"], filters=[("table", "=", table)])
    except (OSError, pa.ArrowException) as exc:
        raise UserError(f"{f}: cannot read the rows of table {table!r} ({exc}); regenerate the profile") from None
    known = t.column("id").combine_chunks()
    at = pc.index_in(uniq, value_set=known)
    if at.null_count:
        missing = uniq.filter(pc.is_null(at))[0].as_py()
        raise UserError(
            f"table {table!r}: id {missing!r} of the log is not in profile {profile.name!r}, whose row map 'dense' "
            "numbers only the ids it saw; replay the log the profile was made from, or re-run `autotune analyze`"
        )
    rows = t.column("row").combine_chunks().to_numpy()
    return rows[np.asarray(at, dtype=np.int64)]
