"""`autotune search`: find the fastest mapping of a workload onto a chip and store the evidence."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from autotune.console import emit_json, err, ticker
from autotune.errors import UserError, handle_errors
from autotune.search.runstore import DEFAULT_ROOT


@handle_errors
def search(
    hw: str = typer.Option(
        ..., "--hw", help="Hardware profile: a bundled name (see `autotune hw list`) or a TOML path."
    ),
    profile: Path = typer.Option(..., "--profile", help="Workload profile directory (from `autotune analyze`)."),
    batch_size: int = typer.Option(512, "--batch-size", help="Queries per batch the mapping is tuned for."),
    run: str | None = typer.Option(None, "--run", help="Run name under --runs-dir; the same name continues it."),
    n_trials: int | None = typer.Option(200, "--n-trials", help="Trials to add in this invocation (all workers)."),
    timeout: float | None = typer.Option(None, "--timeout", help="Stop adding trials after this many seconds."),
    workers: int = typer.Option(1, "--workers", help="Worker processes on this machine sharing the study."),
    storage: str | None = typer.Option(
        None,
        "--storage",
        help="Optuna storage URL (sqlite:///f.db, postgresql+psycopg://...) or journal file, so workers on many "
        "machines share one study. Default: a journal file in the run directory.",
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run (fails if there is none)."),
    objectives: str = typer.Option(
        "latency", "--objectives", help="'latency', or 'latency,memory' for a Pareto set with the on-chip bytes."
    ),
    seed: int | None = typer.Option(0, "--seed", help="Sampler seed (worker i uses seed + 1000 i)."),
    heavy: int = typer.Option(16, "--heavy", help="Tables with their own knobs (the ones with the most work)."),
    polish_: bool = typer.Option(
        True, "--polish/--no-polish", help="After the trials, improve the best one parameter at a time."
    ),
    runs_dir: Path = typer.Option(DEFAULT_ROOT, "--runs-dir", help="Where runs are stored."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Search mappings of every table onto the chip's cores and keep the best under runs/<run>/.

    Optuna chooses each heavy table's replicas and row shards and global knobs for the rest; the single-core
    strategy, hot rows and de-duplication of each table are chosen exactly inside the objective, and tasks
    are assigned to cores to minimise the busiest one. Every baseline is tried first. The run directory holds
    run.json, mapping.json, baselines.json, report.md (with plots) and the Optuna study, which resumes.
    """
    from autotune.search.driver import SearchRequest, run_search

    if n_trials is not None and n_trials < 1:
        raise UserError(f"--n-trials must be >= 1, got {n_trials}")
    if timeout is not None and timeout <= 0:
        raise UserError(f"--timeout must be > 0 seconds, got {timeout}")
    if not profile.exists():
        raise UserError(f"--profile {profile}: no such file or directory; create one with `autotune analyze`")
    objs = tuple(o.strip() for o in objectives.split(",") if o.strip())
    name = run or _default_run_name(profile, hw)
    req = SearchRequest(
        profile=profile,
        hardware=hw,
        batch_size=batch_size,
        run=name,
        n_trials=n_trials,
        timeout_s=timeout,
        workers=workers,
        storage=storage,
        resume=resume,
        objectives=objs,
        seed=seed,
        heavy=heavy,
        polish=polish_,
        root=runs_dir,
        argv=tuple(["autotune", *sys.argv[1:]]),
    )
    # The bar starts with the first finished trial, so that bad input fails with its one line and nothing else.
    # Off a terminal (a CI job, a log file) a bar shows nothing until the end: a line every 10 s instead.
    on_terminal = err.is_terminal
    bar = Progress(
        TextColumn("[bold]search[/bold] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=not on_terminal,
    )
    task = bar.add_task("starting", total=n_trials)
    tick = ticker("search")
    t0 = time.monotonic()
    started = False

    def progress(done: int, total: int | None, best: float | None, default: float) -> None:
        nonlocal started
        if best is None:
            desc = "no feasible mapping yet"
        else:
            desc = f"best {best * 1e6:,.2f} µs ({default / best:.2f}x over default-gather)"
        if not on_terminal:
            of = f"/{total}" if total else ""
            tick(f"{done}{of} trials, {desc}, {time.monotonic() - t0:.0f} s")
            return
        if not started:
            bar.start()
            started = True
        bar.update(task, completed=done, total=total, description=desc)

    try:
        outcome = run_search(req, progress=progress)
    finally:
        if started:
            bar.stop()
    if json_out:
        emit_json(outcome.to_json())
        return
    best = outcome.best
    err.print(f"run [bold]{outcome.run_dir}[/bold]: {outcome.n_trials} trials, storage {outcome.storage}")
    err.print(
        f"best predicted latency {best.latency_s * 1e6:,.2f} µs per batch of {batch_size}; "
        f"lower bound {outcome.lower_bound_s * 1e6:,.2f} µs"
    )
    for n, v in sorted(outcome.baselines.items(), key=lambda kv: kv[1]):
        err.print(f"  {n:<28} {v * 1e6:>12,.2f} µs   speed-up {v / best.latency_s:6.2f}x")
    err.print(f"see {outcome.run_dir / 'report.md'}; `autotune show {outcome.run_dir}`")


def _default_run_name(profile: Path, hw: str) -> str:
    stem = profile.name if profile.is_dir() else profile.parent.name
    hw_name = Path(hw).stem if hw.endswith(".toml") or "/" in hw else hw
    return f"{stem}-{hw_name}".replace(" ", "_")


def register(app: typer.Typer) -> None:
    app.command("search")(search)
