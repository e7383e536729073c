"""Where a study lives: a journal file under the run by default, or any Optuna storage URL.

A journal file (`runs/<run>/study.journal`) needs no server, is safe for several processes on one machine
(and, per Optuna's documentation, on NFS), and survives SIGKILL: every completed trial was appended before
the next began. A database URL (`sqlite:///...`, `postgresql+psycopg://...`) lets workers on many machines
share one study; only RDB storages have heartbeats, so there a dead worker's trial is failed and retried
automatically.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import optuna
from optuna.storages import JournalStorage, RDBStorage, RetryFailedTrialCallback
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from autotune.errors import UserError

JOURNAL_NAME = "study.journal"
#: Trial user attribute naming the process that ran it: "host:pid". Used to find trials a killed worker left.
WORKER_ATTR = "worker"
#: How often a worker on an RDB storage proves it is alive, and after how long without a beat it is dead.
HEARTBEAT_S = 10
GRACE_S = 30

_DB_SCHEMES = ("sqlite", "postgresql", "mysql", "oracle", "mssql")


def describe(url: str | None, run_dir: Path) -> str:
    """The storage as users should write it in `--storage` to join this study."""
    return url if url else str(run_dir / JOURNAL_NAME)


def open_storage(url: str | None, run_dir: Path) -> optuna.storages.BaseStorage:
    """Open the study's storage: `url` (a database URL or a journal file path), or the run's journal file."""
    if url is None or url.split(":", 1)[0].split("+", 1)[0] not in _DB_SCHEMES:
        path = Path(url) if url else run_dir / JOURNAL_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    try:
        return RDBStorage(
            url,
            heartbeat_interval=HEARTBEAT_S,
            grace_period=GRACE_S,
            failed_trial_callback=RetryFailedTrialCallback(max_retry=3),
            engine_kwargs={"pool_pre_ping": True},
        )
    except Exception as exc:  # SQLAlchemy / driver errors: report the URL and the cause in one line
        cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"--storage {url}: cannot open the database ({cause}); check the URL and the server") from None


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def recover_stale_trials(study: optuna.Study) -> int:
    """Fail the RUNNING trials left by dead workers of this host and re-enqueue their parameters.

    A journal file has no heartbeat, so a worker killed by SIGKILL leaves its trial RUNNING forever. A trial
    is stale when it records a worker on this host whose process no longer exists; trials of live workers
    and of other hosts are left alone. Returns the number of trials recovered.
    """
    host = socket.gethostname()
    n = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        who = str(t.user_attrs.get(WORKER_ATTR, ""))
        wh, _, pid = who.rpartition(":")
        if wh != host or not pid.isdigit() or _alive(int(pid)):
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
