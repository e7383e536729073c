"""The run store: `runs/<run>/` holds everything needed to trust and reproduce a search.

Files: `study.journal` (the Optuna study, unless `--storage` put it elsewhere), `run.json` (inputs with
their hashes, hardware figures, versions, seed, command line), `mapping.json` (the best mapping),
`baselines.json`, `pareto.json` (two objectives: one entry per distinct point), `report.md` and its PNG
plots. Each file is written atomically; `run.json` is written last, so a run without it is incomplete
(interrupted) and can be resumed.
"""

from __future__ import annotations

import hashlib
import json
import re
from importlib import metadata
from pathlib import Path
from typing import Any

from autotune.errors import UserError

JOURNAL_NAME = "study.journal"  # the study's default storage, inside the run directory

DEFAULT_ROOT = Path("runs")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def run_dir(run: str, root: Path = DEFAULT_ROOT) -> Path:
    """Where `autotune search --run RUN` keeps its run: `root/RUN` for a run name, or RUN itself when it is an
    existing run directory (one holding run.json or a study journal, e.g. to resume it by its path).

    Any other path is refused: a name with '/' or '..' would put a whole run outside `root`.
    """
    if _NAME.match(run):
        return root / run
    p = Path(run)
    if _is_run_dir(p):
        return p
    hint = f"; to store it under {p.parent}/, pass --runs-dir {p.parent} --run {p.name}" if _NAME.match(p.name) else ""
    raise UserError(
        f"--run {run!r}: not a run name and not an existing run directory (one holding run.json); a name uses "
        f"letters, digits, '.', '_' and '-' (at most 100 characters, no '/' or '..') and the run goes to "
        f"{root}/<name>{hint}"
    )


def _is_run_dir(p: Path) -> bool:
    return p.is_dir() and ((p / "run.json").is_file() or (p / JOURNAL_NAME).is_file())


def resolve_existing(run: str, root: Path = DEFAULT_ROOT) -> Path:
    """A completed run's directory, for the commands that read runs (`show`, `export`, `replay`, ...): a run name
    under `root`, the path of a run directory, or the path of its run.json; a clear error when there is none."""
    p = Path(run)
    if p.name == "run.json" and p.is_file():
        return p.parent
    d = root / run if _NAME.match(run) and not (p / "run.json").is_file() else p
    if (d / "run.json").is_file():
        return d
    if p.is_file():
        raise UserError(f"{run}: a file, not a run; pass the run's directory (the folder holding run.json)")
    if d == p and not p.exists() and _NAME.match(p.name) and _is_run_dir(root / p.name):
        named = root / p.name  # `./NAME` typed for the run NAME under root: say so, as its name would
        if (named / "run.json").is_file():
            raise UserError(f"{run}: no such folder; the run {p.name} is in {named}: pass {p.name} or {named}")
        d = named
    if d.is_dir() and (d / JOURNAL_NAME).is_file():
        raise UserError(
            f"{d}: an interrupted search (a study but no run.json yet); finish it with "
            f"`autotune search --run {d.name} --resume` and the same --hw and --profile"
            + ("" if d == root / d.name and root == DEFAULT_ROOT else f" (and --runs-dir {d.parent})")
        )
    known = sorted(q.parent.name for q in root.glob("*/run.json")) if root.exists() else []
    hint = f"; completed runs under {root}/: {', '.join(known)}" if known else ""
    raise UserError(f"{d}: no completed run here (run.json missing); start one with `autotune search`{hint}")


def recorded_inputs(d: Path) -> tuple[Path | None, str | None]:
    """The workload profile and hardware profile a run's run.json records (None for what it does not): what
    `search --resume` uses when --profile or --hw is left out. The hardware is its file when that still exists,
    else its bundled name."""
    meta = d / "run.json"
    doc = read_json(meta) if meta.is_file() else {}
    inputs = doc.get("inputs") if isinstance(doc, dict) and isinstance(doc.get("inputs"), dict) else {}
    prof, hw = inputs.get("profile") or {}, inputs.get("hardware") or {}
    path = prof.get("path") if isinstance(prof, dict) else None
    hw_path = hw.get("path") if isinstance(hw, dict) else None
    hw_name = hw.get("name") if isinstance(hw, dict) else None
    if isinstance(hw_path, str) and Path(hw_path).is_file():
        spec = hw_path
    else:
        spec = hw_name if isinstance(hw_name, str) else None
    return (Path(path) if isinstance(path, str) else None), spec


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
