"""The `autotune` command line. Each command lives in its own module under `autotune/commands/`.

A module there exposes `register(app: typer.Typer) -> None`; adding a command is adding one file, named
after its command. `main` imports only the module of the command being run (importing every command
pulls in the search stack, Optuna and the latency model: about 0.15 s of every `autotune analyze`);
without a known command (`autotune --help`, a typo) it registers them all. `app`, the app with every
command (what tests drive with typer's CliRunner), is built on first access.
"""

from __future__ import annotations

import gc
import importlib
import os
import pkgutil
import sys

import typer

import autotune.commands

HELP = (
    "Tune the embedding layers of a DLRM for inference: analyse query logs, model the latency of "
    "every table-to-core mapping on a chip, search for the fastest, export it for serving."
)


def command_names() -> list[str]:
    """Every command (one module each under autotune/commands/), sorted."""
    return sorted(m.name for m in pkgutil.iter_modules(autotune.commands.__path__))


def build_app(only: str | None = None) -> typer.Typer:
    """The CLI app with every command, or with the single command `only` (same options, help and output)."""
    app = typer.Typer(
        name="autotune", help=HELP, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False
    )
    for name in [only] if only else command_names():
        importlib.import_module(f"autotune.commands.{name}").register(app)
    if only:
        # typer turns an app with one command and no callback into that bare command (`autotune LOGS`);
        # an empty callback keeps it the group, so `autotune analyze ...` parses as with every command
        app.callback()(_group)
    return app


def _group() -> None:
    """Top-level callback of a one-command app; it does nothing."""


def __getattr__(name: str) -> typer.Typer:
    if name == "app":  # built on first use and kept
        globals()["app"] = full = build_app()
        return full
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: One-shot commands run lean. (1) The cyclic garbage collector is off while they start up: importing numpy,
#: pyarrow, pydantic, typer and Polars creates objects, not garbage, and the collector's passes over them cost
#: `analyze` about 0.05 CPU s; the command turns it back on (`gc.enable()`) once its imports are done. (2)
#: The process ends with `os._exit` once the command has finished and stdout and stderr are flushed: Python's
#: own teardown (every module and object freed one by one) costs analyze about 0.15 CPU s after its work is
#: done, and analyze leaves it nothing to do (its output is written atomically and closed, its threads are
#: joined, its scratch directory removed). Not for the other commands: Optuna storages, worker processes and
#: plots may rely on exit handlers.
FAST_EXIT = frozenset({"analyze"})


def main(fast_exit: bool = True) -> None:
    """Console-script entry point: load only the command named on the command line; run a FAST_EXIT command
    lean (unless `fast_exit` is False): no garbage collection during start-up, the process ended right after
    the command, with its exit status."""
    first = sys.argv[1] if len(sys.argv) > 1 else ""
    app = build_app(first if first in command_names() else None)
    if not (fast_exit and first in FAST_EXIT):
        app()
        return
    gc.disable()
    try:
        app()
        code = 0
    except SystemExit as done:
        code = exit_status(done.code)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: what Python's own exit reports as status 120
            code = code or 120
    os._exit(code)


def exit_status(code: object) -> int:
    """The process exit status of `SystemExit(code)`, as Python itself derives it (a message is printed)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1
