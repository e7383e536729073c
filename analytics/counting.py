"""Per-table id counts: one GROUP BY per table column over the parsed log (never an unpivot).

The counts (table, id, count) are the one artefact every other figure derives from. Missing values are
not look-ups: NULL or empty cells (and, for bags, cells with no non-empty id) count as `missing` for that
table. A bag is a cell split by `--multi-sep`, or a Parquet list cell (list<int64>, list<string>: what
`autotune synth --format parquet` writes for multi-hot tables); NULL elements of a list are not look-ups.
Alongside the counts each table gets its number of queries with at least one look-up and its largest bag,
which the counts alone cannot give.

This is the DuckDB path (bounded memory, any log size and format); `analytics.fast_text` counts clean wide
text logs that fit in memory with Polars, with the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from analytics.readers import Loaded
from analytics.sql import ident, lit
from autotune.errors import UserError

if TYPE_CHECKING:
    import duckdb


@dataclass(frozen=True)
class TableCounts:
    """The look-ups of one table: per-id counts plus the per-query figures."""

    name: str
    ids: pa.Array  # string ids, aligned with counts
    counts: np.ndarray  # int64 look-ups per id
    queries: int  # queries with at least one look-up of this table
    pooling_max: int  # largest bag in one query


@dataclass(frozen=True)
class LogCounts:
    """Counts of every table, and the number of queries they were counted over."""

    queries: int
    tables: tuple[TableCounts, ...]


def _arrow(con: duckdb.DuckDBPyConnection, query: str) -> pa.Table:
    return con.sql(query).to_arrow_table()


def count_wide(
    con: duckdb.DuckDBPyConnection, loaded: Loaded, tables: tuple[str, ...], multi_sep: str | None
) -> LogCounts:
    """Count a wide log: one GROUP BY per table column. Bag columns (a list column, or any column when
    `multi_sep` splits its text) count every element; the others one id per cell."""
    rel = loaded.relation
    queries = con.execute(f"SELECT count(*) FROM {rel}").fetchall()[0][0]
    bags = {c: _bag_elements(c, loaded, multi_sep) for c in tables}
    bag_stats: dict[str, tuple[int, int]] = {}
    if any(e is not None for e in bags.values()):
        lens = ", ".join(
            f"len(list_filter({e}, lambda x: {_valid('x', c in loaded.varchar)})) AS {ident(c)}"
            for c, e in bags.items()
            if e is not None
        )
        cols = [c for c, e in bags.items() if e is not None]
        aggs = ", ".join(f"count(*) FILTER (WHERE {ident(c)} > 0), coalesce(max({ident(c)}), 0)" for c in cols)
        row = con.execute(f"SELECT {aggs} FROM (SELECT {lens} FROM {rel})").fetchall()[0]
        bag_stats = {c: (int(row[2 * i]), int(row[2 * i + 1])) for i, c in enumerate(cols)}
    out = []
    for c in tables:
        col, elements = ident(c), bags[c]
        if elements is not None:
            t = _arrow(
                con,
                f"SELECT CAST(id AS VARCHAR) AS id, n FROM (SELECT id, count(*) AS n FROM "
                f"(SELECT unnest({elements}) AS id FROM {rel}) WHERE {_valid('id', c in loaded.varchar)} GROUP BY id)",
            )
            with_lookup, pmax = bag_stats[c]
        else:
            t = _arrow(
                con,
                f"SELECT CAST({col} AS VARCHAR) AS id, count(*) AS n FROM {rel} "
                f"WHERE {_valid(col, c in loaded.varchar)} GROUP BY {col}",
            )
        ids, counts = t.column("id").combine_chunks(), np.asarray(t.column("n").combine_chunks(), dtype=np.int64)
        if elements is None:
            with_lookup = int(counts.sum())
            pmax = 1 if with_lookup else 0
        out.append(TableCounts(c, ids, counts, with_lookup, pmax))
    return LogCounts(queries, tuple(out))


def _valid(expr: str, text: bool) -> str:
    """SQL condition: `expr` is a look-up (not NULL; for text, not empty)."""
    return f"{expr} IS NOT NULL AND {expr} <> ''" if text else f"{expr} IS NOT NULL"


def _bag_elements(c: str, loaded: Loaded, multi_sep: str | None) -> str | None:
    """SQL list of the ids in a cell of a bag column; None for a one-id column."""
    if c in loaded.lists:
        return ident(c)
    if multi_sep is not None:
        return f"string_split(CAST({ident(c)} AS VARCHAR), {lit(multi_sep)})"
    return None


def count_long(con: duckdb.DuckDBPyConnection, loaded: Loaded, tables: tuple[str, ...] | None) -> LogCounts:
    """Count a long log: GROUP BY (table, id); queries are distinct query ids. `tables` None = all of them."""
    rel = loaded.relation
    valid = "id IS NOT NULL AND id <> '' AND \"table\" IS NOT NULL"
    queries = con.execute(f"SELECT count(DISTINCT query_id) FROM {rel}").fetchall()[0][0]
    present = [r[0] for r in con.execute(f'SELECT DISTINCT "table" FROM {rel} WHERE "table" IS NOT NULL').fetchall()]
    present.sort()
    if tables is None:
        tables = tuple(present)
    else:
        unknown = [t for t in tables if t not in present]
        if unknown:
            raise UserError(
                f"--tables: no table {unknown[0]!r} in the log's 'table' column; tables: {', '.join(present)}"
            )
    if not tables:
        raise UserError("the log has no table names in its 'table' column")
    counts = _arrow(
        con, f'SELECT "table", id, count(*) AS n FROM {rel} WHERE {valid} GROUP BY "table", id ORDER BY "table"'
    )
    per_query = {
        r[0]: (int(r[1]), int(r[2]))
        for r in con.execute(
            f'SELECT "table", count(*), max(n) FROM (SELECT "table", query_id, count(*) AS n FROM {rel} '
            f'WHERE {valid} GROUP BY "table", query_id) GROUP BY "table"'
        ).fetchall()
    }
    import pyarrow.compute as pc  # here, not at the top: the fast paths never need it (0.035 s of start-up)

    names = counts.column("table").combine_chunks()
    out = []
    for t in tables:
        mask = pc.equal(names, t)
        ids = counts.column("id").combine_chunks().filter(mask)
        n = counts.column("n").combine_chunks().filter(mask).to_numpy()
        q, pmax = per_query.get(t, (0, 0))
        out.append(TableCounts(t, ids, np.asarray(n, dtype=np.int64), q, pmax))
    return LogCounts(queries, tuple(out))
