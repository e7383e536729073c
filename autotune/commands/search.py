"""`autotune search`: find the fastest mapping of a workload onto a chip and store the evidence."""

from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from autotune.console import emit_json, err, ticker
from autotune.errors import UserError, handle_errors
from autotune.interrupt import INTERRUPTED_EXIT
from autotune.search import runstore
from autotune.search.runstore import DEFAULT_ROOT

if TYPE_CHECKING:
    from autotune.search.driver import SearchRequest

DEFAULT_BATCH = 512
DEFAULT_HEAVY = 16


@handle_errors
def search(
    hw: str | None = typer.Option(
        None,
        "--hw",
        help="Hardware profile: a bundled name (see `autotune hw list`) or a TOML path. Required, except with "
        "--resume of a run whose run.json records it.",
    ),
    profile: Path | None = typer.Option(
        None,
        "--profile",
        help="Workload profile directory (from `autotune analyze`). Required, except with --resume of a run whose "
        "run.json records it.",
    ),
    batch_size: int | None = typer.Option(
        None, "--batch-size", help=f"Queries per batch the mapping is tuned for [default: {DEFAULT_BATCH}]."
    ),
    run: str | None = typer.Option(
        None,
        "--run",
        help="Run name (letters, digits, '.', '_', '-') under --runs-dir; the same name continues it. "
        "An existing run directory's path continues that run.",
    ),
    n_trials: int | None = typer.Option(200, "--n-trials", help="Trials to add in this invocation (all workers)."),
    timeout: float | None = typer.Option(
        None,
        "--timeout",
        help="Seconds the whole search may take, the polish included (writing the run comes after).",
    ),
    workers: int = typer.Option(1, "--workers", help="Worker processes on this machine sharing the study."),
    storage: str | None = typer.Option(
        None,
        "--storage",
        help="Optuna storage URL (sqlite:///f.db, postgresql+psycopg://...) or journal file, so workers on many "
        "machines share one study. Default: a journal file in the run directory.",
    ),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Continue an interrupted run (fails if there is none); --hw, --profile, --storage, --batch-size, "
        "--heavy and --objectives default to what its run.json (or its study) records.",
    ),
    objectives: str | None = typer.Option(
        None,
        "--objectives",
        help="'latency' (the default), or 'latency,memory' for a Pareto set with the on-chip bytes (the polish then "
        "improves its lowest-latency end).",
    ),
    seed: int | None = typer.Option(0, "--seed", help="Sampler seed (worker i uses seed + 1000 i)."),
    heavy: int | None = typer.Option(
        None,
        "--heavy",
        help=f"Tables with their own knobs (the ones with the most work); 0 or more [default: {DEFAULT_HEAVY}].",
    ),
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
    from autotune.search.driver import SearchInterrupted, SearchRequest, plan_workers, run_search, study_record

    if n_trials is not None and n_trials < 1:
        raise UserError(f"--n-trials must be >= 1, got {n_trials}")
    if timeout is not None and timeout <= 0:
        raise UserError(f"--timeout must be > 0 seconds, got {timeout}")
    if run is not None and not run.strip():
        raise UserError("--run '': the run name is empty; give a name, or leave --run out for <profile>-<hw>")
    why = "a new search needs the hardware and the workload profile (only --resume of a run whose run.json records "
    why += "them can leave them out)"
    if resume and run is not None:
        d = runstore.run_dir(run, runs_dir)
        rec = runstore.recorded(d) or study_record(d, storage)
        if rec is not None:
            profile = profile or (Path(rec.profile_path) if rec.profile_path else None)
            hw = hw or rec.hw_spec
            batch_size = batch_size if batch_size is not None else rec.batch_size
            heavy = heavy if heavy is not None else rec.heavy
            objectives = objectives if objectives is not None else ",".join(rec.objectives or ()) or None
        why = f"{d} has no run.json recording them (an interrupted search); pass the ones it was started with"
    batch_size = DEFAULT_BATCH if batch_size is None else batch_size
    heavy = DEFAULT_HEAVY if heavy is None else heavy
    objectives = "latency" if objectives is None else objectives
    if hw is None or profile is None:
        missing = " and ".join(f"'{o}'" for o, v in (("--hw", hw), ("--profile", profile)) if v is None)
        raise UserError(f"missing option {missing}: {why}")
    if not profile.exists():
        raise UserError(f"--profile {profile}: no such file or directory; create one with `autotune analyze`")
    objs = tuple(o.strip() for o in objectives.split(",") if o.strip())
    name = run or _default_run_name(profile, hw)
    cpus = _usable_cpus()
    n_workers = plan_workers(workers, n_trials)
    if n_workers > cpus:
        err.print(
            f"warning: {n_workers} workers on {cpus} CPUs: they share the CPUs, so the search is no faster than "
            f"with --workers {cpus}",
            markup=False,
            soft_wrap=True,
        )
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
    except SearchInterrupted as stop:
        if started:
            bar.stop()
            started = False
        kept = f"the best so far is stored in {stop.run_dir}; " if stop.stored else ""
        err.print(
            f"interrupted after {stop.completed} trials; {kept}continue with `{_resume_hint(req, stop.recorded)}`",
            markup=False,
            soft_wrap=True,
        )
        raise typer.Exit(INTERRUPTED_EXIT) from None
    except KeyboardInterrupt:  # before the trials began (loading the inputs, opening the study)
        err.print("interrupted before any trial ran; nothing was stored", markup=False)
        raise typer.Exit(INTERRUPTED_EXIT) from None
    finally:
        if started:
            bar.stop()
    if json_out:
        emit_json(outcome.to_json())
        return
    best = outcome.best
    waiting = f" ({outcome.n_waiting} enqueued baselines and seeds not run)" if outcome.n_waiting else ""
    err.print(
        f"run [bold]{outcome.run_dir}[/bold]: {outcome.n_trials} trials completed{waiting}, storage {outcome.storage}"
    )
    err.print(
        f"best predicted latency {best.latency_s * 1e6:,.2f} µs per batch of {batch_size} (from {outcome.best_from}); "
        f"lower bound {outcome.lower_bound_s * 1e6:,.2f} µs"
    )
    for n, v in sorted(outcome.baselines.items(), key=lambda kv: kv[1]):
        ratio = v / best.latency_s
        how = "as fast as" if f"{ratio:.2f}" == "1.00" else f"{ratio:6.2f}x faster than"
        err.print(f"  tuned {how} {n} ({v * 1e6:,.2f} µs)")
    err.print(f"see {outcome.run_dir / 'report.md'}; `autotune show {outcome.run_dir}`")


def _resume_hint(req: SearchRequest, recorded: bool) -> str:
    """The command that continues an interrupted run, from the values this one used: `--resume` reads the inputs
    from run.json (or the study) when they are recorded, else they must be given again."""
    args = ["autotune", "search", "--run", req.run]
    if req.root != DEFAULT_ROOT:
        args += ["--runs-dir", str(req.root)]
    if req.storage:
        args += ["--storage", req.storage]
    args.append("--resume")
    if not recorded:
        args += ["--hw", req.hardware, "--profile", str(req.profile), "--batch-size", str(req.batch_size)]
        args += ["--heavy", str(req.heavy), "--objectives", ",".join(req.objectives)]
    return shlex.join(args)


def _usable_cpus() -> int:
    """The CPUs this process may run on (a container or `taskset` limits them), as calibrate and replay count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def _default_run_name(profile: Path, hw: str) -> str:
    stem = profile.name if profile.is_dir() else profile.parent.name
    hw_name = Path(hw).stem if hw.endswith(".toml") or "/" in hw else hw
    return f"{stem}-{hw_name}".replace(" ", "_")


def register(app: typer.Typer) -> None:
    app.command("search")(search)
