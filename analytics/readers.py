"""One reader per log format, behind one small interface: parse the log once into DuckDB.

A reader knows its columns and which of them are tables by default; `load` parses the files ONCE into a
DuckDB relation (text: a temporary table, which DuckDB spills to its temp directory beyond its memory limit;
Parquet: a view over the files, read in place) and reports rows read, rows skipped and where. Counting
then runs one GROUP BY per table column on that relation (`analytics.counting`); wide logs are never
unpivoted. A new format is one new class with `columns`, `default_tables` and `load`.

Text parsing uses DuckDB's CSV reader with every column as VARCHAR (ids are opaque strings), gzip
handled natively, and `store_rejects` so a malformed line (wrong field count, undecodable bytes) is
skipped, counted and located by file and line number; `strict` turns the first one into an error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from analytics.sources import CRITEO_FIELDS, LONG_COLUMNS, LogFile, Sniffed, first_line, split_fields
from analytics.sql import ident, lit
from autotune.errors import UserError

if TYPE_CHECKING:
    # DuckDB is imported where a query runs, numpy and pyarrow where a reader samples or reads Parquet: the
    # Polars fast path starts parsing text before either is loaded (`analytics.pipeline`)
    import duckdb
    import numpy as np
    import pyarrow as pa

#: Opens (or returns) the DuckDB connection; readers call it only when they need DuckDB.
Connect = Callable[[], "duckdb.DuckDBPyConnection"]

#: Criteo's layout: label, 13 integer features, 26 categorical features (the tables).
CRITEO_COLUMNS: tuple[str, ...] = ("label", *(f"I{i}" for i in range(1, 14)), *(f"C{i}" for i in range(1, 27)))
CRITEO_TABLES: tuple[str, ...] = CRITEO_COLUMNS[14:]
#: Malformed lines listed by name in the output (all of them are counted).
SKIPPED_SHOWN = 5
#: Rows of the first file inspected to decide which columns look numeric.
SNIFF_ROWS = 1000
assert len(CRITEO_COLUMNS) == CRITEO_FIELDS


@dataclass(frozen=True)
class ReadOptions:
    """Reader settings from the command line."""

    columns: tuple[str, ...] | None = None  # names of a headerless CSV/TSV's columns
    strict: bool = False  # first malformed row is an error instead of being skipped
    sample: float | None = None  # keep this fraction of queries (deterministic Bernoulli)
    seed: int = 0


@dataclass(frozen=True)
class Loaded:
    """A parsed log, ready to count: the relation to read, its layout, and what parsing found."""

    relation: str  # SQL relation (table name or parenthesised query), sampled when asked
    layout: str  # "wide" (one column per table) or "long" (query_id, table, id)
    varchar: frozenset[str]  # columns holding text (an empty string there is a missing value)
    rows_read: int  # log rows parsed and kept (before sampling)
    rows_skipped: int  # malformed rows skipped
    skipped: tuple[str, ...]  # the first few skipped rows as "file:line: reason"
    lists: frozenset[str] = frozenset()  # list columns (Parquet list<int>/list<string>): each cell is a bag


def reader_for(fmt: str, files: tuple[LogFile, ...], sniffed: Sniffed | None, opts: ReadOptions) -> LogReader:
    """The reader of a resolved format (see `analytics.sources.sniff`)."""
    if fmt == "parquet":
        return ParquetWide(files, opts)
    if fmt == "long":
        return LongLog(files, sniffed, opts)
    return TextWide(files, fmt, sniffed, opts)


class LogReader:
    """The interface: columns, default table columns (`connect` opens DuckDB if they need a query), and
    `load` into DuckDB."""

    layout = "wide"

    def columns(self) -> tuple[str, ...]:
        raise NotImplementedError

    def default_tables(self, connect: Connect) -> tuple[str, ...]:
        raise NotImplementedError

    def load(self, con: duckdb.DuckDBPyConnection, keep: tuple[str, ...]) -> Loaded:
        raise NotImplementedError


# --------------------------------------------------------------------------------------------------------
# Text (CSV / TSV / Criteo)


def _read_csv_sql(f: LogFile, names: tuple[str, ...], delimiter: str, header: bool, quote: bool) -> str:
    cols = "{" + ", ".join(f"{lit(n)}: 'VARCHAR'" for n in names) + "}"
    q = "quote='\"', escape='\"'" if quote else "quote='', escape=''"
    return (
        f"read_csv({lit(str(f.path))}, delim={lit(delimiter)}, header={str(header).lower()}, columns={cols}, "
        f"{q}, auto_detect=false, compression={lit(f.compression)}, null_padding=false, "
        "ignore_errors=true, store_rejects=true, rejects_table='rejects_err', rejects_scan='rejects_scan')"
    )


def _load_text(
    con: duckdb.DuckDBPyConnection,
    files: tuple[LogFile, ...],
    names: tuple[str, ...],
    keep: tuple[str, ...],
    delimiter: str,
    header: bool,
    quote: bool,
    strict: bool,
) -> tuple[int, int, tuple[str, ...]]:
    """Parse every file into the temporary table `log` (columns `keep`); return read, skipped, where."""
    import duckdb

    con.execute(f"CREATE OR REPLACE TEMP TABLE log ({', '.join(f'{ident(c)} VARCHAR' for c in keep)})")
    select = ", ".join(ident(c) for c in keep)
    for f in files:
        try:
            con.execute(f"INSERT INTO log SELECT {select} FROM {_read_csv_sql(f, names, delimiter, header, quote)}")
        except duckdb.Error as exc:
            if isinstance(exc, duckdb.OutOfMemoryException):
                raise  # analyze words it, with the remedy: more --memory-limit
            raise UserError(f"{f.path}: cannot parse the file ({_first_line(exc)})") from None
    rows_read = con.execute("SELECT count(*) FROM log").fetchall()[0][0]
    try:
        rej = con.execute(
            "SELECT s.file_path, e.line, min(e.error_type), count(*) OVER () FROM rejects_err e "
            "JOIN rejects_scan s USING (scan_id, file_id) GROUP BY s.file_path, e.line, e.scan_id "
            f"ORDER BY e.scan_id, e.line LIMIT {SKIPPED_SHOWN}"
        ).fetchall()
    except duckdb.CatalogException:
        rej = []
    skipped = rej[0][3] if rej else 0
    where = tuple(f"{path}:{line}: {str(kind).lower()}" for path, line, kind, _ in rej)
    if strict and skipped:
        raise UserError(f"{where[0]} (malformed row; --strict stops at the first one: fix it or drop --strict)")
    if rows_read + skipped == 0:
        raise UserError(f"{', '.join(str(f.path) for f in files)}: no data rows in the log")
    return rows_read, skipped, where


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _sampled(
    con: duckdb.DuckDBPyConnection, relation: str, cols: list[str], key: str, keys: np.ndarray | pa.Array
) -> str:
    """`relation` restricted to the rows whose `key` is one of `keys` (the sample, computed in numpy)."""
    import pyarrow as pa

    con.register("sample_keys", pa.table({"k": keys}))
    return f"(SELECT {', '.join(ident(c) for c in cols)} FROM {relation} WHERE {key} IN (SELECT k FROM sample_keys))"


class TextWide(LogReader):
    """Criteo TSV (no header, 40 fields, tables C1..C26) or a wide CSV/TSV (header row or --columns)."""

    def __init__(self, files: tuple[LogFile, ...], fmt: str, sniffed: Sniffed | None, opts: ReadOptions) -> None:
        self.files, self.fmt, self.opts = files, fmt, opts
        if any(f.parquet for f in files):
            bad = next(f for f in files if f.parquet)
            raise UserError(f"{bad.path}: is Parquet, but --format is {fmt}; use --format parquet or auto")
        self.delimiter = "\t" if fmt in ("criteo", "tsv") else ","
        self.header = fmt != "criteo" and opts.columns is None
        if fmt == "criteo":
            self.names = CRITEO_COLUMNS
        elif opts.columns is not None:
            self.names = opts.columns
        else:
            self.names = self._header(files)

    def _header(self, files: tuple[LogFile, ...]) -> tuple[str, ...]:
        names = split_fields(first_line(files[0]), self.delimiter)
        if len(set(names)) != len(names) or any(not n for n in names):
            raise UserError(
                f"{files[0].path}: the header row has empty or repeated column names; "
                "give names with --columns a,b,c (then line 1 is data)"
            )
        for f in files[1:]:
            other = split_fields(first_line(f), self.delimiter)
            if other != names:
                raise UserError(f"{f.path}: its header differs from {files[0].path}'s; analyse them separately")
        return names

    def columns(self) -> tuple[str, ...]:
        return self.names

    def default_tables(self, connect: Connect) -> tuple[str, ...]:
        if self.fmt == "criteo":
            return CRITEO_TABLES
        src = _read_csv_sql(self.files[0], self.names, self.delimiter, self.header, self.fmt == "csv")
        checks = ", ".join(
            f"count({ident(c)}) > 0 AND count({ident(c)}) = count(TRY_CAST({ident(c)} AS DOUBLE))" for c in self.names
        )
        con = connect()
        numeric = con.execute(f"SELECT {checks} FROM (SELECT * FROM {src} LIMIT {SNIFF_ROWS})").fetchall()[0]
        con.execute("DROP TABLE IF EXISTS rejects_err; DROP TABLE IF EXISTS rejects_scan")
        return tuple(c for c, num in zip(self.names, numeric, strict=True) if not num)

    def load(self, con: duckdb.DuckDBPyConnection, keep: tuple[str, ...]) -> Loaded:
        read, skipped, where = _load_text(
            con, self.files, self.names, keep, self.delimiter, self.header, self.fmt == "csv", self.opts.strict
        )
        rel = "log"
        if self.opts.sample is not None:  # rowid = position in the log (insertion order is preserved)
            from analytics.sampling import kept_positions

            kept = kept_positions(read, self.opts.sample, self.opts.seed)
            rel = _sampled(con, "log", list(keep), "rowid", kept)
        return Loaded(rel, "wide", frozenset(keep), read, skipped, where)


# --------------------------------------------------------------------------------------------------------
# Parquet


def parquet_schema(f: LogFile) -> pa.Schema:
    """The schema of a Parquet file; an unreadable one is a `UserError` naming it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_schema(f.path)
    except (OSError, pa.ArrowException) as exc:
        raise UserError(f"{f.path}: not a readable Parquet file ({_first_line(exc)})") from None


