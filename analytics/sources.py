"""Which files a LOGS argument names, and what each one is (container, compression, layout).

A LOGS argument is a file, a folder (every log file inside, recursively: `*.csv`, `*.tsv`, `*.txt`, `*.log`,
`*.parquet`, `*.pq`, any of the text ones with `.gz`, and files without an extension such as Criteo's `day_0`;
hidden files, `_SUCCESS`-style markers, empty files, documentation and build files (README.txt, LICENSE,
Makefile) and profile directories written by `analyze` (a profile.json beside counts.parquet) are skipped) or
a glob (`logs/*.tsv.gz`, `**` allowed; its matches are filtered the same way, except that any suffix is taken
that is not plainly a non-log, as when a file is named). Compression is read from the magic bytes, not the
name. A file named on the command line that is plainly not a log (JSON, TOML, YAML, Markdown, an image, a
profile's own counts.parquet) is refused with what it is.

Format detection (`--format auto`), from the first line of the first file:
Parquet by its magic bytes; `long` when the header is exactly query_id, table, id; `criteo` when the
line has 40 tab-separated fields and the first is a 0/1 label; else `tsv` when it holds a tab, else `csv`.
"""

from __future__ import annotations

import csv
import glob
import gzip
import io
import itertools
import zlib
from dataclasses import dataclass
from pathlib import Path

from autotune.errors import UserError

FORMATS: tuple[str, ...] = ("auto", "criteo", "csv", "tsv", "parquet", "long")
LOG_SUFFIXES = frozenset({".csv", ".tsv", ".txt", ".log", ".parquet", ".pq", ""})
CRITEO_FIELDS = 40
LONG_COLUMNS = ("query_id", "table", "id")
GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"
#: Files a folder or glob scan leaves out although their suffix (or lack of one) is a log's: documentation
#: shipped beside data sets, and build files found in working folders.
NOT_LOG_STEMS = frozenset(
    {"readme", "license", "licence", "notice", "changelog", "copying", "authors", "makefile", "dockerfile"}
)
#: Suffixes of files that are never query logs (a model spec, a profile, notes, plots) when named directly.
NOT_LOG_SUFFIXES = frozenset({".json", ".toml", ".yaml", ".yml", ".md", ".png", ".pdf", ".html"})
#: The files of a profile directory written by `analyze` (analytics.profile_io): its marker and its counts.
PROFILE_MARKER = "profile.json"
PROFILE_COUNTS = "counts.parquet"


@dataclass(frozen=True)
class LogFile:
    """One input file: its path, whether it is Parquet, and its text compression ('none' or 'gzip')."""

    path: Path
    parquet: bool
    compression: str


@dataclass(frozen=True)
class Sniffed:
    """What the first line of the first file says: format, delimiter and the header fields."""

    format: str
    delimiter: str
    first_fields: tuple[str, ...]


def expand(paths: list[str | Path]) -> tuple[LogFile, ...]:
    """Every input file, in argument order (folders and globs sorted), each classified; bad ones raise."""
    files: list[Path] = []
    for arg in paths:
        p = Path(arg)
        if p.is_dir():
            if _is_profile_dir(p):
                raise UserError(f"{p}: a workload profile written by `autotune analyze`, not a folder of logs")
            found = sorted(f for f in p.rglob("*") if f.is_file() and _is_log_name(f, p) and not _in_profile(f, p))
            found = [f for f in found if not _is_empty(f)]  # empty part files (Spark's, Hive's) hold no rows
            if not found:
                raise UserError(f"{p}: folder holds no log files (csv, tsv, txt, log, parquet, optionally .gz)")
            files.extend(found)
        elif p.exists():
            _refuse_non_log(p)
            files.append(p)
        elif glob.has_magic(str(arg)):
            matched = sorted(Path(f) for f in glob.glob(str(arg), recursive=True) if Path(f).is_file())
            # a broad pattern (`logs/*`, `logs/**`) meets the non-logs a folder scan meets: the same are left out
            root = _glob_root(str(arg))
            found = [f for f in matched if _is_log_name(f, root, typed=True) and not _in_profile(f, root)]
            found = [f for f in found if not _is_empty(f)]
            if not found:
                only = " (it matches only files that are not logs)" if matched else ""
                raise UserError(f"{arg}: no log file matches this pattern{only}")
            files.extend(found)
        else:
            raise UserError(f"{p}: no such file or folder")
    if not files:
        raise UserError("no input logs given")
    seen: set[Path] = set()
    out = []
    for f in files:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            out.append(classify(f))
    return tuple(out)


