"""Fast path for wide text logs (Criteo TSV, CSV, TSV): parse once with Polars in memory, count per column.

Why: on a clean log, Polars' CSV parser is about twice as fast as DuckDB's reader with a rejects table,
and per-column `group_by().len()` in one `pl.collect_all` shares the parsed frame. DuckDB's reader stays
the reference for everything the fast path does not cover; `analytics.pipeline` falls back to it when
`count_text` returns None. The two paths give identical counts (tests compare them).

When the fast path applies:
- Memory: the whole text is held in memory while parsing, so it runs only when MEMORY_FACTOR x the text
  size (uncompressed; for gzip the size in the trailer, at least GZIP_RATIO x the compressed size) fits
  `--memory-limit`. Larger logs are parsed chunk by chunk (`analytics.fast_chunks`, the same proof of
  cleanliness per chunk), or by DuckDB, which spills to its scratch directory, when their counts outgrow
  the limit: memory stays bounded whatever the log size.
- Clean logs only. Polars raises on undecodable bytes, but with a column projection (only the table
  columns are parsed, a third faster than all of them) it drops the extra fields of a long line and pads
  a short line with nulls, silently (and reads a blank line as a row of nulls). So one more column
  (EXTRA, past the last) is read: a long line fills it. And the separators of the text are counted (numpy
  over the bytes, about 0.1 s per 500 MB, in a second thread while Polars parses: numpy and Polars both
  release the GIL): they must be (fields - 1) x lines, which a short line breaks.
  Residual blind spot: lines with extra empty trailing fields (which DuckDB accepts as rows) exactly
  balancing the separators missing from short lines in the same file: DuckDB skips the short lines, the
  fast path reads them as rows padded with nulls.
  CSV holding a quote character is left to DuckDB (a quoted comma would break the count). Any mismatch
  or parse error returns None: DuckDB then skips, counts and locates the malformed lines (and `--strict`
  stops at the first one).
- Long-form text logs and Parquet logs are not parsed here (DuckDB reads Parquet in place).
"""

from __future__ import annotations

import contextlib
import gzip
import mmap
import re
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from analytics.sources import LogFile

if TYPE_CHECKING:
    # loaded where used: the parse starts before numpy and the counting stack are imported, and their import
    # then overlaps it (`analytics.pipeline`)
    import numpy as np

    from analytics.counting import LogCounts, TableCounts

#: Peak memory of the fast path per byte of (uncompressed) text: the text itself plus the parsed columns
#: (measured: 1,356 MiB peak RSS for a 505 MiB Criteo TSV, interpreter and libraries included).
MEMORY_FACTOR = 3.0
#: Assumed minimum expansion of gzip text (the trailer's size is modulo 2^32, so it can under-state).
GZIP_RATIO = 4
#: Bytes of text counted per numpy pass: the temporary boolean array stays in the CPU cache (a 256 KiB
#: chunk counts 500 MB in 0.08 s, a 16 MiB one in 0.09-0.2 s).
COUNT_CHUNK = 1 << 18
#: mmap flags that read the whole file's pages in at once (Linux), cheaper than faulting them one by one.
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)
QUOTE = ord('"')
#: A column past the last one: a line with too many fields fills it (Polars' column projection would
#: otherwise drop the extra fields silently).
EXTRA = "\x00autotune:extra-field"
#: Polars engine of the per-column counts (the frame is already in memory; streaming is ~10% faster here).
ENGINE = "streaming"
#: Units of a memory limit, as DuckDB reads them (DuckDB also takes K, M, G, T, words and percentages;
#: such limits are valid, but the fast path declines them).
_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


@dataclass(frozen=True)
class TextLogs:
    """Wide text logs to count: the files, their layout, the table columns and the counting options."""

    files: tuple[LogFile, ...]
    names: tuple[str, ...]  # every column of a line, in order
    tables: tuple[str, ...]  # the columns to count
    delimiter: str
    header: bool  # each file starts with a header line
    quote: bool  # CSV quoting may occur (a quote makes the text unprovable: DuckDB then reads it)
    multi_sep: str | None = None  # cells are bags of ids split by this
    sample: float | None = None  # keep this fraction of rows (keep_mask of the row's position)
    seed: int = 0


@dataclass(frozen=True)
class FastCounts:
    """What the fast path produced: the per-table counts and the log rows parsed (none skipped)."""

    counts: LogCounts
    rows_read: int


