"""`autotune export RUN --format json|torchrec [--out FILE]`: the tuned mapping as a config for serving.

Every format is checked against its JSON Schema (shipped in the package) before it is written; `--out`
writes atomically, without it the document goes to stdout. `--json` prints one object saying what was
exported (the document itself under `document` when there is no `--out`). docs/export.md describes the formats.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import typer

from autotune import atomic
from autotune.commands.show import HW_HELP, PROFILE_HELP, RUN_HELP, RUNS_DIR_HELP
from autotune.console import emit_json, err
from autotune.errors import UserError, handle_errors
from autotune.export import DEFAULT_MODULE, Exporter, ExportOptions, exporters, get_exporter, render
from autotune.outputs import OWNED_FOLDERS, is_mapping_document
from autotune.search import runstore
from autotune.search.loaded import LoadedRun, load_run

#: A module path in a PyTorch model: dotted Python identifiers (`sparse_arch.embedding_bag_collection`).
_MODULE_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


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
    trial: int | None = typer.Option(
        None,
        "--trial",
        help="Export this Pareto point of a --objectives latency,memory run (a trial listed in its pareto.json) "
        "instead of the best mapping.",
    ),
    runs_dir: Path = typer.Option(runstore.DEFAULT_ROOT, "--runs-dir", help=RUNS_DIR_HELP),
    profile: Path | None = typer.Option(None, "--profile", help=PROFILE_HELP),
    hw: str | None = typer.Option(None, "--hw", help=HW_HELP),
    json_out: bool = typer.Option(
        False,
        "--json",
        help="Print one JSON object on stdout: format, path, run, hardware, tables, latency (and the document "
        "itself when there is no --out).",
    ),
) -> None:
    """Export a search run's best mapping for serving: the native JSON mapping or a TorchRec-style plan.

    json: autotune's native mapping with every task's core; `autotune evaluate` on it gives the stored latency.

    torchrec: per table sharding_type, compute_kernel, ranks and shards tiling the table; one rank per core.
    What TorchRec cannot express (strategy, hot rows, id remap, partial replicas) is in its 'autotune' section.
    Both are checked against their JSON Schema before writing; docs/export.md describes every field.
    """
    exporter = get_exporter(fmt)
    if not _MODULE_PATH.fullmatch(module):
        raise UserError(
            f"--module {module!r}: give the dotted attribute path of the embedding module in the model, "
            f"e.g. {DEFAULT_MODULE}"
        )
    if out is not None:
        atomic.check_output_json(out, output_kind(exporter, Path(run).name), OWNED_FOLDERS)
    loaded = load_run(run, runs_dir, profile=profile, hardware=hw, trial=trial)
    doc = render(exporter, loaded, ExportOptions(module=module))
    if loaded.status_note:
        err.print(f"note: {loaded.status_note}", markup=False, soft_wrap=True, highlight=False)
    for line in exporter.caveats(doc):
        err.print(f"note: {line}", markup=False, soft_wrap=True, highlight=False)
    if out is None:
        emit_json(summary(exporter, loaded, None, doc) if json_out else doc)
        return
    text = json.dumps(doc, indent=2) + "\n"
    atomic.write_text(out, text)
    err.print(
        f"wrote {out} ({exporter.name}, run {loaded.name}, {len(loaded.mapping.tables)} tables)",
        markup=False,
        soft_wrap=True,
    )
    if json_out:
        emit_json(summary(exporter, loaded, out, doc) | {"bytes": len(text.encode("utf-8"))})


def output_kind(exporter: Exporter, run: str) -> atomic.FileKind:
    """What `export --format NAME --out` may replace: an earlier export of the same format (its schema holds)."""
    from autotune.export.base import load_schema, schema_errors

    def recognise(doc: object) -> bool:
        if exporter.name == "json":
            return is_mapping_document(doc)
        return isinstance(doc, dict) and not schema_errors(doc, load_schema(exporter.schema_file))

    return atomic.FileKind(f"export --format {exporter.name}", "--out", run + exporter.suffix, recognise)


def summary(exporter: Exporter, loaded: LoadedRun, out: Path | None, doc: dict[str, Any]) -> dict[str, Any]:
    """The `--json` object: what was exported, from which run, and where to (`document` when not to a file)."""
    info: dict[str, Any] = {
        "format": exporter.name,
        "schema": exporter.schema_file,
        "path": None if out is None else str(out),
        "run": loaded.name,
        "run_dir": str(loaded.path),
        "hardware": loaded.hw.name,
        "batch_size": loaded.batch_size,
        "status": loaded.status,
        "tables": len(loaded.mapping.tables),
        "latency_s": loaded.prediction.latency_s,
        "stored_latency_s": loaded.stored_latency_s,
        "matches_stored": loaded.matches_stored,
    }
    return info if out is not None else info | {"document": doc}


def register(app: typer.Typer) -> None:
    """Attach `export` to the main app."""
    app.command("export")(export_command)
