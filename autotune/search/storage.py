"""Where a study lives: a journal file under the run by default, or any Optuna storage URL.

A journal file (`runs/<run>/study.journal`) needs no server, is safe for several processes on one machine
(and, per Optuna's documentation, on NFS), and survives SIGKILL: every completed trial was appended before
the next began. A database URL (`sqlite:///...`, `postgresql+psycopg://...`) lets workers on many machines
share one study; only RDB storages have heartbeats, so there a dead worker's trial is failed and retried
automatically.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from autotune.errors import UserError
from autotune.search.runstore import JOURNAL_NAME

__all__ = ["JOURNAL_NAME"]
#: Trial user attribute naming the process that ran it: "host:pid". Used to find trials a killed worker left.
WORKER_ATTR = "worker"
#: How often a worker on an RDB storage proves it is alive, and after how long without a beat it is dead.
HEARTBEAT_S = 20
GRACE_S = 120

_DB_SCHEMES = ("sqlite", "postgresql", "mysql", "oracle", "mssql")


def describe(url: str | None, run_dir: Path) -> str:
    """The storage as users should write it in `--storage` to join this study."""
    return url if url else str(run_dir / JOURNAL_NAME)


def is_url(storage: str) -> bool:
    """A `--storage` value is a database URL when it has a scheme (`scheme://...`), else a journal file path."""
    return "://" in storage


def same_storage(recorded: str, requested: str | None, run_dir: Path) -> bool:
    """Whether `--storage requested` names the study a run recorded (run.json `storage`, as `describe` wrote it).

    URLs compare as written; journal files by resolved path, and the run's own journal (no --storage) also
    when the run directory moved since (the journal moves with it)."""
    if is_url(recorded) or (requested is not None and is_url(requested)):
        return requested == recorded
    now = Path(requested) if requested is not None else run_dir / JOURNAL_NAME
    if now.resolve() == Path(recorded).resolve():
        return True
    return requested is None and Path(recorded).name == JOURNAL_NAME and Path(recorded).parent.name == run_dir.name


def is_journal(path: Path) -> bool:
    """Whether the file at `path` is an Optuna journal: empty (a fresh one), or lines of JSON operations whose
    first is an object with an "op_code" (enough to tell a journal from a profile or a log)."""
    try:
        if path.stat().st_size == 0:
            return True
        with open(path, "rb") as fh:
            op = json.loads(fh.readline(1 << 20))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(op, dict) and "op_code" in op


def check_journal(path: Path, option: str) -> None:
    """Refuse a journal path that is a folder, lies under a file, or is an existing file that is not a journal:
    Optuna would fail on it with a traceback (or append to it)."""
    from autotune.atomic import check_parent

    remedy = f"give {option} a new file name or the journal of the study to join"
    if path.is_dir():
        raise UserError(f"{option} {path}: is a folder, not a journal file; {remedy} (e.g. {path / JOURNAL_NAME})")
    if path.exists() and not is_journal(path):
        raise UserError(f"{option} {path}: exists and is not an Optuna journal file; {remedy}")
    if not path.exists():
        check_parent(path, option)


def check_storage(url: str | None) -> None:
    """Refuse a URL whose scheme no Optuna storage speaks (else it would become a journal file named after the
    URL), and a journal path that cannot be one, before anything is created."""
    if url is None:
        return
    if not is_url(url):
        check_journal(Path(url), "--storage")
        return
    scheme = url.split("://", 1)[0]
    if scheme.split("+", 1)[0].lower() not in _DB_SCHEMES:
        raise UserError(
            f"--storage {url}: unknown scheme {scheme!r}; use a journal file path (e.g. runs/shared.journal) or a "
            "database URL: " + ", ".join(f"{s}://..." for s in _DB_SCHEMES) + " (a driver may follow '+', e.g. "
            "postgresql+psycopg://user@host/db)"
        )


def open_storage(url: str | None, run_dir: Path) -> optuna.storages.BaseStorage:
    """Open the study's storage: `url` (a database URL or a journal file path), or the run's journal file."""
    check_storage(url)
    if url is None or not is_url(url):
        path = Path(url) if url else run_dir / JOURNAL_NAME
        check_journal(path, "--storage" if url else "the run's journal")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(path)))
        except OSError as exc:
            where = "--storage" if url else "the run directory"
            raise UserError(
                f"{where} {path}: cannot open the journal file ({exc.strerror or exc}); give a writable path"
            ) from None
    last: Exception | None = None
    for attempt in range(5):  # machines starting together race to create the schema: retry, it then exists
        try:
            return RDBStorage(
                url,
                heartbeat_interval=HEARTBEAT_S,
                grace_period=GRACE_S,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3),
                engine_kwargs={"pool_pre_ping": True},
            )
        except Exception as exc:  # SQLAlchemy / driver errors: report the URL and the cause in one line
            last = exc
            time.sleep(0.2 * (attempt + 1))
    cause = str(last).strip().splitlines()[0] if last is not None and str(last).strip() else type(last).__name__
    raise UserError(f"--storage {url}: cannot open the database ({cause}); check the URL and the server")


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


REGISTRY_DIR = ".workers"


@contextlib.contextmanager
def registered_worker(registry: Path) -> Iterator[None]:
    """Mark this process as a live worker of the study while the block runs (a file named host:pid)."""
    registry.mkdir(parents=True, exist_ok=True)
    me = registry / worker_id()
    me.touch()
    try:
        yield
    finally:
        me.unlink(missing_ok=True)


def recover_stale_trials(study: optuna.Study, registry: Path) -> int:
    """Fail the RUNNING trials left by dead workers and re-enqueue their parameters.

    A journal file has no heartbeat, so a worker killed by SIGKILL leaves its trial RUNNING forever. Workers
    register in `registry` (host:pid files) and tag their trials with `WORKER_ATTR`. A trial is stale when its
    worker is on this host and dead, or when it carries no tag yet (killed right after creating it) and no
    registered worker is alive (workers of other hosts count as alive: they cannot be checked from here).
    Returns the number of trials recovered.
    """
    host = socket.gethostname()
    alive_any = False
    if registry.is_dir():
        for entry in registry.iterdir():
            wh, _, pid = entry.name.rpartition(":")
            if wh != host or not pid.isdigit() or _alive(int(pid)):
                alive_any = True
            else:
                entry.unlink(missing_ok=True)
    n = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        who = str(t.user_attrs.get(WORKER_ATTR, ""))
        wh, _, pid = who.rpartition(":")
        if who:
            stale = wh == host and pid.isdigit() and not _alive(int(pid))
        else:
            stale = not alive_any
        if not stale:
            continue
        study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
        if t.params:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number}, skip_if_exists=True)
        n += 1
    return n


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