def _parquet_union(files: tuple[LogFile, ...], cols: list[str], with_key: bool) -> str:
    select = ", ".join(ident(c) for c in cols)
    if not with_key:
        paths = "[" + ", ".join(lit(str(f.path)) for f in files) + "]"
        return f"(SELECT {select} FROM read_parquet({paths}))"
    parts = [
        f"SELECT {select}, ({i}::UBIGINT << 40) + file_row_number AS __key "
        f"FROM read_parquet({lit(str(f.path))}, file_row_number=true)"
        for i, f in enumerate(files)
    ]
    return "(" + " UNION ALL ".join(parts) + ")"


def _is_numeric(t: pa.DataType) -> bool:
    import pyarrow as pa

    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_decimal(t)


def _is_list(t: pa.DataType) -> bool:
    import pyarrow as pa

    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def _is_list_of_ids(t: pa.DataType) -> bool:
    """list<int*> or list<string>: what a multi-hot look-up column holds (`autotune synth` writes these)."""
    if not _is_list(t):
        return False
    import pyarrow as pa

    v = t.value_type
    return pa.types.is_integer(v) or pa.types.is_string(v) or pa.types.is_large_string(v)


class ParquetWide(LogReader):
    """Wide Parquet: one column per table; default tables are the non-numeric columns and the list columns
    of ids. A list column (list<int64>, list<string>) is a multi-hot bag per query: each element is a
    look-up, null elements (and empty strings) are not; `--multi-sep` applies to string columns only."""

    def __init__(self, files: tuple[LogFile, ...], opts: ReadOptions) -> None:
        self.files, self.opts = files, opts
        text = [f for f in files if not f.parquet]
        if text:
            raise UserError(f"{text[0].path}: is not a Parquet file, but --format is parquet")
        self.schemas = [parquet_schema(f) for f in files]
        self.names = tuple(self.schemas[0].names)

    def columns(self) -> tuple[str, ...]:
        return self.names

    def default_tables(self, connect: Connect) -> tuple[str, ...]:
        """Non-numeric columns, and list columns of integers or strings (multi-hot bags of ids)."""
        s = self.schemas[0]
        return tuple(n for n in self.names if _is_list_of_ids(s.field(n).type) or not _is_numeric(s.field(n).type))

    def load(self, con: duckdb.DuckDBPyConnection, keep: tuple[str, ...]) -> Loaded:
        import duckdb
        import numpy as np
        import pyarrow as pa
        import pyarrow.parquet as pq

        from analytics.sampling import kept_positions

        for f, s in zip(self.files, self.schemas, strict=True):
            lacking = [c for c in keep if c not in s.names]
            if lacking:
                raise UserError(f"{f.path}: has no column {lacking[0]!r}; columns: {', '.join(s.names)}")
        try:
            read = con.execute(f"SELECT count(*) FROM {_parquet_union(self.files, list(keep), False)}").fetchall()[0][0]
        except duckdb.Error as exc:
            if isinstance(exc, duckdb.OutOfMemoryException):
                raise  # analyze words it, with the remedy: more --memory-limit
            raise UserError(f"cannot read the Parquet inputs ({_first_line(exc)})") from None
        if read == 0:
            raise UserError(f"{', '.join(str(f.path) for f in self.files)}: no data rows in the log")
        types = {c: self.schemas[0].field(c).type for c in keep}
        varchar = frozenset(
            c
            for c, t in types.items()
            if pa.types.is_string(t)
            or pa.types.is_large_string(t)
            or (_is_list(t) and (pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type)))
        )
        lists = frozenset(c for c, t in types.items() if _is_list(t))
        if self.opts.sample is None:
            rel = _parquet_union(self.files, list(keep), False)
        else:  # key = (file index << 40) + row number in the file
            kept = np.concatenate(
                [
                    (i << 40)
                    + kept_positions(pq.ParquetFile(f.path).metadata.num_rows, self.opts.sample, self.opts.seed)
                    for i, f in enumerate(self.files)
                ]
            )
            rel = _sampled(con, _parquet_union(self.files, list(keep), True), list(keep), "__key", kept)
        return Loaded(rel, "wide", varchar, read, 0, (), lists)


