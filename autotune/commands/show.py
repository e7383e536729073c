"""`autotune show RUN`: the best mapping of a search run as TorchRec's planner reports a plan.

Per core: tasks, time, memory, what bounds it; per table: cores, strategy, shards, replicas, its slowest
task over the latency; then the imbalance figures. The figures are the latency model's, re-evaluated on the
stored mapping.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from autotune.console import emit_json, out
from autotune.errors import handle_errors
from autotune.model.strategies import fmt_bytes
from autotune.search import runstore
from autotune.search.loaded import load_run
from autotune.search.summary import SLOWEST_TASK_NOTE, pareto_line, run_summary

RUN_HELP = "A run name under --runs-dir (see `autotune search --run`), or the path of a run directory."
RUNS_DIR_HELP = "Where run names are looked up."
PROFILE_HELP = "The workload profile the run was searched with, when it moved since (must be the same file)."
HW_HELP = "The hardware profile the run was searched with, when it moved since (must be the same file)."


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:,.3f}"


def cores_label(n: int, core_type: str) -> str:
    """'48 vector cores', and '2 cores' for a core type already called 'core' (a CPU)."""
    return f"{n} cores" if core_type.lower() in ("core", "cores", "") else f"{n} {core_type} cores"


def print_summary(s: dict[str, Any]) -> None:
    """The human view of `run_summary`: header, per-core table, per-table table, imbalance."""
    lat = s["latency_s"]
    out.print(
        f"[bold]run {s['run']}[/bold]: workload {s['profile']} on {s['hardware']} "
        f"({cores_label(s['cores'], s['core_type'])}), batch {s['batch_size']}"
    )
    if s.get("status_note"):
        out.print(s["status_note"], style="yellow", markup=False, soft_wrap=True)
    line = f"predicted latency [bold]{_us(lat)} µs[/bold] per batch, bound by {s['breakdown']['bound']}"
    if s["lower_bound_s"]:
        line += f"; lower bound {_us(s['lower_bound_s'])} µs"
    out.print(line)
    b = s["breakdown"]
    out.print(
        f"= max(busiest core {_us(b['busiest_core_s'])}, chip GM bound {_us(b['chip_gm_bound_s'])}, "
        f"chip L2 bound {_us(b['chip_l2_bound_s'])}) + merge {_us(b['merge_s'])} + launch {_us(b['launch_s'])} µs"
    )
    if s["stored_latency_s"] is not None and not s["matches_stored"]:
        out.print(f"[yellow]the search stored {_us(s['stored_latency_s'])} µs: mapping.json was edited[/yellow]")
    if not s["feasible"]:
        out.print(f"[red]infeasible:[/red] {s['reason']}")
    if s["pareto"]:
        out.print(pareto_line(s["pareto"]["points"], s["pareto"]["file"]), markup=False, soft_wrap=True)

    busiest = s["imbalance"]["busiest_core"]
    cores = Table(title="Per core", title_justify="left")
    for col, right in (("core", True), ("tasks", True), ("time µs", True), ("memory", True), ("bound", False)):
        cores.add_column(col, justify="right" if right else "left", no_wrap=True)
    cores.add_column("tables (shard)", overflow="fold")
    for c in s["per_core"]:
        mark = "*" if c["core"] == busiest else ""
        cores.add_row(
            f"{c['core']}{mark}",
            str(c["n_tasks"]),
            _us(c["time_s"]),
            fmt_bytes(c["memory_bytes"]),
            c["bound"],
            " ".join(c["tasks"]),
        )
    out.print(cores)

    tables = Table(title="Per table (slowest first)", title_justify="left")
    for col in ("table", "cores", "strategy", "shards", "replicas", "sharding", "hot rows", "dedup", "time µs"):
        right = col in ("shards", "replicas", "hot rows", "time µs")
        tables.add_column(col, justify="right" if right else "left", no_wrap=col != "cores", overflow="fold")
    tables.add_column("slowest task / latency", justify="right", no_wrap=True)
    for t in sorted(s["tables"], key=lambda t: -t["time_s"]):
        tables.add_row(
            t["name"],
            t["cores"],
            t["strategy"],
            str(t["shards"]),
            str(t["replicas"]),
            t["sharding"],
            str(t["hot_rows"]),
            "yes" if t["dedup"] else "no",
            _us(t["time_s"]),
            f"{t['share'] * 100:.1f}%",
        )
    out.print(tables)
    out.print(SLOWEST_TASK_NOTE, soft_wrap=True)

    im = s["imbalance"]
    mom = "n/a" if im["max_over_min"] is None else f"{im['max_over_min']:.3f}"
    out.print(
        f"imbalance: busiest/mean {im['busiest_over_mean']:.3f} (core {im['busiest_core']}*, "
        f"{_us(im['busiest_s'])} µs vs mean {_us(im['mean_s'])} µs); max/min over busy cores {mom}; "
        f"idle cores {im['idle_cores']} of {im['cores']}"
    )


@handle_errors
def show_command(
    run: str = typer.Argument(..., help=RUN_HELP),
    runs_dir: Path = typer.Option(runstore.DEFAULT_ROOT, "--runs-dir", help=RUNS_DIR_HELP),
    profile: Path | None = typer.Option(None, "--profile", help=PROFILE_HELP),
    hw: str | None = typer.Option(None, "--hw", help=HW_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print the same figures as JSON on stdout (for scripts)."),
) -> None:
    """Show a search run's best mapping: per-core load, per-table placement, imbalance.

    Per core, as in TorchRec's planner report: tasks, time, memory, what bounds it (* marks the busiest).

    Per table: cores, strategy, shards, replicas, its slowest task over the latency (tables run side by side,
    so this column does not sum to 100%).

    Imbalance: busiest/mean over all cores, max/min over the cores with work, idle cores.
    """
    loaded = load_run(run, runs_dir, profile=profile, hardware=hw)
    summary = run_summary(loaded)
    if json_out:
        emit_json(summary)
    else:
        print_summary(summary)


def register(app: typer.Typer) -> None:
    """Attach `show` to the main app."""
    app.command("show")(show_command)
