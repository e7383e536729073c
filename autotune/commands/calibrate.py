"""`autotune calibrate`: fit this machine's `cpu` hardware profile from micro-benchmarks."""

from __future__ import annotations

from pathlib import Path

import typer

from autotune.console import emit_json, err
from autotune.errors import UserError, handle_errors
from autotune.interrupt import reports_interrupt


def _check_replaceable(target: Path, option: str) -> None:
    """Before minutes of measuring: the profile never goes inside a run or profile folder, and replaces only a
    hardware profile (one that no longer loads included: a profile older than the format is rewritten here)."""
    import tomllib

    from autotune.atomic import owner_of
    from autotune.outputs import OWNED_FOLDERS

    found = owner_of(target, OWNED_FOLDERS)
    if found is not None:
        folder, owner = found
        raise UserError(
            f"{option} {target}: inside {owner.what} {folder} (written by `autotune {owner.command}`, its files belong "
            f"to it); choose another {option} outside {folder}"
        )
    if not target.exists():
        return
    try:
        doc = tomllib.loads(target.read_text(encoding="utf-8"))
        ours = isinstance(doc.get("name"), str) and isinstance(doc.get("family"), str)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        ours = False
    if not ours:
        raise UserError(
            f"{option} {target}: the file exists and is not a hardware profile (no TOML `name` and `family`); "
            f"choose another {option} or remove the file"
        )


def register(app: typer.Typer) -> None:
    @app.command("calibrate")
    @handle_errors
    def calibrate_command(
        out: Path | None = typer.Option(
            None,
            "--out",
            "-o",
            help="Where to write the profile (default: $AUTOTUNE_HW_DIR or runs/hw, as cpu.toml). A profile already "
            "there is kept as previous/cpu.<UTC time it was written>.toml beside it, for the runs searched with it.",
        ),
        quick: bool = typer.Option(
            False,
            "--quick",
            help="Small tables and few repeats (seconds, for tests): the figures are rough (two quick runs can differ "
            "several-fold), yet they are written where `--hw cpu` finds them unless --out says elsewhere; the "
            "profile's description and sources say '--quick'.",
        ),
        json_out: bool = typer.Option(False, "--json", help="Print the fitted figures and the raw measurements."),
    ) -> None:
        """Measure this machine (random row gathers by row and table size across the cache hierarchy, streaming
        bandwidth, task and launch overheads, core count) and fit a `cpu` hardware profile (confidence
        "measured"), written atomically where `--hw cpu` finds it. `autotune replay` compares against it.
        """
        import os

        from autotune.atomic import check_output_file
        from autotune.calibrate import fit, measure
        from autotune.hwkeep import keep_previous
        from autotune.hwload import (
            CALIBRATED_CPU,
            USER_DIR_ENV,
            hardware_to_dict,
            load_hardware,
            resolve_hardware,
            user_dir,
            write_hardware,
        )
        from autotune.loadcheck import busy_warning

        target = out if out is not None else user_dir() / f"{CALIBRATED_CPU}.toml"
        # before minutes of measuring, not after; name where the path came from
        option = "--out" if out is not None or not os.environ.get(USER_DIR_ENV, "").strip() else f"${USER_DIR_ENV}"
        check_output_file(target, option, "cpu.toml")
        _check_replaceable(target, option)

        warning = busy_warning(os.getloadavg()[0], len(os.sched_getaffinity(0)))
        if warning:
            err.print(warning)
        with reports_interrupt(lambda: f"nothing was written ({target} is as it was)"):
            m = measure(quick=quick, progress=lambda msg: err.print(msg))
            hw = fit(m)
        kept = keep_previous(target)
        if kept is not None:
            err.print(
                f"kept the previous profile {target} as {kept}: runs searched with it load with --hw {kept}",
                highlight=False,
                soft_wrap=True,
            )
        path = write_hardware(hw, target)
        hw = load_hardware(path)  # what was written reads back and validates
        if json_out:
            emit_json(
                {
                    "path": str(path),
                    "kept_previous": None if kept is None else str(kept),
                    "profile": hardware_to_dict(hw),
                    "measurements": m,
                }
            )
        else:
            err.print(f"wrote {path} ({hw.n_cores} cores at {hw.clock_hz / 1e9:.2f} GHz)", highlight=False)
        is_cpu = resolve_hardware(CALIBRATED_CPU).resolve() == path.resolve()
        if quick:
            err.print(
                "note: --quick figures are rough (small tables, few repeats)"
                + (
                    "; `--hw cpu` now uses them: run `autotune calibrate` without --quick for figures to judge by"
                    if is_cpu
                    else ""
                ),
                highlight=False,
                soft_wrap=True,
            )
        err.print(f"see `autotune hw show {CALIBRATED_CPU if is_cpu else path}`", highlight=False, soft_wrap=True)
