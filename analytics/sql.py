"""Small helpers for DuckDB: SQL quoting, and a connection with bounded memory. (The sampling hash that the
SQL paths apply lives in `analytics.sampling`.)"""

from __future__ import annotations

from typing import TYPE_CHECKING

from autotune.errors import UserError

if TYPE_CHECKING:  # DuckDB is imported where a connection is opened: the Polars fast path never needs it
    import duckdb


def ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def lit(value: str) -> str:
    """A quoted SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def connect(temp_dir: str, memory_limit: str, threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with bounded memory that spills to `temp_dir`, and no progress bar on stdout."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET enable_progress_bar=false")
    try:
        con.execute(f"SET memory_limit={lit(memory_limit)}")
    except duckdb.Error as exc:
        con.close()
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = "use e.g. 2GB or 500MiB"
        raise UserError(f"--memory-limit {memory_limit!r}: not a size DuckDB accepts ({msg}); {hint}") from None
    con.execute(f"SET temp_directory={lit(temp_dir)}")
    if threads:
        con.execute(f"SET threads={int(threads)}")
    return con
