"""The run store: `runs/<run>/` holds everything needed to trust and reproduce a search.

Files: `study.journal` (the Optuna study, unless `--storage` put it elsewhere), `run.json` (inputs with
their hashes, hardware figures, versions, seed, command line), `mapping.json` (the best mapping),
`baselines.json`, `pareto.json` (two objectives), `report.md` and its PNG plots. Each file is written
atomically; `run.json` is written last, so a run without it is incomplete (interrupted) and can be resumed.
"""

from __future__ import annotations

import hashlib
import json
import re
from importlib import metadata
from pathlib import Path
from typing import Any

from autotune.errors import UserError

DEFAULT_ROOT = Path("runs")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def run_dir(run: str, root: Path = DEFAULT_ROOT) -> Path:
    """The directory of run `run` (a name under `root`, or a path to an existing run directory)."""
    p = Path(run)
    if (p.is_dir() and (p / "run.json").exists()) or len(p.parts) > 1:
        return p
    if not _NAME.match(run):
        raise UserError(f"--run {run!r}: use letters, digits, '.', '_' and '-' (at most 100 characters)")
    return root / run


def resolve_existing(run: str, root: Path = DEFAULT_ROOT) -> Path:
    """A completed run's directory, for `show` and `export`: a clear error when there is none."""
    d = run_dir(run, root)
    if not (d / "run.json").exists():
        known = sorted(p.parent.name for p in root.glob("*/run.json")) if root.exists() else []
        hint = f"; completed runs under {root}/: {', '.join(p for p in known)}" if known else ""
        raise UserError(f"{d}: no completed run here (run.json missing); start one with `autotune search`{hint}")
    return d


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def versions() -> dict[str, str]:
    out = {}
    for pkg in ("autotune", "optuna", "numpy", "polars", "duckdb"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: missing; the run is incomplete, rerun `autotune search --resume`") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: unreadable ({exc}); rerun `autotune search`") from None
