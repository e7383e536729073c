"""The `autotune` command line. Each command lives in its own module under `autotune/commands/`.

A module there exposes `register(app: typer.Typer) -> None`; adding a command is adding one file, named
after its command. `main` imports only the module of the command being run (importing every command
pulls in the search stack, Optuna and the latency model: about 0.15 s of every `autotune analyze`);
without a known command (`autotune --help`, a typo) it registers them all. `app`, the app with every
command (what tests drive with typer's CliRunner), is built on first access.

Both go through `Root`, the top-level command group, so `main` and CliRunner print the same thing: a usage
error (a bad option value, a missing option or argument, an unknown command) is one line
`error: <message> (see autotune <command> --help)` on stderr with click's exit status 2, not typer's boxed
panel; help paragraphs flow (rich keeps every newline of a docstring; click's plain formatter joins them);
flags show no `<bool>` type. None of it imports rich: `analyze`'s start-up stays lean.
"""

from __future__ import annotations

import gc
import importlib
import os
import pkgutil
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from typer._click import Command, Context
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
from typer.core import TyperGroup, TyperOption

import autotune
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
        name="autotune",
        help=HELP,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        cls=Root,
    )
    for name in [only] if only else command_names():
        importlib.import_module(f"autotune.commands.{name}").register(app)
    # The callback holds --version; it also keeps a one-command app a group (typer turns an app with one
    # command and no callback into that bare command, `autotune LOGS`), so `autotune analyze ...` parses the same.
    app.callback()(_root)
    return app


def _print_version(value: bool) -> None:
    """`--version`: eager, so it answers before any command is looked for."""
    if value:
        print(f"autotune {autotune.__version__}")
        raise typer.Exit(0)


def _root(
    version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_print_version, help="Print the version and exit."
    ),
) -> None:
    """Top-level options; the commands do the work."""


class Root(TyperGroup):
    """The top-level group: one-line usage errors, flowing help paragraphs, flags without a type (module doc)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _tidy_help(self)

    def make_context(
        self, info_name: str | None, args: list[str], parent: Context | None = None, **extra: Any
    ) -> Context:
        with one_line_errors():  # top-level options: `autotune --bogus`
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: Context) -> Any:
        with one_line_errors():  # resolving the command, parsing its options, running it
            return super().invoke(ctx)


@contextmanager
def one_line_errors() -> Iterator[None]:
    """A click error becomes `error: <message> (see <command> --help)` on stderr and its exit status (2 for
    usage errors). `autotune` or `autotune hw` alone still prints the help (click's NoArgsIsHelpError)."""
    try:
        yield
    except NoArgsIsHelpError:
        raise
    except ClickException as exc:
        print(error_line(exc), file=sys.stderr)
        raise typer.Exit(exc.exit_code) from None


def error_line(exc: ClickException) -> str:
    """`Missing option '--format' / '-f'.` of `autotune export` ->
    `error: missing option '--format' / '-f' (see autotune export --help)`."""
    message = " ".join(exc.format_message().split()).rstrip(".")
    message = message[:1].lower() + message[1:]
    ctx = exc.ctx if isinstance(exc, UsageError) else None
    if ctx is not None and ctx.command.get_help_option(ctx) is not None:
        message += f" (see {ctx.command_path} {ctx.help_option_names[0]})"
    return f"error: {message}"


def _tidy_help(command: Command) -> None:
    """Make `command` and every command under it read well in rich's help: paragraphs flow, flags have no type."""
    command.help = flowing(command.help)
    for param in [*command.params, command.get_help_option(Context(command))]:
        if isinstance(param, TyperOption):
            param.help = flowing(param.help)
            if param.is_flag:
                param.metavar = ""  # rich's help prints a flag's type, `<bool>`, unless it has a metavar
    for sub in getattr(command, "commands", {}).values():
        _tidy_help(sub)


def flowing(text: str | None) -> str | None:
    """Each paragraph (blank-line separated) on one line, as click's plain formatter reads a docstring: rich's
    help keeps single newlines, which break a hard-wrapped docstring mid-sentence. A list is written as one
    paragraph per item. Text after a `\\f` line (click's "not for help" marker) is kept as it is."""
    if not text:
        return text
    shown, cut, hidden = text.partition("\f")
    paragraphs = re.split(r"\n[ \t]*\n", shown.strip("\n"))
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs) + cut + hidden


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