def memory_bytes(limit: str) -> int | None:
    """A DuckDB-style memory limit ('2GB', '500MiB', '1.5 GB') in bytes; None when it does not parse."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", limit)
    if not m or m.group(2).lower() not in _UNITS:
        return None
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def text_bytes(f: LogFile) -> int:
    """Estimated uncompressed size of a text log."""
    size = f.path.stat().st_size
    if f.compression != "gzip":
        return size
    with f.path.open("rb") as fh:
        fh.seek(-4, 2)
        trailer = int.from_bytes(fh.read(4), "little")
    return max(trailer, GZIP_RATIO * size)


def fits(files: tuple[LogFile, ...], memory_limit: str) -> bool:
    """Whether the fast path's in-memory parse of `files` fits the memory limit."""
    limit = memory_bytes(memory_limit)
    return limit is not None and MEMORY_FACTOR * sum(text_bytes(f) for f in files) <= limit


def separators(buf: np.ndarray, sep: int, quote: bool) -> tuple[int, bool]:
    """(separators in a text buffer, whether it holds a '"' when `quote`), counted chunk by chunk."""
    import numpy as np

    seps = 0
    quoted = False
    for start in range(0, len(buf), COUNT_CHUNK):
        part = buf[start : start + COUNT_CHUNK]
        seps += int(np.count_nonzero(part == sep))
        if quote and not quoted:
            quoted = bool(np.count_nonzero(part == QUOTE))
    return seps, quoted


def _count_file(path: Path, sep: int, quote: bool) -> tuple[int, bool]:
    """`separators` of an uncompressed file, read through a read-only memory map."""
    import numpy as np

    with path.open("rb") as fh:
        mm = _map(fh.fileno())
        try:
            return separators(np.frombuffer(mm, dtype=np.uint8), sep, quote)
        finally:
            # the map cannot close while a numpy view of it lives, as it does in the traceback of an error
            # in separators: then it closes when that goes, and the error itself propagates
            with contextlib.suppress(BufferError):
                mm.close()


def _map(fileno: int) -> mmap.mmap:
    if _POPULATE:
        return mmap.mmap(fileno, 0, flags=mmap.MAP_SHARED | _POPULATE, prot=mmap.PROT_READ)
    return mmap.mmap(fileno, 0, access=mmap.ACCESS_READ)


def csv_options(
    names: tuple[str, ...], keep: tuple[str, ...], delimiter: str, header: bool, quote: bool
) -> dict[str, object]:
    """`pl.read_csv` options: columns `keep` (and EXTRA), all strings, no inference, ragged lines raise."""
    return {
        "has_header": header,
        "separator": delimiter,
        "quote_char": '"' if quote else None,
        "schema": dict.fromkeys((*names, EXTRA), pl.String),
        "columns": [*sorted(names.index(c) for c in keep), len(names)],
        "missing_columns": "insert",
        "infer_schema": False,
        "raise_if_empty": False,
        "truncate_ragged_lines": False,
    }


def proven_clean(df: pl.DataFrame, counted: tuple[int, bool], fields: int, header: bool) -> bool:
    """Whether a parsed text is provably clean: no quote (when looked for), (fields - 1) separators per
    line (header included), no line with an extra field (see the module docstring)."""
    seps, quoted = counted
    lines = df.height + (1 if header else 0)
    return not quoted and seps == (fields - 1) * lines and df[EXTRA].null_count() == df.height


def _read_one(
    f: LogFile, names: tuple[str, ...], keep: tuple[str, ...], delimiter: str, header: bool, quote: bool
) -> pl.DataFrame | None:
    """One file parsed by Polars (columns `keep`, all strings), or None when it is not provably clean.

    The separators are counted in a second thread while Polars parses (both release the GIL)."""
    try:
        with ThreadPoolExecutor(1) as pool:
            if f.compression == "gzip":
                import numpy as np

                source: bytes | Path = gzip.decompress(f.path.read_bytes())
                buf = np.frombuffer(source, dtype=np.uint8)
                counting = pool.submit(separators, buf, ord(delimiter), quote)
            else:
                source = Path(f.path)
                counting = pool.submit(_count_file, source, ord(delimiter), quote)
            df = pl.read_csv(source, **csv_options(names, keep, delimiter, header, quote))
            counted = counting.result()
    except (pl.exceptions.PolarsError, OSError, EOFError, zlib.error, ValueError):
        return None
    return df.select(keep) if proven_clean(df, counted, len(names), header) else None


