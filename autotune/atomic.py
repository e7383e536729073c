"""Atomic writes: readers never see a half-written file or directory, and no output replaces user data.

Files are written to a temporary sibling and renamed (`os.replace` is atomic on POSIX within one file
system). Directories are built in a temporary sibling and swapped in, so an interrupted command leaves
either the old output or nothing, never a partial one. An existing folder is replaced only when it is
empty or a previous output of the same command holding nothing else (`OutputKind`): an output path is
often typed by hand, and `--out logs` must not delete the logs.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autotune.errors import UserError
from autotune.jsontext import dumps

#: Foreign entries named in a refusal; more are counted, not listed.
_SHOWN = 3


@dataclass(frozen=True)
class OutputKind:
    """What one command writes into its output folder: a previous output of it may be replaced, nothing else.

    `files` are the relative paths it writes, as shell patterns per path part ("plots/*.png"); `marker` is
    the file every output of it holds (how a previous output is told from a folder that happens to match).
    """

    command: str  # the command, as in `autotune <command>`
    option: str  # the option or argument naming the folder, for the remedy ("--out")
    marker: str
    files: tuple[str, ...]

    def allows(self, parts: tuple[str, ...], is_dir: bool) -> bool:
        """Whether the entry at relative path `parts` is one this command writes (a folder: one it writes into)."""
        for pattern in self.files:
            want = tuple(pattern.split("/"))
            fits = len(want) > len(parts) if is_dir else len(want) == len(parts)
            if fits and all(fnmatch.fnmatchcase(p, w) for p, w in zip(parts, want, strict=False)):
                return True
        return False


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: The process umask, read once at import: reading it means setting it, and a umask of 0 for even a moment would
#: give files that another thread (the counts writer, Optuna's storage) creates then world-writable permissions.
_UMASK = _read_umask()


def _umask() -> int:
    return _UMASK


def check_parent(path: Path, option: str) -> None:
    """Refuse `path` when its folder cannot be created: an ancestor is a file, or the nearest existing one is
    not writable. Cheap, so commands call it before their work rather than fail after it."""
    path = Path(path)
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UserError(f"{option} {path}: cannot create its folder, {ancestor} is a file; choose another {option}")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UserError(f"{option} {path}: no permission to write in {ancestor}; choose another {option}")


def check_output_file(path: Path, option: str, example: str) -> None:
    """Refuse an output file path that is a folder or whose folder cannot be created, before any work."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{option} {path}: is a folder; give a file name (e.g. {path / example})")
    check_parent(path, option)


@dataclass(frozen=True)
class OwnedFolder:
    """A folder another command produced, told by its marker files (all present): a file output never goes in it.

    Its files belong to that command (a run's run.json, a profile's counts.parquet); a stray file in it makes the
    next `analyze --out` refuse the folder, an overwritten one breaks it."""

    what: str  # "the run": the owner of its files, as in "the run's run.json"
    command: str  # who wrote it, as in `autotune <command>`
    markers: tuple[str, ...]


@dataclass(frozen=True)
class FileKind:
    """What one command writes as a single user-named file: an earlier output of it may be replaced, nothing else.

    `recognise` takes the parsed JSON document of the existing file (a previous output is told by its shape)."""

    command: str  # "export --format json", as in `autotune <command>`
    option: str  # the option naming the file ("--out")
    example: str  # a file name for the remedy when a folder is given
    recognise: Callable[[object], bool]


#: Bytes of an existing file read to tell whether it is an earlier output (these outputs are small JSON files).
_PEEK_BYTES = 64 << 20


def owner_of(path: Path, owned: Sequence[OwnedFolder]) -> tuple[Path, OwnedFolder] | None:
    """The nearest existing folder holding `path` that another command produced, with what it is; None if none."""
    folder = Path(path).absolute().parent
    while True:
        if folder.is_dir():
            for o in owned:
                if all((folder / m).is_file() for m in o.markers):
                    return folder, o
        if folder == folder.parent:
            return None
        folder = folder.parent


def check_output_json(path: Path, kind: FileKind, owned: Sequence[OwnedFolder] = ()) -> None:
    """Refuse `kind`'s output file before any work: a folder, a path whose folder cannot be created, a path inside a
    folder another command produced (`owned`), or an existing file that is not an earlier output of the command."""
    path = Path(path)
    check_output_file(path, kind.option, kind.example)
    remedy = f"choose another {kind.option}"
    found = owner_of(path, owned)
    if found is not None:
        folder, o = found
        inside = path.absolute().relative_to(folder)
        what = f"{o.what}'s {inside}" if path.exists() else f"a new file inside {o.what}"
        raise UserError(
            f"{kind.option} {path}: {what} ({folder} was written by `autotune {o.command}` and its files belong to "
            f"it); {remedy} outside {folder}"
        )
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise UserError(
            f"{kind.option} {path}: not a plain file, so not a previous `autotune {kind.command}` output; {remedy}"
        )
    if not path.exists():
        return
    try:
        with open(path, "rb") as fh:
            doc = json.loads(fh.read(_PEEK_BYTES).decode("utf-8"))
        ours = kind.recognise(doc)
    except (OSError, UnicodeDecodeError, ValueError):
        ours = False
    if not ours:
        raise UserError(
            f"{kind.option} {path}: the file exists and is not a previous `autotune {kind.command}` output; "
            f"{remedy} or remove the file"
        )


