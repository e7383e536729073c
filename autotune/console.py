"""Where output goes: progress and messages to stderr, machine-readable JSON to stdout."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from rich.console import Console

#: Width when output goes to a file or a pipe (rich would assume 80 columns and squeeze every table).
PIPE_WIDTH = 132


def _console(stderr: bool) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() or os.environ.get("COLUMNS") else PIPE_WIDTH
    return Console(stderr=stderr, width=width)


#: Progress bars, tables meant for people, warnings. Never stdout, so `--json` output stays clean.
err = _console(stderr=True)
#: Human-readable results (tables) when `--json` is not given.
out = _console(stderr=False)


def emit_json(obj: Any) -> None:
    """Print one JSON object on stdout (the `--json` contract of every command)."""
    sys.stdout.write(json.dumps(obj, indent=2, default=_default) + "\n")
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
