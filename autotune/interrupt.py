"""Ctrl-C in a command: one line on stderr saying what was kept, exit 130 (128 + SIGINT), no traceback.

Without it, typer turns KeyboardInterrupt into a silent exit 130, and the user cannot tell whether a half-written
output was left behind. Commands that write atomically can say "nothing was written"; the message is a callable
so that it describes the state at the moment of the interrupt.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import typer

#: The exit code of a process stopped by SIGINT, as shells report it.
INTERRUPTED_EXIT = 130


@contextmanager
def reports_interrupt(what_was_kept: Callable[[], str]) -> Iterator[None]:
    """Turn Ctrl-C inside the block into `interrupted; <what_was_kept()>` on stderr and exit 130."""
    try:
        yield
    except KeyboardInterrupt:
        print(f"interrupted; {what_was_kept()}", file=sys.stderr)
        raise typer.Exit(INTERRUPTED_EXIT) from None
