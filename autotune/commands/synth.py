"""`autotune synth OUT`: deterministic synthetic query logs, with the model spec and the law they follow."""

from __future__ import annotations

import math
import shlex
from pathlib import Path
from typing import Any

import typer

from autotune.atomic import OutputKind, check_output_dir
from autotune.console import emit_json, err, ticker
from autotune.docfile import load_doc
from autotune.errors import UserError, handle_errors
from autotune.interrupt import reports_interrupt

#: Files a previous `autotune synth` output holds; such a folder may be replaced.
SYNTH_RECORD = "synth.json"
MODEL_FILE = "model.toml"


def load_spec_file(path: Path) -> Any:
    """A spec (see `autotune.synth.spec_from_dict`) from a TOML or JSON file."""
    from autotune.synth import spec_from_dict

    doc = load_doc(path, "synth spec")
    return spec_from_dict(doc, str(path), default_name=path.stem)


def synth_output() -> OutputKind:
    """What a synth output folder holds: the log (any format's file name), model.toml, synth.json."""
    from autotune.synth_writers import LOG_FILES

    return OutputKind("synth", "OUT", SYNTH_RECORD, (*LOG_FILES.values(), MODEL_FILE, SYNTH_RECORD))


@handle_errors
def synth_command(
    out: Path = typer.Argument(
        ...,
        help="Output folder: the log, model.toml and synth.json. A previous synth output there (holding nothing "
        "else) is replaced; any other non-empty folder is refused.",
        show_default=False,
    ),
    queries: int = typer.Option(..., "--queries", "-n", min=1, help="Queries (log rows) to generate."),
    preset: str | None = typer.Option(None, "--preset", help="Named workload: criteo1tb, avazu, meta84 or tiny."),
    spec_file: Path | None = typer.Option(
        None,
        "--spec",
        help="Spec file (TOML or JSON): a tables array (TOML: \\[\\[tables]]) with name, rows, dim, dtype, "
        "pooling, bag, alpha, missing, and optional \\[defaults].",
    ),
    tables: int | None = typer.Option(None, "--tables", min=1, help="Uniform spec: this many identical tables C1..CT."),
    rows: int | None = typer.Option(
        None, "--rows", min=1, help="Rows per table (uniform spec: default 1000000; overrides a preset/spec)."
    ),
    pooling: float | None = typer.Option(
        None, "--pooling", help="Mean ids per query and table (uniform spec: default 1 = one-hot; overrides)."
    ),
    zipf: float | None = typer.Option(
        None, "--zipf", help="Zipf exponent of row popularity, <= 1 = uniform (uniform spec: default 1.1; overrides)."
    ),
    dim: int = typer.Option(128, "--dim", min=1, help="Embedding dim of the uniform spec's tables."),
    dtype: str | None = typer.Option(
        None,
        "--dtype",
        help="Element type of every table in model.toml: float32, float16, bfloat16, int8 or uint8 (default: the "
        "preset's or spec's; float32 for a uniform spec). Criteo-1TB's tables take 89.5 GiB in float32, 44.8 GiB "
        "in float16.",
    ),
    contiguous_hot: bool = typer.Option(
        False,
        "--contiguous-hot",
        help="Keep hot rows contiguous (rank k -> row k-1) instead of scattering them: the adversarial case for "
        "row-range sharding.",
    ),
    seed: int = typer.Option(0, "--seed", min=0, help="Random seed; same seed and spec, same bytes."),
    fmt: str = typer.Option(
        "auto",
        "--format",
        "-f",
        help="criteo (26 one-hot tables, TSV), parquet (wide), long (query_id,table,id Parquet); auto = criteo "
        "when the spec is Criteo-shaped, parquet when every table is one-hot, else long.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout (progress stays on stderr)."),
) -> None:
    """Write deterministic synthetic query logs (FBGEMM-style Zipf look-ups, de-duplicated inside each bag,
    hot rows scattered or contiguous), plus model.toml (table rows and dims, for `autotune analyze --model`)
    and synth.json (the spec and seed: the law the data follows)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from autotune import atomic
    from autotune.synth import CHUNK_QUERIES, uniform_spec
    from autotune.synth_presets import PRESETS
    from autotune.synth_writers import LOG_FILES, ROW_MAPS, criteo_compatible, model_toml, resolve_format, write_log

    kind = synth_output()
    check_output_dir(out, kind)
    if zipf is not None and not (math.isfinite(zipf) and 0.0 <= zipf <= 10.0):
        raise UserError(f"--zipf must be in [0, 10] (<= 1 means uniform), got {zipf}")
    given = [name for name, v in (("--preset", preset), ("--spec", spec_file), ("--tables", tables)) if v is not None]
    if len(given) > 1:
        raise UserError(f"give only one of --preset, --spec, --tables (got {', '.join(given)})")
    if preset is not None:
        if preset not in PRESETS:
            raise UserError(f"--preset {preset!r} is unknown; use one of {', '.join(PRESETS)}")
        spec = PRESETS[preset].override(rows=rows, pooling=pooling, alpha=zipf, dtype=dtype)
    elif spec_file is not None:
        spec = load_spec_file(spec_file).override(rows=rows, pooling=pooling, alpha=zipf, dtype=dtype)
    elif tables is not None:
        spec = uniform_spec(
            tables,
            rows if rows is not None else 1_000_000,
            pooling=pooling if pooling is not None else 1.0,
            alpha=zipf if zipf is not None else 1.1,
            dim=dim,
            dtype=dtype or "float32",
        )
    else:
        raise UserError(f"say what to generate: --preset ({', '.join(PRESETS)}), --spec FILE or --tables T")
    if fmt == "auto" and not criteo_compatible(spec):
        fmt = "long" if any(t.multi_hot for t in spec.tables) else "parquet"
    fmt = resolve_format(spec, fmt)

    log_name = LOG_FILES[fmt]
    on_terminal = err.is_terminal  # off a terminal a bar prints nothing: a plain line every 10 s instead
    tick, written = ticker("synth"), [0]
    columns = (TextColumn("synth"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    # outermost, so the temporary folder is gone before the line says nothing was written
    kept = reports_interrupt(lambda: f"nothing was written ({out} is as it was)")
    with kept, atomic.atomic_dir(out, kind) as tmp, Progress(*columns, console=err, disable=not on_terminal) as bar:
        task = bar.add_task("queries", total=queries)

        def advance(n: int) -> None:
            bar.advance(task, n)
            written[0] += n
            if not on_terminal:
                tick(f"{written[0]:,}/{queries:,} queries")

        stats = write_log(tmp / log_name, spec, queries, seed, fmt, contiguous_hot, progress=advance)
        atomic.write_text(tmp / MODEL_FILE, model_toml(spec))
        record = {
            "version": 1,
            "tool": "autotune synth",
            "queries": queries,
            "seed": seed,
            "format": fmt,
            "contiguous_hot": contiguous_hot,
            "chunk_queries": CHUNK_QUERIES,
            "law": "bounded Zipf(alpha) ranks (alpha <= 1: uniform), first distinct ranks of each bag's draws, "
            + ("identity rank -> row" if contiguous_hot else "affine rank -> row bijection")
            + "; see autotune/synth.py",
            "files": {"log": log_name, "model": MODEL_FILE},
            "row_map": ROW_MAPS[fmt],
            "spec": spec.to_dict(),
            "written": [s.__dict__ for s in stats],
        }
        atomic.write_json(tmp / SYNTH_RECORD, record)

    command = (
        f"autotune analyze {shlex.quote(str(out / log_name))} --format {fmt} "
        f"--model {shlex.quote(str(out / MODEL_FILE))} --row-map {ROW_MAPS[fmt]}"
    )
    shorts = sum(s.short_bags for s in stats)
    if shorts:
        err.print(f"[yellow]{shorts} bag(s) kept fewer distinct ids than drawn for (table too small and skewed)[/]")
    if as_json:
        emit_json(
            {
                "out": str(out),
                "log": str(out / log_name),
                "model": str(out / MODEL_FILE),
                "format": fmt,
                "row_map": ROW_MAPS[fmt],
                "queries": queries,
                "seed": seed,
                "spec": spec.name,
                "contiguous_hot": contiguous_hot,
                "tables": [s.__dict__ for s in stats],
                "analyze": command,
            }
        )
        return
    accesses = sum(s.accesses for s in stats)
    err.print(
        f"wrote {queries:,} queries ({accesses:,} look-ups over {len(spec.tables)} tables, spec {spec.name}) "
        f"to {out / log_name}",
        highlight=False,
    )
    err.print(f"analyse with: {command}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("synth")(synth_command)
