"""`autotune calibrate`: fit this machine's `cpu` hardware profile from micro-benchmarks."""

from __future__ import annotations

from pathlib import Path

import typer

from autotune.console import emit_json, err
from autotune.errors import handle_errors


def register(app: typer.Typer) -> None:
    @app.command("calibrate")
    @handle_errors
    def calibrate_command(
        out: Path | None = typer.Option(
            None, "--out", "-o", help="Where to write the profile (default: $AUTOTUNE_HW_DIR or runs/hw, as cpu.toml)."
        ),
        quick: bool = typer.Option(
            False, "--quick", help="Small tables and few repeats (seconds, for tests; figures are rougher)."
        ),
        json_out: bool = typer.Option(False, "--json", help="Print the fitted figures and the raw measurements."),
    ) -> None:
        """Measure this machine (random row gathers by row and table size across the cache hierarchy, streaming
        bandwidth, task and launch overheads, core count) and fit a `cpu` hardware profile (confidence
        "measured"), written atomically where `--hw cpu` finds it. `autotune replay` compares against it.
        """
        import os

        from autotune.calibrate import fit, measure
        from autotune.hwload import hardware_to_dict, load_hardware, write_hardware
        from autotune.loadcheck import busy_warning

        warning = busy_warning(os.getloadavg()[0], len(os.sched_getaffinity(0)))
        if warning:
            err.print(warning)
        m = measure(quick=quick, progress=lambda msg: err.print(msg))
        hw = fit(m)
        path = write_hardware(hw, out)
        hw = load_hardware(path)  # what was written reads back and validates
        if json_out:
            emit_json({"path": str(path), "profile": hardware_to_dict(hw), "measurements": m})
        else:
            err.print(f"wrote {path} ({hw.n_cores} cores at {hw.clock_hz / 1e9:.2f} GHz)")
