"""`autotune export RUN --format json|torchrec [--out FILE]`: the tuned mapping as a config for serving.

Every format is checked against its JSON Schema (shipped in the package) before it is written; `--out`
writes atomically, without it the document goes to stdout. docs/export.md describes the formats.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from autotune import atomic
from autotune.commands.show import HW_HELP, PROFILE_HELP, RUN_HELP, RUNS_DIR_HELP
from autotune.console import emit_json, err
from autotune.errors import UserError, handle_errors
from autotune.export import DEFAULT_MODULE, ExportOptions, exporters, get_exporter, render
from autotune.search import runstore
from autotune.search.loaded import load_run


def _format_help() -> str:
    return "Export format: " + "; ".join(f"{n}: {e.description}" for n, e in exporters().items()) + "."


@handle_errors
def export_command(
    run: str = typer.Argument(..., help=RUN_HELP),
    fmt: str = typer.Option(..., "--format", "-f", help=_format_help()),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write the document to this file (atomically)."),
    module: str = typer.Option(
        DEFAULT_MODULE, "--module", help="torchrec: module path of the embedding module the plan's tables belong to."
    ),
    runs_dir: Path = typer.Option(runstore.DEFAULT_ROOT, "--runs-dir", help=RUNS_DIR_HELP),
    profile: Path | None = typer.Option(None, "--profile", help=PROFILE_HELP),
    hw: str | None = typer.Option(None, "--hw", help=HW_HELP),
) -> None:
    """Export a search run's best mapping for serving: the native JSON mapping or a TorchRec-style plan.

    json: autotune's native mapping with every task's core; `autotune evaluate` on it gives the stored latency.
    torchrec: per table sharding_type, compute_kernel, ranks and shards tiling the table; one rank per core.
    What TorchRec cannot express (strategy, hot rows, id remap, partial replicas) is in its 'autotune' section.
    Both are checked against their JSON Schema before writing; docs/export.md describes every field.
    """
    exporter = get_exporter(fmt)
    if out is not None and out.is_dir():
        raise UserError(
            f"--out {out}: is a directory; give a file name, e.g. {out / (Path(run).name + exporter.suffix)}"
        )
    loaded = load_run(run, runs_dir, profile=profile, hardware=hw)
    doc = render(exporter, loaded, ExportOptions(module=module))
    if out is None:
        emit_json(doc)
        return
    atomic.write_text(out, json.dumps(doc, indent=2) + "\n")
    err.print(
        f"wrote {out} ({exporter.name}, run {loaded.name}, {len(loaded.mapping.tables)} tables)",
        markup=False,
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    """Attach `export` to the main app."""
    app.command("export")(export_command)