def _foreign(path: Path, kind: OutputKind) -> list[str]:
    """Entries under `path` that `kind`'s command does not write (at most _SHOWN + 1: enough to refuse)."""
    found: list[str] = []
    for top, dirs, files in os.walk(path, onerror=_raise):
        rel = Path(top).relative_to(path).parts
        for name in sorted(files) + [d for d in sorted(dirs) if Path(top, d).is_symlink()]:
            if not kind.allows((*rel, name), is_dir=False):
                found.append("/".join((*rel, name)))
        keep = []
        for name in sorted(dirs):
            if Path(top, name).is_symlink():
                continue
            if kind.allows((*rel, name), is_dir=True):
                keep.append(name)
            else:
                found.append("/".join((*rel, name)) + "/")
        dirs[:] = keep  # do not descend into folders the command does not write
        if len(found) > _SHOWN:
            break
    return found


def _raise(exc: OSError) -> None:
    raise exc


def check_output_dir(path: Path, kind: OutputKind) -> None:
    """Refuse `path` as `kind`'s output folder unless it is absent, empty, or a previous output of that command
    holding only what it writes. Commands call it before their work; `atomic_dir` calls it again at the swap."""
    path = Path(path)
    remedy = f"choose another {kind.option} or remove it"
    if path.name in ("", ".", ".."):
        raise UserError(
            f"{kind.option} {path}: name the output folder itself, not '.', '..' or '/' (e.g. {path / 'out'})"
        )
    if path.is_symlink():
        raise UserError(f"{path} is a symbolic link, not a previous `autotune {kind.command}` output; {remedy}")
    check_parent(path, kind.option)  # also for an existing folder: the new one is built beside it
    if not path.exists():
        return
    if not path.is_dir():
        raise UserError(f"{path} exists and is a file, not a previous `autotune {kind.command}` output; {remedy}")
    try:
        if not any(path.iterdir()):
            return
        foreign = _foreign(path, kind)
    except OSError as exc:
        raise UserError(f"{path}: cannot read the folder ({exc.strerror}); {remedy}") from None
    if foreign:
        shown = ", ".join(foreign[:_SHOWN]) + (" and more" if len(foreign) > _SHOWN else "")
        what = f"it holds {shown}"
    elif not (path / kind.marker).is_file():
        what = f"it holds no {kind.marker}"
    else:
        return
    raise UserError(f"{path} exists and is not a previous `autotune {kind.command}` output ({what}); {remedy}")


def write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically (with the permissions a plain `open` would give it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600 files
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj: Any) -> None:
    """Write `obj` as indented JSON (flat lists on one line: `autotune.jsontext`) to `path` atomically."""
    write_text(path, dumps(obj) + "\n")


@contextlib.contextmanager
def atomic_dir(path: Path, kind: OutputKind) -> Iterator[Path]:
    """Yield a temporary directory; on success it replaces `path`, on failure it is removed.

    `path` must pass `check_output_dir` (checked on entry and again at the swap, since the folder may have
    changed while the contents were computed). An existing `path` is replaced only after the new contents
    are complete; a swap that fails leaves the old folder in place and becomes a `UserError`.
    """
    path = Path(path)
    check_output_dir(path, kind)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as exc:
        raise UserError(
            f"{kind.option} {path}: cannot create a folder beside it ({exc.strerror}); choose another {kind.option}"
        ) from None
    try:
        tmp.chmod(0o777 & ~_umask())  # mkdtemp makes 0700 directories
        yield tmp
        check_output_dir(path, kind)
        old = _swap(tmp, path, kind.option)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _swap(tmp: Path, path: Path, option: str) -> Path | None:
    """Rename `tmp` to `path`, moving an existing `path` aside first; return where the old one went."""
    old = None
    try:
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
            os.replace(path, old)  # a folder onto an empty folder: allowed, atomic
        os.replace(tmp, path)
    except OSError as exc:
        if old is not None:
            if not path.exists():
                with contextlib.suppress(OSError):
                    os.replace(old, path)
            with contextlib.suppress(OSError):
                old.rmdir()  # the empty placeholder, when the first rename failed
        raise UserError(
            f"{path}: cannot put the new output in place ({exc.strerror}); choose another {option}"
        ) from None
    return old