def _ids_counted(ids: pl.LazyFrame, c: str, bag: bool) -> pl.LazyFrame:
    """Look-ups per id of column `c`, without the missing ids: the null group, and for bag elements the
    empty ids (`a||b`); a one-id cell is never empty, Polars reads an empty field as null. The filter runs
    on the groups, inside the plan (an empty-string test there costs 10% of the count)."""
    counted = ids.group_by(c).agg(pl.len().alias("n"))
    return counted.filter(pl.col(c).is_not_null() & (pl.col(c) != "") if bag else pl.col(c).is_not_null())


def _bag_ids(lazy: pl.LazyFrame, c: str, sep: str) -> pl.LazyFrame:
    """Look-ups per id of a bag column (`a|b|c`): split, explode, count."""
    return _ids_counted(lazy.select(pl.col(c).str.split(sep).explode().alias(c)), c, bag=True)


def _bag_stats(lazy: pl.LazyFrame, c: str, sep: str) -> pl.LazyFrame:
    """(queries with at least one non-empty id, largest bag) of a bag column."""
    k = pl.col(c).str.split(sep).list.eval(pl.element() != "").list.sum()
    return lazy.select(k.alias("k")).select((pl.col("k") > 0).sum().alias("with"), pl.col("k").max().alias("max"))


#: One table's counts over (part of) a log: the (id, n) frame and, for bag columns, (queries with a
#: look-up, largest bag); None for one-id cells, whose figures follow from the counts.
Partial = tuple[pl.DataFrame, tuple[int, int] | None]


def count_frame(df: pl.DataFrame, tables: tuple[str, ...], multi_sep: str | None) -> list[Partial]:
    """Per table, the counts of a parsed frame: one `group_by().len()` per column in one `collect_all`."""
    lazy = df.lazy()
    if multi_sep is None:
        return [(f, None) for f in pl.collect_all([_ids_counted(lazy, c, bag=False) for c in tables], engine=ENGINE)]
    plans = [_bag_ids(lazy, c, multi_sep) for c in tables] + [_bag_stats(lazy, c, multi_sep) for c in tables]
    got = pl.collect_all(plans, engine=ENGINE)
    n = len(tables)
    return [(got[i], (int(got[n + i]["with"][0] or 0), int(got[n + i]["max"][0] or 0))) for i in range(n)]


def table_counts(name: str, frame: pl.DataFrame, bag: tuple[int, int] | None) -> TableCounts:
    """Counts of one table (null and empty ids already dropped); `bag` = (queries with a look-up, largest
    bag) for bag columns (one-id cells: every look-up is its own query, the largest bag is 1)."""
    import numpy as np

    from analytics.counting import TableCounts

    counts = frame["n"].to_numpy().astype(np.int64)
    if bag is None:
        total = int(counts.sum())
        bag = (total, 1 if total else 0)
    return TableCounts(name, frame[name].to_arrow(), counts, *bag)


def count_text(logs: TextLogs) -> FastCounts | None:
    """Count the tables of wide text logs with Polars; None when some file is not provably clean (see above).

    Sampling keeps the rows whose position in the log (0-based, files in order) passes `keep_mask`, the
    same rows the DuckDB path keeps.
    """
    frames = []
    for f in logs.files:
        df = _read_one(f, logs.names, logs.tables, logs.delimiter, logs.header, logs.quote)
        if df is None:
            return None
        frames.append(df)
    df = pl.concat(frames, rechunk=False) if len(frames) > 1 else frames[0]
    rows_read = df.height
    if rows_read == 0:
        return None  # let the DuckDB path word the "no data rows" error
    if logs.sample is not None:
        import numpy as np

        from analytics.sampling import keep_mask

        df = df.filter(pl.Series(keep_mask(np.arange(rows_read, dtype=np.int64), logs.sample, logs.seed)))
    counted = count_frame(df, logs.tables, logs.multi_sep)
    tcs = [table_counts(c, f, bag) for c, (f, bag) in zip(logs.tables, counted, strict=True)]
    from analytics.counting import LogCounts

    return FastCounts(LogCounts(df.height, tuple(tcs)), rows_read)
