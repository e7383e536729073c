"""Where output goes: progress and messages to stderr, machine-readable JSON to stdout.

`err` and `out` are rich consoles made on first use (module `__getattr__`): importing rich costs about
20 ms, which a command that prints no table (`analyze --json`, the one whose start-up is benchmarked)
should not pay. `status` shows a spinner on a terminal and plain lines elsewhere (a log file or a CI job
shows what a long step is doing, where rich would print nothing), but only once the step has run for
`PLAIN_AFTER_S`: bad input, found in the first milliseconds, stays one line on stderr. `ticker` does the same
for commands with a progress bar (search, synth): off a terminal, a plain line every `PLAIN_EVERY_S`.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from autotune.jsontext import dumps

if TYPE_CHECKING:
    from rich.console import Console

    #: Progress bars, tables meant for people, warnings. Never stdout, so `--json` output stays clean.
    err: Console
    #: Human-readable results (tables) when `--json` is not given.
    out: Console

#: Width when output goes to a file or a pipe (rich would assume 80 columns and squeeze every table).
PIPE_WIDTH = 132
#: Off a terminal, progress messages sent earlier than this after a step began are not printed.
PLAIN_AFTER_S = 1.0
#: Off a terminal, a long command's progress line comes at most this often (seconds), instead of a bar.
PLAIN_EVERY_S = 10.0


def _console(stderr: bool) -> Console:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() or os.environ.get("COLUMNS") else PIPE_WIDTH
    return Console(stderr=stderr, width=width)


def _made(name: str) -> Console:
    """The console `err` or `out`, made on first use and kept as the module's attribute."""
    console = globals().get(name)
    if console is None:
        console = globals()[name] = _console(stderr=name == "err")
    return console


def __getattr__(name: str) -> Any:
    if name in ("err", "out"):
        return _made(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@contextmanager
def status(label: str) -> Iterator[Callable[[str], None]]:
    """Show the progress of one long step on stderr; yields `update(message)`.

    On a terminal: rich's spinner with the latest message. Elsewhere: one line `label: message` per update
    sent `PLAIN_AFTER_S` or more after the step began."""
    if sys.stderr.isatty():
        with _made("err").status(label) as spinner:
            yield lambda msg: spinner.update(msg)
        return
    began = time.monotonic()

    def say(msg: str) -> None:
        if time.monotonic() - began >= PLAIN_AFTER_S:
            print(f"{label}: {msg}", file=sys.stderr, flush=True)

    yield say


def ticker(label: str, every_s: float | None = None) -> Callable[[str], None]:
    """Off a terminal, where progress bars print nothing: `tick(message)` prints `label: message` on stderr at
    most once per `every_s` seconds (default `PLAIN_EVERY_S`), the first `every_s` after the ticker was made (a
    short run prints nothing)."""
    period = PLAIN_EVERY_S if every_s is None else every_s
    last = time.monotonic()

    def tick(msg: str) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= period:
            last = now
            print(f"{label}: {msg}", file=sys.stderr, flush=True)

    return tick


def emit_json(obj: Any) -> None:
    """Print one JSON object on stdout (the `--json` contract of every command)."""
    sys.stdout.write(dumps(obj, default=_default) + "\n")
    sys.stdout.flush()


def _default(obj: Any) -> Any:
    # numpy scalars and arrays, Paths: everything else is a bug and should fail loudly.
    from pathlib import PurePath

    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, PurePath):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
