"""The run store: `runs/<run>/` holds everything needed to trust and reproduce a search.

Files: `study.journal` (the Optuna study, unless `--storage` put it elsewhere), `run.json` (inputs with
their hashes, hardware figures, versions, seed, command line), `mapping.json` (the best mapping),
`baselines.json`, `pareto.json` (two objectives: one entry per distinct point), `report.md` and its PNG
plots. `autotune search` writes them all into a staging folder and moves them in with `run.json` last, so
the files of a run are always from one search. A run Ctrl-C stopped after some trials is stored all the same,
with `status: "interrupted"` in run.json (`show` and `export` say so); a run without run.json is one stopped
before it stored anything (its study may hold trials, and records its inputs in the `STUDY_ATTR` attribute).
Both continue with `autotune search --resume`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
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
            f"{d}: an interrupted search, stopped before it stored a run (a study but no run.json); finish it with "
            f"`autotune search --run {d.name} --resume` and the same --hw and --profile"
            + ("" if d == root / d.name and root == DEFAULT_ROOT else f" (and --runs-dir {d.parent})")
        )
    known = sorted(q.parent.name for q in root.glob("*/run.json")) if root.exists() else []
    hint = f"; completed runs under {root}/: {', '.join(known)}" if known else ""
    raise UserError(f"{d}: no completed run here (run.json missing); start one with `autotune search`{hint}")


#: The study user attribute holding what run.json records about the inputs, set when the study is created, so a
#: run interrupted before its run.json was written is still checked on --resume.
STUDY_ATTR = "run_inputs"


@dataclass(frozen=True)
class Recorded:
    """What a run was started with, as its run.json (or, before run.json exists, its study) records it; None for
    what the record lacks (older runs). The one reader of these fields for search, show and export."""

    profile_path: str | None = None
    profile_sha256: str | None = None
    hw_name: str | None = None
    hw_path: str | None = None
    hw_sha256: str | None = None
    batch_size: int | None = None
    heavy: int | None = None
    objectives: tuple[str, ...] | None = None
    storage: str | None = None
    status: str | None = None
    n_trials: int | None = None
    source: str = "run.json"  # where it was read: "run.json" or "the study"

    @property
    def hw_spec(self) -> str | None:
        """The hardware to load: its file while that still exists, else its bundled name."""
        if self.hw_path is not None and Path(self.hw_path).is_file():
            return self.hw_path
        return self.hw_name


def inputs_record(
    profile_file: Path, hw_name: str, hw_path: Path, batch_size: int, heavy: int, objectives: tuple[str, ...]
) -> dict[str, Any]:
    """The fields run.json and the study's `STUDY_ATTR` record about a run's inputs (hashes included)."""
    return {
        "inputs": {
            "profile": {"path": str(profile_file), "sha256": sha256_file(profile_file)},
            "hardware": {"name": hw_name, "path": str(hw_path), "sha256": sha256_file(hw_path)},
        },
        "batch_size": batch_size,
        "heavy": heavy,
        "objectives": list(objectives),
    }


def parse_record(doc: Any, source: str = "run.json") -> Recorded:
    """A `Recorded` from a run.json document or a study's `STUDY_ATTR` (fields of the wrong type count as absent)."""
    doc = doc if isinstance(doc, dict) else {}
    inputs = doc.get("inputs") if isinstance(doc.get("inputs"), dict) else {}
    prof = inputs.get("profile") if isinstance(inputs.get("profile"), dict) else {}
    hw = inputs.get("hardware") if isinstance(inputs.get("hardware"), dict) else {}

    def text(d: dict, k: str) -> str | None:
        return d[k] if isinstance(d.get(k), str) else None

    def count(k: str) -> int | None:
        v = doc.get(k)
        return v if isinstance(v, int) and not isinstance(v, bool) else None

    objs = doc.get("objectives")
    ok = isinstance(objs, list) and all(isinstance(o, str) for o in objs)
    return Recorded(
        profile_path=text(prof, "path"),
        profile_sha256=text(prof, "sha256"),
        hw_name=text(hw, "name"),
        hw_path=text(hw, "path"),
        hw_sha256=text(hw, "sha256"),
        batch_size=count("batch_size"),
        heavy=count("heavy"),
        objectives=tuple(objs) if ok else None,
        storage=text(doc, "storage"),
        status=text(doc, "status"),
        n_trials=count("n_trials"),
        source=source,
    )


def recorded(d: Path) -> Recorded | None:
    """What run `d`'s run.json records, or None when it has no run.json."""
    meta = d / "run.json"
    return parse_record(read_json(meta)) if meta.is_file() else None


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
