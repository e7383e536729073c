"""`autotune hw list` and `autotune hw show NAME`: the hardware profiles and every figure with its source."""

from __future__ import annotations

import sys
from typing import Any

import typer
from rich.table import Table

from autotune.console import emit_json, out
from autotune.errors import handle_errors
from autotune.hwformat import UNITS, figure_paths
from autotune.hwload import alias_targets, alias_text, hardware_to_dict, list_hardware, load_hardware, user_dir

hw_app = typer.Typer(
    name="hw",
    help=(
        "Hardware profiles: the chips the latency model knows (bundled TOML files, plus calibrated profiles "
        "in $AUTOTUNE_HW_DIR or runs/hw/), and every figure with its unit, source and confidence."
    ),
    no_args_is_help=True,
)

_BINARY = ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB"))


def human(value: Any, unit: str) -> str:
    """A figure as a person reads it: 196608 B -> '192 KiB', 1.6e12 B/s -> '1.6 TB/s', 1e-5 s -> '10 us'."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if unit == "B":
        for size, name in _BINARY:
            if value >= size:
                return f"{value / size:.4g} {name}"
        return f"{value} B"
    if unit == "B/s":
        return _si(value, "B/s")
    if unit == "Hz":
        return _si(value, "Hz")
    if unit == "s":
        for scale, name in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
            if value >= scale:
                return f"{value / scale:.4g} {name}"
        return f"{value / 1e-9:.4g} ns"
    return f"{value:g} {unit}"


def _si(value: float, unit: str) -> str:
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.4g} {prefix}{unit}"
    return f"{value:g} {unit}"


@hw_app.command("list")
@handle_errors
def list_command(
    json_out: bool = typer.Option(False, "--json", help="Print the list as JSON on stdout (for scripts)."),
) -> None:
    """List the hardware profiles: bundled chips, then calibrated ones from the user profile folder.

    A user profile that does not load is skipped with a warning line on stderr naming the file and the field; so
    is one named like a bundled profile (refused: rename it), and `--hw` with that name is an error.
    """
    broken: list[str] = []
    infos = list_hardware(broken)
    for line in broken:
        print(f"warning: skipped {line}", file=sys.stderr)
    aliases = alias_targets()
    if json_out:
        emit_json(
            {
                "profiles": [
                    {
                        "name": i.name,
                        "description": i.description,
                        "family": i.family,
                        "lookup_cores": i.cores,
                        "clock_hz": i.clock_hz,
                        "gm_bandwidth_bytes_per_s": i.gm_bandwidth_bytes_per_s,
                        "l2_capacity_bytes": i.l2_capacity_bytes,
                        "origin": i.origin,
                        "path": str(i.path),
                    }
                    for i in infos
                ],
                "aliases": {alias: None if path is None else path.stem for alias, path in aliases.items()},
                "user_dir": str(user_dir()),
                "skipped": broken,
            }
        )
        return
    table = Table(title="Hardware profiles (cores = look-up cores)")
    for col in ("name", "family", "cores", "clock", "GM BW", "L2", "origin"):
        right = col in ("cores", "clock", "GM BW", "L2")
        table.add_column(col, justify="right" if right else "left", no_wrap=True)
    for i in infos:
        table.add_row(
            i.name,
            i.family,
            str(i.cores),
            human(i.clock_hz, "Hz"),
            human(i.gm_bandwidth_bytes_per_s, "B/s"),
            human(i.l2_capacity_bytes, "B"),
            i.origin,
        )
    out.print(table)
    shown = ", ".join(
        alias_text(alias, path) if path is not None else f"{alias} -> refused (see the warning above)"
        for alias, path in aliases.items()
    )
    out.print(f"aliases: {shown}; user profiles: {user_dir()}", markup=False, soft_wrap=True)
    out.print("every figure with its source: autotune hw show NAME")


@hw_app.command("show")
@handle_errors
def show_command(
    name: str = typer.Argument(
        ..., help="A bundled profile name (see `autotune hw list`), an alias (ascend, a100, h100, cpu) or a .toml path."
    ),
    json_out: bool = typer.Option(
        False, "--json", help="Print every figure as JSON {value, unit, source, confidence} on stdout."
    ),
) -> None:
    """Show every figure of one hardware profile with its unit, source and confidence (validates the file)."""
    hw = load_hardware(name)
    if json_out:
        emit_json(hardware_to_dict(hw))
        return
    out.print(f"[bold]{hw.name}[/bold] ({hw.family}): {hw.description}")
    out.print(f"file: {hw.path}; look-ups run on {hw.n_cores} '{hw.lookup_cores.name}' cores")
    table = Table()
    table.add_column("figure", no_wrap=True)
    table.add_column("value", justify="right", no_wrap=True)
    table.add_column("confidence", no_wrap=True)
    table.add_column("source", overflow="fold")
    group = None
    for field, value in figure_paths(hw):
        head, _, key = field.rpartition(".")
        if head != group:
            group = head
            table.add_row(f"[bold]{_group_title(head)}[/bold]", "", "", "", end_section=False)
        source, confidence = hw.provenance[field]
        table.add_row(f"  {key}", human(value, UNITS[key]), confidence, source)
    out.print(table)


def _group_title(head: str) -> str:
    """'' -> 'chip clock', 'core_types.vector.memories.UB' -> 'vector cores: memory UB'."""
    if not head:
        return "clock"
    parts = head.split(".")
    if parts[0] != "core_types":
        return head
    title = f"{parts[1]} cores"
    return f"{title}: memory {parts[3]}" if len(parts) > 3 else title


def register(app: typer.Typer) -> None:
    """Attach the `hw` command group to the main app."""
    app.add_typer(hw_app, name="hw")
