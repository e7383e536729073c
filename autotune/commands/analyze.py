"""`autotune analyze LOGS...`: profile query logs into a workload profile directory."""

from __future__ import annotations

import gc
import os
import re
from pathlib import Path

import typer

from autotune import console
from autotune.errors import UserError, handle_errors
from autotune.interrupt import reports_interrupt

# One BLAS thread (unless the user set it): analyze's only BLAS calls are a few small products and fits per
# table, and OpenBLAS's thread pool, started when numpy is first imported (below, in `analyze_command`),
# spins a second core for about 0.05 s of every run. Set before numpy loads; later it has no effect.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


#: A profile name is one plain path part: it names the folder runs/profiles/<name>/.
_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def _check_name(name: str | None) -> None:
    if name is not None and (not _NAME.fullmatch(name) or name in (".", "..")):
        raise UserError(
            f"--name {name!r}: give a plain name (letters, digits, '-', '_', '.'; not '.' or '..'); "
            "it names the folder runs/profiles/<name>/ (use --out for another place)"
        )


def _csv_list(value: str | None, option: str) -> list[str] | None:
    if value is None:
        return None
    items = [x.strip() for x in value.split(",")]
    if not all(items):
        raise UserError(f"{option}: give comma-separated names without empty entries, got {value!r}")
    return items


@handle_errors
def analyze_command(
    logs: list[str] = typer.Argument(
        ..., help="Log files, folders (every log file inside) or globs.", show_default=False
    ),
    fmt: str = typer.Option(
        "auto", "--format", "-f", help="auto, criteo, csv, tsv, parquet or long (query_id,table,id rows)."
    ),
    tables: str | None = typer.Option(
        None, "--tables", help="Comma-separated table columns (default: every non-numeric-looking column)."
    ),
    columns: str | None = typer.Option(
        None, "--columns", help="Column names of headerless CSV/TSV files, comma-separated (line 1 is then data)."
    ),
    multi_sep: str | None = typer.Option(
        None, "--multi-sep", help="Cells hold a bag of ids separated by this string (multi-hot look-ups), e.g. '|'."
    ),
    model: Path | None = typer.Option(
        None, "--model", help="Model spec (TOML or JSON): per table name, rows, dim, dtype."
    ),
    dim: int = typer.Option(64, "--dim", help="Embedding dim of tables the model spec does not give."),
    dtype: str = typer.Option("float32", "--dtype", help="Element dtype of tables the model spec does not give."),
    row_map: str | None = typer.Option(
        None,
        "--row-map",
        help="How an id becomes a row: hash (FNV-1a mod rows), identity, dense. "
        "Default: hash when --model gives the table's rows, else dense.",
    ),
    strict: bool = typer.Option(False, "--strict", help="Stop at the first malformed row instead of skipping it."),
    sample: float | None = typer.Option(
        None, "--sample", help="Profile a deterministic sample of this fraction of queries (fast estimate)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the --sample hash."),
    top_k: int = typer.Option(64, "--top-k", help="Hot ids kept per table."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Profile directory (default runs/profiles/<name>/)."),
    name: str | None = typer.Option(None, "--name", help="Profile name (default: the first input's stem)."),
    plots: bool = typer.Option(False, "--plots", help="Also write coverage-curve and frequency-histogram PNGs."),
    memory_limit: str = typer.Option(
        "2GB",
        "--memory-limit",
        help="Memory budget, e.g. 2GB or 500MiB. Clean text logs up to a third of it are parsed in memory "
        "(Polars, fast), larger ones in chunks of an eighth of it (Polars); malformed logs, and logs whose counts "
        "outgrow half of it, by DuckDB, which spills to disk next to the output beyond it.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout (progress stays on stderr)."),
) -> None:
    """Read query logs and write a workload profile: per table the look-up counts, skew, coverage curve,
    reuse histogram, row-range masses and hot ids (profile.json + counts.parquet)."""
    from analytics import analyze
    from analytics.pipeline import DEFAULT_OUT_ROOT, default_name
    from autotune.atomic import check_output_dir
    from autotune.outputs import PROFILE_OUTPUT

    _check_name(name)
    # before the logs are read: a folder that is not a previous profile is refused at once, not after the analysis
    target = Path(out) if out is not None else DEFAULT_OUT_ROOT / (name or default_name(logs))
    check_output_dir(target, PROFILE_OUTPUT)
    gc.enable()  # start-up is over: `autotune.cli.main` turns the collector off until here (see FAST_EXIT)
    interrupted = reports_interrupt(lambda: f"nothing was written ({target} is as it was)")
    with interrupted, console.status("analysing logs") as update:
        result = analyze(
            logs,
            fmt=fmt,
            tables=_csv_list(tables, "--tables"),
            columns=_csv_list(columns, "--columns"),
            multi_sep=multi_sep,
            model=model,
            dim=dim,
            dtype=dtype,
            row_map=row_map,
            strict=strict,
            sample=sample,
            seed=seed,
            top_k=top_k,
            out=out,
            name=name,
            plots=plots,
            memory_limit=memory_limit,
            progress=update,
        )
    if result.profile.rows_skipped:
        shown = "; ".join(result.skipped)
        skipped = result.profile.rows_skipped
        console.err.print(f"[yellow]skipped {skipped} malformed row(s)[/]: {shown}", highlight=False)
    if as_json:
        console.emit_json(result.to_json())
        return
    _print_table(result)


def _print_table(result: object) -> None:
    from rich.table import Table

    p = result.profile  # type: ignore[attr-defined]
    title = f"{p.name}: {p.queries} queries, {p.rows_read} rows read, {p.rows_skipped} skipped"
    if p.sample_fraction:
        title += f" (estimate from a {p.sample_fraction:g} sample)"
    t = Table(title=title)
    for col in ("table", "rows", "accesses", "distinct", "missing", "pooling", "top share", "1% ids", "zipf α"):
        t.add_column(col, justify="left" if col == "table" else "right")
    for tp in p.tables:
        t.add_row(
            tp.name,
            f"{tp.rows:,}",
            f"{tp.accesses:,}",
            f"{tp.distinct:,}",
            f"{tp.missing:,}",
            f"{tp.pooling_mean:.2f}",
            f"{tp.top_share:.3%}",
            f"{tp.coverage.get('1', 0.0):.1%}",
            f"{tp.zipf_alpha:.2f}",
        )
    console.out.print(t)  # the result on stdout, like the --json object; the note of where it went on stderr
    console.err.print(f"profile written to {result.path}", highlight=False)  # type: ignore[attr-defined]


def register(app: typer.Typer) -> None:
    app.command("analyze")(analyze_command)
