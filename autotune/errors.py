"""One error type for bad input, and the decorator that turns it into one line and a non-zero exit.

Every command raises `UserError` for anything the user can fix (a missing file, a bad field, a table that
does not exist); the CLI prints `error: <message>` on stderr, exits with `exit_code`, and never shows a
traceback. Library callers get an ordinary exception they can catch.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer

P = ParamSpec("P")
R = TypeVar("R")


class UserError(Exception):
    """Bad input the user can fix. The message names the file, the field and the remedy."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Wrap a CLI command: `UserError` becomes one line on stderr and `typer.Exit(code)`."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except UserError as err:
            print(f"error: {err.message}", file=sys.stderr)
            raise typer.Exit(err.exit_code) from None

    return wrapper
