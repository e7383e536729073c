"""`autotune replay`: run a mapping for real on this machine's CPU cores and set the model's prediction beside it."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from autotune.console import emit_json, err, out
from autotune.errors import UserError, handle_errors
from autotune.interrupt import reports_interrupt
from autotune.model.mapping import DEFAULT_BATCH_SIZE, load_mapping


def _us(s: float) -> str:
    return f"{s * 1e6:,.1f} µs"


#: Under the per-core table: the two columns are not the same quantity.
PER_CORE_NOTE = (
    "measured busy: the wall time each core's worker spent on its tasks (median batch); predicted: the model's "
    "time for that core's tasks alone, without the chip-wide bandwidth caps, merge and launch of the total"
)


def register(app: typer.Typer) -> None:
    @app.command("replay")
    @handle_errors
    def replay_command(
        run: str | None = typer.Argument(None, help="A search run (name under runs/ or its directory)."),
        mapping: Path | None = typer.Option(None, "--mapping", "-m", help="A mapping file instead of a run."),
        profile: Path | None = typer.Option(
            None,
            "--profile",
            "-p",
            help="Workload profile directory (with counts.parquet). Default: the run's; with a RUN it must be the "
            "very file the search used (same sha256, as `show` checks), e.g. after moving it.",
        ),
        hw: str | None = typer.Option(
            None,
            "--hw",
            help="Hardware profile the mapping is for (default: the run's, else `cpu`, the calibrated). With a RUN it "
            "must be the file the search used (same sha256), e.g. a copy kept by `autotune calibrate`.",
        ),
        batch_size: int | None = typer.Option(
            None,
            "--batch-size",
            "-b",
            help=f"Queries per batch (default: the run's or mapping's, else {DEFAULT_BATCH_SIZE}).",
        ),
        batches: int = typer.Option(20, "--batches", "-n", help="Timed batches (median and p99 are over these)."),
        warmup: int = typer.Option(3, "--warmup", help="Untimed batches first (page faults, cold caches)."),
        scale: float = typer.Option(
            1.0,
            "--scale",
            help="Materialise ceil(rows x SCALE) rows of each table (0 < SCALE <= 1) when the tables do not fit in "
            "memory; look-ups map to row x rows' // rows and the model is asked about the scaled tables.",
        ),
        seed: int = typer.Option(0, "--seed", help="Seed of the table values and of the drawn batches."),
        logs: list[str] | None = typer.Option(
            None,
            "--logs",
            help="Replay this query log (a file, folder or glob; repeat for more) instead of batches drawn from "
            "the profile: batches are its consecutive queries, ids mapped to rows by the profile's row map.",
        ),
        json_out: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout (for scripts)."),
    ) -> None:
        """Run a mapping for real on this machine's CPU cores; compare measured and predicted latency.

        Builds float32 tables with the profile's rows and dims (a float16 or int8 table is replayed and
        predicted as a float32 copy: a note on stderr and "converted_from" in --json say which), draws batches
        from the profile's row counts and pooling factors, runs every task on its own pinned worker (one per
        core) with the CPU analogue of its strategy, merges shards, and checks every batch's pooled output
        against a plain reference. Reports the median and p99 latency per batch, each core's busy time, and the
        model's prediction beside them.
        With --logs, the batches are the consecutive queries of an actual log (any format `analyze` reads) instead.
        """
        from autotune.hwload import load_hardware
        from autotune.replay import replay
        from autotune.workload import load_profile

        if (run is None) == (mapping is None):
            raise UserError("give either a RUN (from `autotune search`) or --mapping FILE, not both or neither")
        run_batch = None
        if run is not None:
            # the same loading as `show` and `export`: the run's files, refused if they changed since the search
            from autotune.search.loaded import load_run

            loaded = load_run(run, profile=profile, hardware=hw)
            m, prof, hwp, run_batch, where = loaded.mapping, loaded.profile, loaded.hw, loaded.batch_size, run
        else:
            assert mapping is not None
            if profile is None:
                raise UserError("--profile is required with --mapping: the workload profile directory")
            m = load_mapping(mapping)
            prof = load_profile(profile)
            hwp = load_hardware(hw or "cpu")
            where = str(mapping)
        b = next((x for x in (batch_size, run_batch, m.batch_size) if x is not None), DEFAULT_BATCH_SIZE)
        if b < 1:
            raise UserError(f"--batch-size must be >= 1, got {b}")
        with reports_interrupt(lambda: "nothing was written (replay only measures)"):
            result = replay(
                prof, hwp, m, b, n_batches=batches, warmup=warmup, scale=scale, seed=seed, where=where,
                progress=lambda msg: err.print(msg, soft_wrap=True, highlight=False), logs=logs,
            )  # fmt: skip
        if json_out:
            emit_json(result.to_dict())
            return
        d = result.to_dict()
        rel = d["relative_error"]
        out.print(
            f"[bold]measured {_us(d['measured_latency_s'])}[/bold] median (p99 {_us(d['p99_latency_s'])}) per batch of "
            f"{b} over {d['batches']} batches; predicted {_us(d['predicted_latency_s'])} on {hwp.name} "
            f"({abs(rel):.0%} {'above' if rel >= 0 else 'below'} measured); every batch equals the reference; "
            f"the batches are {d['batches_from']}",
            highlight=False,
        )
        t = Table(title="per core")
        for col in ("core", "cpu", "tasks", "measured busy", "predicted"):
            t.add_column(col, justify="right")
        for c in d["per_core"]:
            t.add_row(str(c["core"]), str(c["cpu"]), str(c["tasks"]), _us(c["measured_busy_s"]), _us(c["predicted_s"]))
        out.print(t)
        out.print(PER_CORE_NOTE, highlight=False, soft_wrap=True)
