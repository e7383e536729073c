"""Read a small TOML or JSON document (a model spec, a synth spec) with one clear error on failure."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from autotune.errors import UserError


def load_doc(path: Path, what: str) -> Any:
    """Parse `path` as JSON (`.json`) or TOML (anything else); `what` names the document in errors."""
    if not path.is_file():
        raise UserError(f"{path}: {what} not found; give a TOML or JSON file")
    kind = "JSON" if path.suffix.lower() == ".json" else "TOML"
    try:
        text = path.read_text(encoding="utf-8")
        return json.loads(text) if kind == "JSON" else tomllib.loads(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: {what} is not readable text ({exc})") from None
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"{path}: {what} is not valid {kind} ({exc}); fix the file") from None
