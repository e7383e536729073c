"""`analyze`: query logs in, workload profile directory out. The one entry point the CLI and tests call.

Steps: expand and classify the inputs (`sources`), pick the reader of the format (`readers`), parse the
log ONCE and count per table column, map ids to rows and compute every figure (`build`, `stats`), write
the profile directory atomically (`profile_io`; counts.parquet is written while the statistics run).
Nothing is written on any error.

Which parser (recorded as `source.parser` in the profile):
- `polars` (`fast_text`): wide text logs (Criteo, CSV, TSV) whose text fits in memory (3x the text size
  within `memory_limit`) and that are provably clean (no malformed line, no quoted CSV): parsed in memory,
  about twice as fast as DuckDB's reader.
- `polars-chunks` (`fast_chunks`): the same logs when their text does not fit: read and counted chunk by
  chunk (memory_limit / 8), as long as the counts themselves take less than half of `memory_limit`.
- `duckdb` (`readers`, `counting`): everything else, and the fallback whenever a Polars path declines:
  logs whose counts outgrow memory (bounded memory: `memory_limit`, spilling to a scratch directory next
  to the output), logs with malformed lines (skipped, counted, located; `strict` stops at the first),
  long-form logs, Parquet (read in place; list columns are multi-hot bags). DuckDB is imported and
  started only when this path (or a reader's column sniffing) needs it.

Import order is part of the speed: everything before the parse (inputs, model spec, format, reader, table
choice) needs neither numpy nor pyarrow, which load in a second thread while the parse runs
(`STATISTICS_STACK`); modules on that path import them inside the functions that use them.
"""

from __future__ import annotations

import importlib
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import autotune
from analytics import fast_text, readers, sources
from analytics.modelspec import ModelSpec, load_model_spec
from analytics.rowmap import ROW_MAPS
from analytics.sql import connect
from autotune.dtypes import DTYPE_BYTES
from autotune.errors import UserError

if TYPE_CHECKING:
    from analytics import counting
    from analytics.build import TableSettings
    from analytics.profile_io import CountsWriter
    from autotune.workload import WorkloadProfile

#: What turns counts into a profile: numpy, pyarrow, pyarrow.parquet and the modules built on them, about 0.1 s
#: to import. Nothing before the parse needs them, so `analyze` imports them in a second thread while Polars
#: (which releases the GIL) parses the log: the import then costs the parse a share of one core instead of
#: adding its full length to every run.
STATISTICS_STACK = ("analytics.counting", "analytics.build", "analytics.profile_io", "autotune.workload")

DEFAULT_OUT_ROOT = Path("runs") / "profiles"
JSON_COVERAGE_KEYS = ("0.01", "0.1", "1", "10", "50")


