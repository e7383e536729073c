"""The `autotune` command line. Each command lives in its own module under `autotune/commands/`.

A module there exposes `register(app: typer.Typer) -> None`; adding a command is adding one file.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer

import autotune.commands

app = typer.Typer(
    name="autotune",
    help=(
        "Tune the embedding layers of a DLRM for inference: analyse query logs, model the latency of "
        "every table-to-core mapping on a chip, search for the fastest, export it for serving."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register_commands() -> None:
    for info in sorted(pkgutil.iter_modules(autotune.commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"autotune.commands.{info.name}")
        module.register(app)


_register_commands()


def main() -> None:
    """Console-script entry point."""
    app()