# --------------------------------------------------------------------------------------------------------
# Long form: (query_id, table, id) rows


class LongLog(LogReader):
    """Long form, CSV/TSV with a `query_id,table,id` header (or --columns) or Parquet with those columns.

    The tables are the distinct values of `table`; a query is a distinct `query_id`. Sampling keeps whole
    queries: a query is kept when splitmix64 of the FNV-1a hash of its id text falls under the fraction.
    """

    layout = "long"

    def __init__(self, files: tuple[LogFile, ...], sniffed: Sniffed | None, opts: ReadOptions) -> None:
        self.files, self.opts = files, opts
        self.parquet = files[0].parquet
        if any(f.parquet != self.parquet for f in files):
            raise UserError("long-form inputs mix Parquet and text files; analyse them separately")
        if self.parquet:
            self.schemas = [parquet_schema(f) for f in files]
            per_file = [tuple(schema.names) for schema in self.schemas]
            self.delimiter = ","
        else:
            self.delimiter = sniffed.delimiter if sniffed else ","
            per_file = [
                opts.columns or tuple(x.strip() for x in split_fields(first_line(f), self.delimiter)) for f in files
            ]
        for f, names in zip(files, per_file, strict=True):  # every file: a later one may lack a column
            lacking = [c for c in LONG_COLUMNS if c not in names]
            if lacking:
                raise UserError(
                    f"{f.path}: a long-form log needs columns {', '.join(LONG_COLUMNS)}; "
                    f"missing {', '.join(lacking)} (columns: {', '.join(names)})"
                )
        self.names = per_file[0]

    def columns(self) -> tuple[str, ...]:
        return self.names

    def default_tables(self, connect: Connect) -> tuple[str, ...]:
        return ()  # the tables are values of the `table` column, known after loading

    def load(self, con: duckdb.DuckDBPyConnection, keep: tuple[str, ...]) -> Loaded:
        import duckdb

        cols = list(LONG_COLUMNS)
        if self.parquet:
            sel = (
                'CAST(query_id AS VARCHAR) AS query_id, CAST("table" AS VARCHAR) AS "table", CAST(id AS VARCHAR) AS id'
            )
            paths = "[" + ", ".join(lit(str(f.path)) for f in self.files) + "]"
            rel = f"(SELECT {sel} FROM read_parquet({paths}, union_by_name=true))"
            try:
                read = con.execute(f"SELECT count(*) FROM {rel}").fetchall()[0][0]
            except duckdb.Error as exc:
                if isinstance(exc, duckdb.OutOfMemoryException):
                    raise  # analyze words it, with the remedy: more --memory-limit
                raise UserError(f"cannot read the Parquet inputs ({_first_line(exc)})") from None
            if read == 0:
                raise UserError(f"{', '.join(str(f.path) for f in self.files)}: no data rows in the log")
            return Loaded(self._sample(con, rel), "long", frozenset(cols), read, 0, ())
        header = self.opts.columns is None
        read, skipped, where = _load_text(
            con, self.files, self.names, tuple(cols), self.delimiter, header, self.delimiter == ",", self.opts.strict
        )
        return Loaded(self._sample(con, "log"), "long", frozenset(cols), read, skipped, where)

    def _sample(self, con: duckdb.DuckDBPyConnection, rel: str) -> str:
        """Keep whole queries: those whose splitmix64(FNV-1a(query_id)) falls under the fraction."""
        if self.opts.sample is None:
            return rel
        import pyarrow as pa

        from analytics.rowmap import fnv1a64
        from analytics.sampling import keep_mask

        qids = con.sql(f"SELECT DISTINCT query_id FROM {rel} WHERE query_id IS NOT NULL").to_arrow_table()
        qids = qids.column("query_id").combine_chunks()
        kept = qids.filter(pa.array(keep_mask(fnv1a64(qids), self.opts.sample, self.opts.seed)))
        return _sampled(con, rel, list(LONG_COLUMNS), "query_id", kept)
