"""`autotune evaluate`: the latency model's verdict on one mapping, with the breakdown that explains it."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from autotune.atomic import FileKind, check_output_json
from autotune.console import emit_json, err, out
from autotune.errors import UserError, handle_errors
from autotune.hardware import HardwareProfile
from autotune.model.context import ModelContext
from autotune.model.evaluate import Prediction, predict
from autotune.model.mapping import (
    DEFAULT_BATCH_SIZE,
    Mapping,
    load_mapping,
    profile_hash,
    save_mapping,
    validate_mapping,
)
from autotune.model.strategies import fmt_bytes
from autotune.outputs import OWNED_FOLDERS, is_mapping_document
from autotune.workload import WorkloadProfile, load_profile

PROFILE_HELP = "Workload profile: a directory with profile.json, or the file itself (from `autotune analyze`)."
HW_HELP = (
    "Hardware profile: a bundled name (ascend910b, ascend910a, a100, h100, cpu; see `autotune hw list`) or a .toml."
)
BATCH_HELP = f"Queries per batch. Default: the mapping's batch_size, else {DEFAULT_BATCH_SIZE}."

#: `evaluate --write` replaces only a mapping file (what it writes), never a log or another command's file.
WRITE_KIND = FileKind("evaluate --write", "--write", "mapping.json", is_mapping_document)


def load_inputs(profile: Path, hw: str) -> tuple[WorkloadProfile, HardwareProfile]:
    """The workload and hardware profiles named on the command line (both validated on load)."""
    from autotune.hwload import load_hardware

    return load_profile(profile), load_hardware(hw)


def check_batch(batch_size: int | None, mapping: Mapping | None = None) -> int:
    b = batch_size if batch_size is not None else (mapping.batch_size if mapping else None) or DEFAULT_BATCH_SIZE
    if b < 1:
        raise UserError(f"--batch-size must be >= 1, got {b}")
    return b


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.2f} µs"


def print_prediction(p: Prediction, top: int = 12) -> None:
    """The prediction as people read it: headline, breakdown, busiest cores, slowest tables."""
    b = p.breakdown
    verdict = "feasible" if p.feasible else f"[red]INFEASIBLE[/red]: {p.reason}"
    out.print(
        f"[bold]predicted latency {us(p.latency_s)}[/bold] per batch of {p.batch_size} on {p.hardware} ({verdict})"
    )
    out.print(
        f"  = max(busiest core {us(b['busiest_core_s'])}, chip GM bound {us(b['chip_gm_bound_s'])}, "
        f"chip L2 bound {us(b['chip_l2_bound_s'])}) + merge {us(b['merge_s'])} + launch {us(b['launch_s'])}"
    )
    out.print(f"  bound by: {b['bound']}; core imbalance (busiest / mean) {b['imbalance']:.2f}")
    if not p.feasible:
        out.print(f"  memory over capacity: {fmt_bytes(p.memory_excess_bytes)}")
    cores = Table(title=f"busiest cores (of {len(p.per_core)})")
    for col in ("core", "time", "tasks", "memory", "bound"):
        cores.add_column(col, justify="left" if col == "bound" else "right")
    for c in sorted(p.per_core, key=lambda c: -c.time_s)[:top]:
        cores.add_row(str(c.core), us(c.time_s), str(c.n_tasks), fmt_bytes(c.memory_bytes), c.bound)
    out.print(cores)
    tables = Table(title=f"slowest tables (of {len(p.tables)})")
    for col in ("table", "strategy", "replicas x shards", "slowest task", "share", "task memory"):
        tables.add_column(col, justify="left" if col in ("table", "strategy") else "right", no_wrap=col == "table")
    for t in sorted(p.tables, key=lambda t: -t.time_s)[:top]:
        extra = (f" {t.sharding}" if t.shards > 1 else "") + (f" hot={t.hot_rows}" if t.hot_rows else "")
        tables.add_row(
            t.name,
            t.strategy + (" +dedup" if t.dedup else ""),
            f"{t.replicas} x {t.shards}{extra}",
            us(t.time_s),
            f"{t.share:.0%}",
            fmt_bytes(t.task_memory_bytes),
        )
    out.print(tables)


def warn_mismatch(mapping: Mapping, where: str, profile: WorkloadProfile, hw: HardwareProfile) -> None:
    if mapping.hardware and mapping.hardware != hw.name:
        err.print(
            f"warning: {where} was made for hardware {mapping.hardware!r}, evaluating on {hw.name!r}", soft_wrap=True
        )
    want = (mapping.profile or {}).get("hash")
    if want and want != profile_hash(profile):
        err.print(
            f"warning: {where} was made for another version of profile {profile.name!r} (hash differs)", soft_wrap=True
        )


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    @handle_errors
    def evaluate_command(
        profile: Path = typer.Option(..., "--profile", "-p", help=PROFILE_HELP),
        hw: str = typer.Option(..., "--hw", help=HW_HELP),
        mapping: Path = typer.Option(..., "--mapping", "-m", help="Mapping file (JSON, see docs/latency-model.md)."),
        batch_size: int | None = typer.Option(None, "--batch-size", "-b", help=BATCH_HELP),
        write: Path | None = typer.Option(
            None, "--write", help="Also write the mapping with the placement the model used and its predicted latency."
        ),
        json_out: bool = typer.Option(False, "--json", help="Print the prediction as JSON on stdout (for scripts)."),
    ) -> None:
        """Predict the latency of one batch for a mapping, with per-core and per-table breakdown.

        The model: each task (a table's replica x shard on one core) costs its strategy's memory and vector
        work; a core's time is the sum of its tasks; latency = max(busiest core, chip bandwidth bounds) +
        merge of sharded tables + launch. Every term is documented in docs/latency-model.md.
        """
        if write is not None:
            check_output_json(write, WRITE_KIND, OWNED_FOLDERS)
        prof, hwp = load_inputs(profile, hw)
        m = load_mapping(mapping)
        validate_mapping(m, prof, hwp, where=str(mapping))
        warn_mismatch(m, str(mapping), prof, hwp)
        b = check_batch(batch_size, m)
        ctx = ModelContext(prof, hwp, b)
        p = predict(prof, hwp, m, b, ctx=ctx)
        if write is not None:
            from dataclasses import replace

            save_mapping(write, replace(p.mapping, batch_size=b, hardware=hwp.name, predicted_latency_s=p.latency_s))
        if json_out:
            emit_json(p.to_dict())
        else:
            print_prediction(p)
        if write is not None:
            err.print(f"wrote {write} (mapping with placement; predicted latency {us(p.latency_s)})")