@dataclass(frozen=True)
class AnalyzeResult:
    """What `analyze` produced: the profile (as loaded back from disk), where it is, what was skipped."""

    profile: WorkloadProfile
    path: Path
    skipped: tuple[str, ...] = ()  # the first few malformed rows as "file:line: reason"
    plots: tuple[Path, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        """The `--json` object of `autotune analyze`."""
        p = self.profile
        out: dict[str, Any] = {
            "name": p.name,
            "profile": str(self.path),
            "queries": p.queries,
            "rows_read": p.rows_read,
            "rows_skipped": p.rows_skipped,
            "skipped_examples": list(self.skipped),
            "sampled": p.sample_fraction is not None,
            "sample_fraction": p.sample_fraction,
            "plots": [str(x) for x in self.plots],
            "tables": [],
        }
        for t in p.tables:
            entry: dict[str, Any] = {
                "name": t.name,
                "accesses": t.accesses,
                "distinct": t.distinct,
                "missing": t.missing,
                "queries": t.queries,
                "pooling_factor_mean": t.pooling_mean,
                "pooling_max": t.pooling_max,
                "top_share": t.top_share,
                "coverage": {k: t.coverage[k] for k in JSON_COVERAGE_KEYS if k in t.coverage},
                "zipf_alpha": t.zipf_alpha,
                "rows": t.rows,
                "dim": t.dim,
                "dtype": t.dtype,
                "row_map": t.extra.get("row_map"),
                "reuse_rows": list(t.reuse_rows),
                "reuse_accesses": list(t.reuse_accesses),
                "hot_ids": [list(h) for h in t.hot_ids[:8]],
            }
            for key in ("distinct_rows", "distinct_is_lower_bound", "stderr"):
                if key in t.extra:
                    entry[key] = t.extra[key]
            out["tables"].append(entry)
        if p.sample_fraction is not None:
            out["sample_note"] = (
                f"estimated from a {p.sample_fraction:g} sample of queries: accesses, queries and missing are "
                "scaled up, distinct is a lower bound, shares carry the binomial standard error in 'stderr'"
            )
        return out


def default_name(paths: Sequence[str | Path]) -> str:
    """Profile name from the first input: a file's stem without compression suffix, or a folder's name."""
    p = Path(str(paths[0]).split("*")[0].rstrip("/") or ".")
    name = p.name
    for suffix in (".gz", ".parquet", ".pq", ".csv", ".tsv", ".txt", ".log"):
        name = name.removesuffix(suffix)
    return name or "profile"


def _resolve_format(fmt: str, files: tuple[sources.LogFile, ...]) -> tuple[str, sources.Sniffed | None]:
    if fmt not in sources.FORMATS:
        raise UserError(f"unknown --format {fmt!r}: use one of {', '.join(sources.FORMATS)}")
    first = files[0]
    sniffed = None if first.parquet else sources.sniff(first)
    if fmt != "auto":
        if sniffed is not None and fmt in ("csv", "tsv"):
            _check_delimiter(first, fmt, sources.first_line(first))
        return fmt, sniffed
    if first.parquet:
        schema = readers.parquet_schema(first)
        return ("long" if all(c in schema.names for c in sources.LONG_COLUMNS) else "parquet"), None
    assert sniffed is not None
    return sniffed.format, sniffed


def _check_delimiter(first: sources.LogFile, fmt: str, line: str) -> None:
    """An explicit --format csv on tab-separated text (or tsv on comma-separated text) would read every line
    as one field, i.e. one table named after the whole header: say which format the text looks like."""
    if fmt == "csv" and "," not in line and "\t" in line:
        raise UserError(f"{first.path}: line 1 holds tabs and no comma; it is tab-separated: use --format tsv")
    if fmt == "tsv" and "\t" not in line and "," in line:
        raise UserError(f"{first.path}: line 1 holds commas and no tab; it is comma-separated: use --format csv")


class _DuckDB:
    """The DuckDB connection of one `analyze` call, opened on first use: the Polars fast path needs none,
    and importing and starting DuckDB costs about 0.1 s of every run."""

    def __init__(self, scratch: Path, memory_limit: str, threads: int | None) -> None:
        self._settings = (str(scratch), memory_limit, threads)
        self._con: Any = None

    def connect(self) -> Any:
        if self._con is None:
            self._con = connect(*self._settings)
        return self._con

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def out_of_memory(self, exc: BaseException) -> bool:
        """Whether `exc` is DuckDB running out of `memory_limit` (only possible once it has been started)."""
        if self._con is None:
            return False
        import duckdb

        return isinstance(exc, duckdb.OutOfMemoryException)


def _pick_tables(
    reader: readers.LogReader,
    db: readers.Connect,
    requested: Sequence[str] | None,
    model: ModelSpec | None,
    where: str,
) -> tuple[str, ...]:
    cols = reader.columns()
    if requested:
        missing = [t for t in requested if t not in cols]
        if missing:
            raise UserError(f"{where}: no column {missing[0]!r} for --tables; columns: {', '.join(cols)}")
        return tuple(dict.fromkeys(requested))
    if model is not None:
        in_model = tuple(c for c in cols if c in model.tables)
        if not in_model:
            raise UserError(
                f"{model.path}: names none of the log's columns ({_listed(cols)}), so it sizes no table; "
                f"check its table names ({_listed(tuple(model.tables))}) or leave out --model"
            )
        return in_model
    picked = reader.default_tables(db)
    if not picked:
        beside = Path(where).parent / "model.toml"
        hint = f", or give the model spec beside the log: --model {beside}" if beside.is_file() else ""
        raise UserError(
            f"{where}: every column looks numeric, so none is a table by default; "
            f"pick the table columns with --tables (columns: {', '.join(cols)}){hint}"
        )
    return picked


def _listed(names: Sequence[str], shown: int = 8) -> str:
    """Names for a message, the first few and how many more."""
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")


def analyze(
    paths: Sequence[str | Path],
    *,
    fmt: str = "auto",
    tables: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
    multi_sep: str | None = None,
    model: str | Path | None = None,
    dim: int = 64,
    dtype: str = "float32",
    row_map: str | None = None,
    strict: bool = False,
    sample: float | None = None,
    seed: int = 0,
    top_k: int = 64,
    out: str | Path | None = None,
    name: str | None = None,
    plots: bool = False,
    memory_limit: str = "2GB",
    threads: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> AnalyzeResult:
    """Profile query logs and write the profile directory (default runs/profiles/<name>/) atomically."""
    say = progress or (lambda _msg: None)
    if not paths:
        raise UserError("no input logs given")
    if row_map is not None and row_map not in ROW_MAPS:
        raise UserError(f"unknown --row-map {row_map!r}: use one of {', '.join(ROW_MAPS)}")
    if sample is not None and not 0.0 < sample <= 1.0:
        raise UserError(f"--sample must be a fraction in (0, 1], got {sample}")
    if sample == 1.0:
        sample = None
    if dim < 1:
        raise UserError(f"--dim must be a positive integer, got {dim}")
    if dtype not in DTYPE_BYTES:
        raise UserError(f"unknown --dtype {dtype!r}: use one of {', '.join(DTYPE_BYTES)}")
    if top_k < 0:
        raise UserError(f"--top-k must be >= 0, got {top_k}")
    if multi_sep == "":
        raise UserError("--multi-sep must be a non-empty separator such as '|'")
    files = sources.expand(list(paths))
    spec = load_model_spec(model, dim, dtype) if model is not None else None
    fmt_resolved, sniffed = _resolve_format(fmt, files)
    if columns and (fmt_resolved == "criteo" or files[0].parquet):
        fixed = (
            "Criteo logs have fixed columns (label, I1..I13, C1..C26)"
            if fmt_resolved == "criteo"
            else ("Parquet files name their own columns")
        )
        raise UserError(f"--columns names the columns of headerless CSV/TSV files; {fixed}: leave it out")
    name = name or default_name(paths)
    out_dir = Path(out) if out is not None else DEFAULT_OUT_ROOT / name
    opts = readers.ReadOptions(tuple(columns) if columns else None, strict, sample, seed)
    reader = readers.reader_for(fmt_resolved, files, sniffed, opts)
    where = str(files[0].path)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.scratch.", dir=out_dir.parent))
    try:
        db = _DuckDB(scratch, memory_limit, threads)
        try:
            chosen = None if reader.layout == "long" else _pick_tables(reader, db.connect, tables, spec, where)
            stack = _import_in_background(STATISTICS_STACK)
            counted = _count_fast(reader, files, chosen, multi_sep, sample, seed, memory_limit, say)
            if counted is not None:
                lc, loaded, parser = counted
            else:
                lc, loaded = _count_duckdb(
                    db.connect(), reader, files, fmt_resolved, tables, chosen, multi_sep, sample, say
                )
                parser = "duckdb"
        except Exception as exc:
            if not db.out_of_memory(exc):
                raise
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(
                f"{where}: reading the logs needs more memory than --memory-limit {memory_limit} ({first}); "
                "raise --memory-limit"
            ) from None
        finally:
            db.close()
        stack.join()
        from analytics.build import table_profile
        from analytics.profile_io import PROFILE_FILE, write_profile
        from analytics.rowmap import map_rows
        from autotune.workload import WorkloadProfile

        if lc.queries == 0 and sample is not None:
            raise UserError(f"--sample {sample} kept no query of {loaded.rows_read} rows; use a larger fraction")
        if lc.queries == 0:
            raise UserError(f"{where}: the log holds no queries")
        settings = [_table_settings(tc.name, spec, dim, dtype, row_map) for tc in lc.tables]

        def build(counts: CountsWriter) -> WorkloadProfile:
            # table by table: rows, then counts.parquet gets the table (written in the background) while
            # its statistics are computed
            profiles = []
            for tc, st in zip(lc.tables, settings, strict=True):
                mapped = map_rows(tc.ids, st.row_map, st.rows, tc.name)
                counts.add(tc.name, tc.ids, mapped[0], tc.counts)
                prof, _ = table_profile(
                    tc.name,
                    tc.ids,
                    tc.counts,
                    st,
                    queries_total=lc.queries,
                    queries_with=tc.queries,
                    pooling_max=tc.pooling_max,
                    top_k=top_k,
                    sample_fraction=sample,
                    mapped=mapped,
                )
                profiles.append(prof)
            return WorkloadProfile(
                name=name,
                queries=round(lc.queries / sample) if sample else lc.queries,
                rows_read=loaded.rows_read,
                rows_skipped=loaded.rows_skipped,
                tables=tuple(profiles),
                sample_fraction=sample,
                source={
                    "inputs": [str(f.path) for f in files],
                    "format": fmt_resolved,
                    "multi_sep": multi_sep,
                    "parser": parser,
                    "model": str(model) if model is not None else None,
                    "row_map": row_map or "default",
                    "sample": {"fraction": sample, "seed": seed, "queries_sampled": lc.queries} if sample else None,
                    "top_k": top_k,
                    "autotune_version": autotune.__version__,
                },
            )

        written: list[Path] = []
        say(f"computing statistics, writing {out_dir}")
        prof = write_profile(out_dir, build, extras=_plotter(written, out_dir) if plots else None)
        # what load_profile(out_dir) gives, without reading back and parsing the JSON just written
        loaded_back = WorkloadProfile.from_dict(prof.to_dict(), where=str(out_dir / PROFILE_FILE), path=out_dir)
        return AnalyzeResult(loaded_back, out_dir, loaded.skipped, tuple(written))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _import_in_background(modules: Sequence[str]) -> threading.Thread:
    """Import `modules` in a daemon thread (see STATISTICS_STACK); join it before using them. An import that
    fails there fails again, with its message, where the caller imports the module itself."""

    def run() -> None:
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception:  # the caller's own import of it fails again, with its message
                return

    thread = threading.Thread(target=run, name="analyze-imports", daemon=True)
    thread.start()
    return thread


def _table_settings(table: str, spec: ModelSpec | None, dim: int, dtype: str, row_map: str | None) -> TableSettings:
    """Size and row map of one table: the model's figures where it has the table, else the defaults."""
    from analytics.build import TableSettings, default_row_map

    ts = spec.get(table) if spec else None
    return TableSettings(
        rows=ts.rows if ts else None,
        dim=ts.dim if ts else dim,
        dtype=ts.dtype if ts else dtype,
        row_map=default_row_map(row_map, ts.rows if ts else None),
    )


def _count_fast(
    reader: readers.LogReader,
    files: tuple[sources.LogFile, ...],
    chosen: tuple[str, ...] | None,
    multi_sep: str | None,
    sample: float | None,
    seed: int,
    memory_limit: str,
    say: Callable[[str], None],
) -> tuple[counting.LogCounts, readers.Loaded, str] | None:
    """Clean wide text logs: Polars, in memory when the text fits (`analytics.fast_text`), else chunk by
    chunk (`analytics.fast_chunks`); None = use DuckDB."""
    limit = fast_text.memory_bytes(memory_limit)
    if not isinstance(reader, readers.TextWide) or chosen is None or limit is None:
        return None
    logs = fast_text.TextLogs(
        files, reader.names, chosen, reader.delimiter, reader.header, reader.fmt == "csv", multi_sep, sample, seed
    )
    if fast_text.fits(files, memory_limit):
        say(f"parsing {len(files)} file(s) ({reader.fmt}, in memory), {len(chosen)} table(s)")
        fast, parser = fast_text.count_text(logs), "polars"
    else:
        from analytics import fast_chunks

        chunk = limit // fast_chunks.CHUNK_SHARE
        say(f"parsing {len(files)} file(s) ({reader.fmt}, in chunks of {chunk >> 20} MiB), {len(chosen)} table(s)")
        fast = fast_chunks.count_text_chunked(
            logs,
            chunk_bytes=chunk,
            merge_bytes=limit // fast_chunks.MERGE_SHARE,
            counts_budget=limit // fast_chunks.COUNTS_SHARE,
        )
        parser = "polars-chunks"
    if fast is None:
        return None
    loaded = readers.Loaded("", "wide", frozenset(chosen), fast.rows_read, 0, ())
    return fast.counts, loaded, parser


def _count_duckdb(
    con: Any,
    reader: readers.LogReader,
    files: tuple[sources.LogFile, ...],
    fmt: str,
    tables: Sequence[str] | None,
    chosen: tuple[str, ...] | None,
    multi_sep: str | None,
    sample: float | None,
    say: Callable[[str], None],
) -> tuple[counting.LogCounts, readers.Loaded]:
    """Parse into DuckDB (bounded memory, malformed rows skipped and located), then count per column."""
    from analytics import counting

    if chosen is None:  # long form: the tables are values of its `table` column
        say(f"parsing {len(files)} file(s) ({fmt})")
        loaded = reader.load(con, ())
    else:
        say(f"parsing {len(files)} file(s) ({fmt}), {len(chosen)} table(s)")
        loaded = reader.load(con, chosen)
    if sample is not None:
        con.execute(f"CREATE TEMP TABLE sampled AS SELECT * FROM {loaded.relation}")
        loaded = replace(loaded, relation="sampled")
    say("counting look-ups per table")
    if loaded.layout == "long":
        return counting.count_long(con, loaded, None if not tables else tuple(dict.fromkeys(tables))), loaded
    assert chosen is not None
    return counting.count_wide(con, loaded, chosen, multi_sep), loaded


def _plotter(written: list[Path], final: Path) -> Callable[[Path, WorkloadProfile], None]:
    def make(tmp: Path, profile: WorkloadProfile) -> None:
        from analytics.plots import write_plots

        written.extend(final / p.relative_to(tmp) for p in write_plots(tmp, profile))

    return make


__all__ = ["AnalyzeResult", "analyze"]
