"""Earlier calibrated hardware profiles, kept when `autotune calibrate` writes a new one over them.

A search run records the sha256 of the hardware profile file it was scored against, and `show`/`export`
refuse a file that changed since. Calibrating again rewrites `cpu.toml`, so without a copy every earlier
`--hw cpu` run would become unloadable. The previous file is copied byte for byte (so its sha256 still
matches the runs that used it) into `previous/` beside it, named after when it was written (that is, when
it was measured): `previous/cpu.20261122T123456Z.toml`. Not beside it in the same folder, because every
`*.toml` there is a profile found by file name (`autotune hw list`), and a kept copy's `name` is still `cpu`.
"""

from __future__ import annotations

import datetime
import hashlib
from pathlib import Path

from autotune import atomic

#: The folder, beside a profile, that holds its earlier versions.
KEPT_DIR = "previous"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def keep_previous(path: Path) -> Path | None:
    """Copy an existing profile `path` to previous/<stem>.<UTC time it was written>.toml (atomically); return
    the copy, or None when there is no file to keep. An identical copy already kept is reused."""
    path = Path(path)
    if not path.is_file():
        return None
    data = path.read_bytes()
    written = datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.UTC)
    stem = f"{path.stem}.{written:%Y%m%dT%H%M%SZ}"
    folder = path.parent / KEPT_DIR
    for n in range(1, 1000):
        kept = folder / (f"{stem}{path.suffix}" if n == 1 else f"{stem}-{n}{path.suffix}")
        if not kept.exists():
            atomic.write_bytes(kept, data)
            return kept
        if kept.is_file() and _sha256(kept.read_bytes()) == _sha256(data):
            return kept
    raise RuntimeError(f"{folder}: 999 kept copies of {path.name} written in the same second")


def find_kept(path: Path, sha256: str) -> Path | None:
    """The kept earlier version of profile `path` whose bytes hash to `sha256` (the newest such), or None."""
    path = Path(path)
    folder = path.parent / KEPT_DIR
    if not folder.is_dir():
        return None
    for kept in sorted(folder.glob(f"{path.stem}.*{path.suffix}"), reverse=True):
        if kept.is_file() and _sha256(kept.read_bytes()) == sha256:
            return kept
    return None
