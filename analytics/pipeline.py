"""`analyze`: query logs in, workload profile directory out. The one entry point the CLI and tests call.

Steps: expand and classify the inputs (`sources`), pick the reader of the format (`readers`), parse the
text ONCE into DuckDB (bounded memory: `memory_limit`, spilling to a scratch directory next to the output),
count per table column (`counting`), map ids to rows and compute every figure (`build`, `stats`), write
the profile directory atomically (`profile_io`). Nothing is written on any error.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import autotune
from analytics import counting, readers, sources
from analytics.build import TableSettings, default_row_map, table_profile
from analytics.modelspec import ModelSpec, load_model_spec
from analytics.profile_io import TableArrays, write_profile
from analytics.rowmap import ROW_MAPS
from analytics.sql import connect
from autotune.errors import UserError
from autotune.workload import DTYPE_BYTES, WorkloadProfile, load_profile

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
        return fmt, sniffed
    if first.parquet:
        schema = readers.parquet_schema(first)
        return ("long" if all(c in schema.names for c in sources.LONG_COLUMNS) else "parquet"), None
    assert sniffed is not None
    return sniffed.format, sniffed


def _pick_tables(
    reader: readers.LogReader, con: Any, requested: Sequence[str] | None, model: ModelSpec | None, where: str
) -> tuple[str, ...]:
    cols = reader.columns()
    if requested:
        missing = [t for t in requested if t not in cols]
        if missing:
            raise UserError(f"{where}: no column {missing[0]!r} for --tables; columns: {', '.join(cols)}")
        return tuple(dict.fromkeys(requested))
    if model is not None:
        in_model = tuple(c for c in cols if c in model.tables)
        if in_model:
            return in_model
    picked = reader.default_tables(con)
    if not picked:
        raise UserError(
            f"{where}: every column looks numeric, so none is a table by default; "
            f"pick the table columns with --tables (columns: {', '.join(cols)})"
        )
    return picked


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
    name = name or default_name(paths)
    out_dir = Path(out) if out is not None else DEFAULT_OUT_ROOT / name
    opts = readers.ReadOptions(tuple(columns) if columns else None, strict, sample, seed)
    reader = readers.reader_for(fmt_resolved, files, sniffed, opts)
    where = str(files[0].path)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.scratch.", dir=out_dir.parent))
    try:
        con = connect(str(scratch), memory_limit, threads)
        try:
            if reader.layout == "long":
                chosen = None if not tables else tuple(dict.fromkeys(tables))
                say(f"parsing {len(files)} file(s) ({fmt_resolved})")
                loaded = reader.load(con, ())
            else:
                chosen = _pick_tables(reader, con, tables, spec, where)
                say(f"parsing {len(files)} file(s) ({fmt_resolved}), {len(chosen)} table(s)")
                loaded = reader.load(con, chosen)
            if sample is not None:
                con.execute(f"CREATE TEMP TABLE sampled AS SELECT * FROM {loaded.relation}")
                loaded = readers.Loaded(
                    "sampled", loaded.layout, loaded.varchar, loaded.rows_read, loaded.rows_skipped, loaded.skipped
                )
            say("counting look-ups per table")
            if loaded.layout == "long":
                lc = counting.count_long(con, loaded, chosen)
            else:
                assert chosen is not None
                lc = counting.count_wide(con, loaded, chosen, multi_sep)
        finally:
            con.close()
        if lc.queries == 0 and sample is not None:
            raise UserError(f"--sample {sample} kept no query of {loaded.rows_read} rows; use a larger fraction")
        if lc.queries == 0:
            raise UserError(f"{where}: the log holds no queries")
        say("computing statistics")
        profiles, arrays = [], []
        for tc in lc.tables:
            ts = spec.get(tc.name) if spec else None
            settings = TableSettings(
                rows=ts.rows if ts else None,
                dim=ts.dim if ts else dim,
                dtype=ts.dtype if ts else dtype,
                row_map=default_row_map(row_map, ts.rows if ts else None),
            )
            prof, rows = table_profile(
                tc.name,
                tc.ids,
                tc.counts,
                settings,
                queries_total=lc.queries,
                queries_with=tc.queries,
                pooling_max=tc.pooling_max,
                top_k=top_k,
                sample_fraction=sample,
            )
            profiles.append(prof)
            arrays.append((tc.name, tc.ids, rows, tc.counts))
        profile = WorkloadProfile(
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
                "model": str(model) if model is not None else None,
                "row_map": row_map or "default",
                "sample": {"fraction": sample, "seed": seed, "queries_sampled": lc.queries} if sample else None,
                "autotune_version": autotune.__version__,
            },
        )
        written: list[Path] = []
        say(f"writing {out_dir}")
        write_profile(out_dir, profile, arrays, _plotter(written, out_dir) if plots else None)
        return AnalyzeResult(load_profile(out_dir), out_dir, loaded.skipped, tuple(written))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _plotter(written: list[Path], final: Path) -> Callable[[Path, WorkloadProfile], None]:
    def make(tmp: Path, profile: WorkloadProfile) -> None:
        from analytics.plots import write_plots

        written.extend(final / p.relative_to(tmp) for p in write_plots(tmp, profile))

    return make


__all__ = ["AnalyzeResult", "TableArrays", "analyze"]
