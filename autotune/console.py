"""Where output goes: progress and messages to stderr, machine-readable JSON to stdout."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

#: Progress bars, tables meant for people, warnings. Never stdout, so `--json` output stays clean.
err = Console(stderr=True)
#: Human-readable results (tables) when `--json` is not given.
out = Console()


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