def _is_log_name(f: Path, root: Path, typed: bool = False) -> bool:
    """Whether a file found under `root` is taken as a log. A folder scan takes the log suffixes only; a glob the
    user typed (`logs/*.dat`) takes any suffix but the plainly-not-log ones. Both skip hidden files, `_SUCCESS`
    style markers and documentation or build files."""
    rel = f.relative_to(root).parts
    if any(part.startswith((".", "_")) for part in rel):
        return False
    name = Path(f.name[:-3] if f.name.endswith(".gz") else f.name)
    if name.stem.lower() in NOT_LOG_STEMS:
        return False
    suffix = name.suffix.lower()
    return suffix not in NOT_LOG_SUFFIXES if typed else suffix in LOG_SUFFIXES


def _glob_root(pattern: str) -> Path:
    """The folder a glob pattern starts from: its parts before the first one with a wildcard."""
    parts = Path(pattern).parts
    fixed = list(itertools.takewhile(lambda p: not glob.has_magic(p), parts))
    return Path(*fixed) if fixed else Path()


def _is_empty(f: Path) -> bool:
    try:
        return f.stat().st_size == 0
    except OSError:
        return False  # unreadable: `classify` says so


def _is_profile_dir(d: Path) -> bool:
    return (d / PROFILE_MARKER).is_file() and (d / PROFILE_COUNTS).is_file()


def _in_profile(f: Path, root: Path) -> bool:
    """Whether `f` lies in a profile directory below `root` (analyze's output written into its log folder)."""
    return any(_is_profile_dir(d) for d in f.parents if d != root and d.is_relative_to(root))


def _refuse_non_log(p: Path) -> None:
    """A file named on the command line that is plainly not a query log: say what it is."""
    name = Path(p.name[:-3] if p.name.endswith(".gz") else p.name)
    if p.name == PROFILE_COUNTS and (p.parent / PROFILE_MARKER).is_file():
        raise UserError(
            f"{p}: the per-id counts of a workload profile written by `autotune analyze`, not a query log; "
            "to combine two profiles use analytics.merge_profiles"
        )
    if name.suffix.lower() in NOT_LOG_SUFFIXES:
        what = "a workload profile written by `autotune analyze`" if p.name == PROFILE_MARKER else "not a query log"
        raise UserError(
            f"{p}: {what}; analyze reads query logs: CSV, TSV, Criteo text, Parquet or long-form rows (gzip allowed)"
        )


def classify(path: Path) -> LogFile:
    """Parquet or text, gzip or not, from the first bytes; an empty or unreadable file raises."""
    try:
        with path.open("rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise UserError(f"{path}: cannot read the file ({exc.strerror})") from None
    if not head:
        raise UserError(f"{path}: the file is empty; remove it from the inputs")
    if head == PARQUET_MAGIC:
        return LogFile(path, True, "none")
    return LogFile(path, False, "gzip" if head[:2] == GZIP_MAGIC else "none")


def first_line(f: LogFile) -> str:
    """The first line of a text log (decompressed), without its newline; undecodable bytes raise."""
    try:
        opener = gzip.open if f.compression == "gzip" else open
        with opener(f.path, "rb") as fh:
            line = fh.readline(1 << 20)
    except (OSError, EOFError, zlib.error) as exc:
        raise UserError(f"{f.path}: cannot read the file ({exc})") from None
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{f.path}: line 1 is not UTF-8 text; logs must be UTF-8 (or Parquet)") from None
    text = text.rstrip("\r\n")
    if not text:
        raise UserError(f"{f.path}: the file is empty (no text on line 1)")
    return text


def split_fields(line: str, delimiter: str) -> tuple[str, ...]:
    """Fields of one CSV/TSV line (CSV quoting honoured for commas)."""
    if delimiter == "\t":
        return tuple(line.split("\t"))
    return tuple(next(csv.reader(io.StringIO(line), delimiter=delimiter)))


def sniff(f: LogFile) -> Sniffed:
    """Detect the format of a text log from its first line (see the module docstring)."""
    line = first_line(f)
    delimiter = "\t" if "\t" in line else ","
    fields = split_fields(line, delimiter)
    if tuple(x.strip().lower() for x in fields) == LONG_COLUMNS:
        return Sniffed("long", delimiter, fields)
    if delimiter == "\t" and len(fields) == CRITEO_FIELDS and fields[0] in ("0", "1"):
        return Sniffed("criteo", delimiter, fields)
    return Sniffed("tsv" if delimiter == "\t" else "csv", delimiter, fields)
