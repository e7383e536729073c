"""`autotune search` end to end: open or resume the study, seed it with the baselines, run the workers,
then store the best mapping and the evidence under `runs/<run>/`."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from autotune import atomic
from autotune.errors import UserError
from autotune.hwload import hardware_to_dict, resolve_hardware
from autotune.model.bounds import lower_bound
from autotune.model.context import ModelContext
from autotune.model.evaluate import Prediction, predict, score
from autotune.model.mapping import Mapping, profile_hash
from autotune.model.strategies import fmt_bytes
from autotune.search import runstore
from autotune.search.objective import Problem, make_objective, run_worker
from autotune.search.polish import polish
from autotune.search.space import SearchSpace
from autotune.search.storage import (
    JOURNAL_NAME,
    REGISTRY_DIR,
    check_storage,
    describe,
    open_storage,
    recover_stale_trials,
    registered_worker,
    same_storage,
)
from autotune.search.tablepolish import TABLES_ATTR, apply_overrides, polish_tables

DEFAULT_BASELINE = "default-gather"
#: Seeds NumPy (and so Optuna's samplers) accept.
SEED_MAX = 2**32 - 1


@dataclass(frozen=True)
class SearchRequest:
    profile: Path
    hardware: str
    batch_size: int
    run: str
    n_trials: int | None = 200
    timeout_s: float | None = None
    workers: int = 1
    storage: str | None = None
    resume: bool = False
    objectives: tuple[str, ...] = ("latency",)
    seed: int | None = 0
    heavy: int = 16
    polish: bool = True  # coordinate descent from the best trial after the sampler's budget
    root: Path = runstore.DEFAULT_ROOT
    argv: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class SearchOutcome:
    run_dir: Path
    best: Prediction
    baselines: dict[str, float]  # name -> latency (feasible baselines only)
    lower_bound_s: float
    n_trials: int
    storage: str
    sampler: str
    pareto: list[dict[str, Any]]
    best_from: str = ""  # "trial N" or "baseline NAME": where the best mapping came from
    n_waiting: int = 0  # enqueued trials (baselines, seeds) not run yet

    def to_json(self) -> dict[str, Any]:
        best = self.best
        return {
            "run": str(self.run_dir),
            "best": {
                "latency_s": best.latency_s,
                "memory_bytes": max(c.memory_bytes for c in best.per_core),
                "feasible": best.feasible,
            },
            "lower_bound_s": self.lower_bound_s,
            "gap_to_lower_bound": best.latency_s / self.lower_bound_s - 1.0 if self.lower_bound_s > 0 else None,
            "baselines": [
                {"name": n, "latency_s": v, "speedup": v / best.latency_s} for n, v in sorted(self.baselines.items())
            ],
            "best_from": self.best_from,
            "n_trials": self.n_trials,
            "n_waiting": self.n_waiting,
            "storage": self.storage,
            "sampler": self.sampler,
            "pareto": self.pareto,
        }


def quiet_optuna() -> None:
    """Optuna's INFO log and experimental-feature warnings would drown the progress bar."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # A trial that raises is logged here with its traceback and then re-raised by `optimize`: the caller reports
    # it once (Ctrl-C as one line, see `SearchInterrupted`), so the log would only repeat it.
    logging.getLogger("optuna.study._optimize").setLevel(logging.ERROR)


class SearchInterrupted(Exception):
    """Ctrl-C stopped the search. `completed`: trials this invocation completed; `stored`: the run directory was
    written from the trials completed so far (run.json, mapping.json, report), so no work is lost."""

    def __init__(self, run_dir: Path, completed: int, stored: bool, recorded: bool = False) -> None:
        super().__init__(f"interrupted after {completed} trials")
        self.run_dir = run_dir
        self.completed = completed
        self.stored = stored
        self.recorded = recorded  # run.json or the study records the inputs: `--resume` alone continues it


def make_sampler(space: SearchSpace, seed: int | None, n_trials: int | None) -> optuna.samplers.BaseSampler:
    """Exhaustive when the whole space fits in the trial budget, else TPE (grouped: the space is conditional)."""
    if n_trials is not None and space.size() <= n_trials:
        return optuna.samplers.BruteForceSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True, n_startup_trials=16)


def run_search(
    req: SearchRequest, progress: Callable[[int, int | None, float | None, float], None] | None = None
) -> SearchOutcome:
    """Run (or continue) a search and write the run directory.

    `progress(done, total, best_latency_s, default_gather_latency_s)` is called as trials complete (`done`
    counts the trials this invocation completed). `--timeout` bounds everything from here to the end of the
    polish. Ctrl-C raises `SearchInterrupted` after storing the run from the trials completed so far.
    """
    t0 = time.monotonic()
    _check_request(req)
    run_dir = runstore.run_dir(req.run, req.root)
    _check_run_folder(run_dir)
    if req.resume and req.storage is None:
        req = replace(req, storage=_recorded_storage(run_dir))
        if req.storage is None and not (run_dir / JOURNAL_NAME).exists():
            raise UserError(
                f"--resume: {run_dir} has no study journal and no run.json naming its storage; if its study is in a "
                "database or another journal, pass that --storage, else drop --resume to start the run"
            )
    quiet_optuna()
    problem = Problem(
        profile=str(Path(req.profile).resolve()),
        hardware=str(resolve_hardware(req.hardware)),
        batch_size=req.batch_size,
        heavy=req.heavy,
        two_objectives=len(req.objectives) == 2,
    )
    ctx, space = problem.build()
    _check_capacity(ctx)
    _check_same_storage(run_dir, req.storage)
    ran = runstore.recorded(run_dir)
    _check_same_inputs(run_dir, req, problem, ctx, ran)
    study = _open_study(req, run_dir, make_sampler(space, req.seed, req.n_trials))
    attr = study.user_attrs.get(runstore.STUDY_ATTR)
    if ran is None and isinstance(attr, dict):  # interrupted before run.json: the study recorded the inputs
        _check_same_inputs(run_dir, req, problem, ctx, runstore.parse_record(attr, source="the study"))
    elif attr is None and not study.get_trials(deepcopy=False):
        study.set_user_attr(runstore.STUDY_ATTR, _inputs_record(req, problem, ctx))
    study_name = study.study_name
    registry = _registry(req.storage, run_dir)
    if isinstance(study._storage, optuna.storages.JournalStorage):  # databases have heartbeats for this
        recover_stale_trials(study, registry)
    if not study.get_trials(deepcopy=False):
        for name in sorted(space.baselines):
            study.enqueue_trial(space.params_of(name), user_attrs={"baseline": name}, skip_if_exists=True)
        for params in space.seeds():
            study.enqueue_trial(params, user_attrs={"seed": "grain"}, skip_if_exists=True)
    before = _n_completed(study)
    sampler_name = type(study.sampler).__name__
    default_s = score(ctx, space.baselines[DEFAULT_BASELINE]).latency_s
    deadline = None if req.timeout_s is None else t0 + req.timeout_s
    workers = plan_workers(req.workers, req.n_trials)

    def report(*_: Any) -> None:
        if progress:
            progress(_n_completed(study) - before, req.n_trials, _best_value(study), default_s)

    try:
        left = _left(deadline)
        if left is not None and left <= 0:
            pass  # building the model took the whole --timeout: the baselines alone are compared
        elif workers == 1:
            with registered_worker(registry):
                study.optimize(
                    make_objective(problem, ctx, space), n_trials=req.n_trials, timeout=left, callbacks=[report]
                )
        else:
            _run_pool(req, workers, left, problem, run_dir, study_name, study, report)
        if req.polish:
            _polish(study, problem, ctx, space, registry, report, deadline)
    except KeyboardInterrupt:
        stored = False
        if _n_completed(study) > before:
            try:
                _finish(req, problem, ctx, space, study, run_dir, sampler_name, workers, status="interrupted")
                stored = True
            except InterruptedAfterStoring:
                stored = True
            except (UserError, KeyboardInterrupt):  # nothing feasible yet, or Ctrl-C again: the run is as it was
                pass
        raise _interrupted(run_dir, study, before, stored) from None
    try:
        return _finish(req, problem, ctx, space, study, run_dir, sampler_name, workers)
    except InterruptedAfterStoring:  # the run was stored whole, then Ctrl-C
        raise _interrupted(run_dir, study, before, stored=True) from None
    except KeyboardInterrupt:  # while writing the run: `_finish` left the run directory as it was
        raise _interrupted(run_dir, study, before, stored=False) from None


def _interrupted(run_dir: Path, study: optuna.Study, before: int, stored: bool) -> SearchInterrupted:
    """What Ctrl-C left: the trials this invocation completed, whether the run was stored, and whether run.json or
    the study records the inputs (so that `--resume` alone continues it)."""
    recorded = stored or (run_dir / "run.json").is_file() or runstore.STUDY_ATTR in study.user_attrs
    return SearchInterrupted(run_dir, _n_completed(study) - before, stored, recorded)


def _check_request(req: SearchRequest) -> None:
    """Bad values of the request, each in one line, before anything is created."""
    if req.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {req.batch_size}")
    if req.workers < 1:
        raise UserError(f"--workers must be >= 1, got {req.workers}")
    if req.heavy < 0:
        raise UserError(f"--heavy must be >= 0 (the number of tables with their own knobs), got {req.heavy}")
    if req.seed is not None and not 0 <= req.seed <= SEED_MAX:
        raise UserError(f"--seed must be between 0 and 2**32 - 1 = {SEED_MAX}, got {req.seed}")
    if req.n_trials is None and req.timeout_s is None:
        raise UserError("give --n-trials or --timeout (or both), or the search never ends")
    bad = [o for o in req.objectives if o not in ("latency", "memory")]
    twice = sorted({o for o in req.objectives if req.objectives.count(o) > 1})
    if bad or twice or not req.objectives or req.objectives[0] != "latency":
        why = f"{', '.join(repr(o) for o in twice)} given twice; " if twice else ""
        raise UserError(f"--objectives {','.join(req.objectives)}: {why}use 'latency' or 'latency,memory'")
    check_storage(req.storage)


def _check_run_folder(run_dir: Path) -> None:
    """Refuse a run folder that cannot be one (a file, or under a file) before any work."""
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--run {run_dir.name}: {run_dir} is a file, not a run folder; choose another --run")
    if not run_dir.exists():
        atomic.check_parent(run_dir, "--runs-dir")


def _recorded_storage(run_dir: Path) -> str | None:
    """The storage a run's run.json records when it is not the run's own journal (`--resume` reads it from there)."""
    was = (runstore.recorded(run_dir) or runstore.Recorded()).storage
    if was is None or same_storage(was, None, run_dir):
        return None
    return was


def study_record(run_dir: Path, storage: str | None) -> runstore.Recorded | None:
    """What the study of a run without run.json recorded about its inputs when it was created (`STUDY_ATTR`), or
    None when there is no such study (or it predates the attribute)."""
    if storage is None and not (run_dir / JOURNAL_NAME).is_file():
        return None
    try:
        study = optuna.load_study(study_name=run_dir.name, storage=open_storage(storage, run_dir))
    except KeyError:  # no study of that name in the storage
        return None
    attr = study.user_attrs.get(runstore.STUDY_ATTR)
    return runstore.parse_record(attr, source="the study") if isinstance(attr, dict) else None


def plan_workers(workers: int, n_trials: int | None) -> int:
    """Worker processes worth starting: no more than the trials to run (a worker without a trial only costs)."""
    return workers if n_trials is None else max(1, min(workers, n_trials))


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else deadline - time.monotonic()


def _n_completed(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def _open_study(req: SearchRequest, run_dir: Path, sampler: optuna.samplers.BaseSampler) -> optuna.Study:
    """Open (or create) the run's study. A run directory this call created is removed again when the storage or
    the study cannot be opened, so a failed start leaves nothing behind."""
    created = not run_dir.exists()
    n = len(req.objectives)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        study = optuna.create_study(
            storage=open_storage(req.storage, run_dir),
            study_name=run_dir.name,
            directions=["minimize"] * n,
            load_if_exists=True,
            sampler=sampler,
        )
        if len(study.directions) != n:
            raise UserError(
                f"run {run_dir.name} was started with {len(study.directions)} objective(s); "
                f"resume it with the same --objectives or use another --run"
            )
    except BaseException:
        if created:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return study


#: Distinct best trials the coordinate descent starts from, and the seconds all of them may take together; then
#: the seconds the table-by-table descent may take from the best point reached.
POLISH_STARTS = 3
POLISH_BUDGET_S = 30.0
TABLE_POLISH_BUDGET_S = 30.0


def _polish(
    study: optuna.Study,
    problem: Problem,
    ctx: ModelContext,
    space: SearchSpace,
    registry: Path,
    on_tell: Callable[[], None] = lambda: None,
    deadline: float | None = None,
) -> None:
    """Coordinate descent from each of the best few distinct feasible trials (one start alone often ends in the
    local optimum the sampler happened to find first), then table-by-table descent (`tablepolish.py`) from the
    best point reached. Every point better than all trials so far is told to the study as a trial as soon as it
    is reached (after the coordinate descent, after each sweep of the table descent; per-table overrides in the
    trial's `TABLES_ATTR` user attribute), so the study's history shows when the search got there; `on_tell`
    runs after each. Both phases end by `deadline` (time.monotonic(); the end of --timeout) at the latest.
    With two objectives the descent is on latency: it extends the low-latency end of the Pareto set."""
    feasible = sorted(_feasible(study), key=lambda t: t.values[0])
    if not feasible:
        return
    starts: list[optuna.trial.FrozenTrial] = []
    for t in feasible:
        if all(t.params != s.params for s in starts):
            starts.append(t)
        if len(starts) == POLISH_STARTS:
            break
    objective = make_objective(problem, ctx, space)

    def tell(params: dict[str, Any], attrs: dict[str, Any]) -> None:
        study.enqueue_trial(params, user_attrs=attrs)
        with registered_worker(registry):
            study.optimize(objective, n_trials=1)
        on_tell()

    end = time.monotonic() + POLISH_BUDGET_S
    if deadline is not None:
        end = min(end, deadline)
    best_params, best_latency, origin = None, feasible[0].values[0], None
    for start in starts:
        left = end - time.monotonic()
        if left <= 0:
            break
        if start.user_attrs.get(TABLES_ATTR):
            continue  # a polished trial (a resumed study): its overrides are not parameters to descend over
        params, latency = polish(space, ctx, dict(start.params), budget_s=left)
        if latency < best_latency * (1 - 1e-12):
            best_params, best_latency, origin = params, latency, start.number
    top = feasible[0]
    if best_params is not None:
        tell(best_params, {"polished_from": origin})
        params, before = best_params, {}
    else:
        params, before, origin = dict(top.params), dict(top.user_attrs.get(TABLES_ATTR) or {}), top.number
    told = [best_latency]

    def on_sweep(overrides: dict[str, list], latency: float) -> None:
        if latency < told[0] * (1 - 1e-12):
            told[0] = latency
            tell(params, {"polished_from": origin, TABLES_ATTR: {**before, **overrides}})

    budget = TABLE_POLISH_BUDGET_S if deadline is None else min(TABLE_POLISH_BUDGET_S, deadline - time.monotonic())
    if budget <= 0:
        return
    start_mapping = apply_overrides(space.suggest(optuna.trial.FixedTrial(params)), before)
    polish_tables(ctx, start_mapping, budget, on_sweep=on_sweep)


def _run_pool(
    req: SearchRequest,
    workers: int,
    timeout_s: float | None,
    problem: Problem,
    run_dir: Path,
    study_name: str,
    study: optuna.Study,
    report: Callable[[], None],
) -> None:
    mp = multiprocessing.get_context("spawn")
    procs = []
    try:
        for i in range(workers):
            seed = None if req.seed is None else (req.seed + 1000 * (i + 1)) % (SEED_MAX + 1)
            p = mp.Process(
                target=run_worker,
                args=(
                    problem,
                    req.storage,
                    str(run_dir),
                    study_name,
                    _share(req.n_trials, workers, i),
                    timeout_s,
                    seed,
                    req.n_trials,
                ),
                daemon=False,
            )
            p.start()
            procs.append(p)
        while any(p.is_alive() for p in procs):
            time.sleep(0.5)
            report()
        failed = [p.exitcode for p in procs if p.exitcode]
        if failed:
            raise UserError(f"{len(failed)} search worker(s) failed (exit codes {failed}); see the messages above")
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join()


def _share(n_trials: int | None, workers: int, i: int) -> int | None:
    """Worker i's part of the invocation's trials: the parts differ by at most one and sum to n_trials."""
    if n_trials is None:
        return None
    return n_trials // workers + (1 if i < n_trials % workers else 0)


def _registry(storage: str | None, run_dir: Path) -> Path:
    """Where workers register: beside the journal file (the run's, or the one --storage names)."""
    if storage is not None and Path(storage).suffix in (".journal", ".log"):
        return Path(storage).parent / REGISTRY_DIR
    return run_dir / REGISTRY_DIR


def _best_value(study: optuna.Study) -> float | None:
    vals = [t.values[0] for t in _feasible(study)]
    return min(vals) if vals else None


def _feasible(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if all(c <= 0 for c in t.constraints.values()):
            out.append(t)
    return out


def _check_same_storage(run_dir: Path, storage: str | None) -> None:
    """A run continues only in the storage it was started in (another one would hold another study, and its best
    would replace the run's)."""
    rec, journal = runstore.recorded(run_dir), run_dir / JOURNAL_NAME
    # an interrupted run may have no run.json yet, but its trials may be in the run's own journal
    was_storage = rec.storage if rec is not None else (str(journal) if journal.is_file() else None)
    if was_storage is not None and not same_storage(was_storage, storage, run_dir):
        fix = "drop --storage" if same_storage(was_storage, None, run_dir) else f"pass --storage {was_storage}"
        raise UserError(
            f"run {run_dir.name} keeps its study in {was_storage}, not {describe(storage, run_dir)}; {fix} to "
            "continue it, or use another --run for a new study"
        )


def _profile_file(problem: Problem) -> Path:
    profile = Path(problem.profile)
    return profile / "profile.json" if profile.is_dir() else profile


def _check_same_inputs(
    run_dir: Path, req: SearchRequest, problem: Problem, ctx: ModelContext, rec: runstore.Recorded | None
) -> None:
    """A run continues only with the inputs it was started with: its trials were scored against them (and the
    sampler's space depends on --heavy). `rec` is run.json's record, or the study's while there is no run.json."""
    if rec is None:
        return
    where = f"run {run_dir.name}"
    other = "use another --run"
    if rec.hw_name is not None and rec.hw_name != ctx.hw.name:
        raise UserError(f"{where} was searched for {rec.hw_name}, not {ctx.hw.name}; {other}")
    if rec.hw_sha256 is not None:
        from autotune.search.loaded import check_hw_file

        check_hw_file(
            Path(problem.hardware), ctx.hw.name, rec.hw_sha256, run_dir.name, otherwise=other, source=rec.source
        )
    if rec.batch_size is not None and rec.batch_size != req.batch_size:
        raise UserError(
            f"{where} was searched at batch size {rec.batch_size}, not {req.batch_size}; pass --batch-size "
            f"{rec.batch_size} to continue it, or {other}"
        )
    if rec.heavy is not None and rec.heavy != req.heavy:
        raise UserError(
            f"{where} was searched with --heavy {rec.heavy}, not {req.heavy} (its trials' parameters depend on it); "
            f"pass --heavy {rec.heavy} to continue it, or {other}"
        )
    if rec.objectives is not None and tuple(rec.objectives) != tuple(req.objectives):
        raise UserError(
            f"{where} was searched with --objectives {','.join(rec.objectives)}, not {','.join(req.objectives)}; "
            f"resume it with the same --objectives or {other}"
        )
    if rec.profile_sha256 is not None and rec.profile_sha256 != runstore.sha256_file(_profile_file(problem)):
        raise UserError(f"{where} was searched for another profile ({rec.profile_path}); {other} for this one")


def _check_capacity(ctx: ModelContext) -> None:
    """Nothing can fit when the tables alone exceed global memory: say by how much and what to change."""
    hw = ctx.hw
    stored = sum(t.table_bytes for t in ctx.tables)
    if stored > hw.gm_capacity_bytes:
        big = sorted(ctx.tables, key=lambda t: -t.table_bytes)[:3]
        raise UserError(
            f"nothing fits: the tables need {fmt_bytes(stored)} of global memory and {hw.name} has "
            f"{fmt_bytes(hw.gm_capacity_bytes)} ({fmt_bytes(stored - hw.gm_capacity_bytes)} short); the largest are "
            + ", ".join(f"{t.name} ({fmt_bytes(t.table_bytes)})" for t in big)
            + "; use a smaller dtype or dim in the model spec, fewer rows, or a chip with more memory"
        )


def _finish(
    req: SearchRequest,
    problem: Problem,
    ctx: ModelContext,
    space: SearchSpace,
    study: optuna.Study,
    run_dir: Path,
    sampler_name: str,
    workers: int,
    status: str = "complete",
) -> SearchOutcome:
    """Store the run: the best of the completed trials and the feasible baselines (the baselines are enqueued as
    trials, but a short budget may end before they run), the comparison, the report, and run.json last."""
    feasible = _feasible(study)
    base_preds = {n: predict(ctx.profile, ctx.hw, m, ctx.batch_size, ctx=ctx) for n, m in space.baselines.items()}
    baselines = {n: p.latency_s for n, p in base_preds.items() if p.feasible}
    if not feasible and not baselines:
        trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not trials:
            raise UserError(
                f"run {run_dir.name}: no trial completed and no baseline fits in memory on {ctx.hw.name}; "
                "give more --n-trials or a longer --timeout"
            )
        least = min(trials, key=lambda t: sum(max(c, 0.0) for c in t.constraints.values()))
        excess = sum(max(c, 0.0) for c in least.constraints.values())
        why = least.user_attrs.get("infeasible", "local memory overflows")
        raise UserError(
            f"nothing fits in memory on {ctx.hw.name}: the closest mapping is {fmt_bytes(excess)} over "
            f"({why}); lower --batch-size, shard the largest tables over more cores, or use a chip with more memory"
        )
    best_trial = min(feasible, key=lambda t: t.values[0]) if feasible else None
    best: Prediction | None = None
    if best_trial is not None:
        mapping = apply_overrides(
            space.suggest(optuna.trial.FixedTrial(best_trial.params)), best_trial.user_attrs.get(TABLES_ATTR)
        )
        best = predict(ctx.profile, ctx.hw, mapping, ctx.batch_size, ctx=ctx)
        best_from = f"trial {best_trial.number}"
    top_base = min(baselines, key=lambda n: baselines[n]) if baselines else None
    if top_base is not None and (best is None or baselines[top_base] < best.latency_s):
        best, best_trial, best_from = base_preds[top_base], None, f"baseline {top_base}"
    assert best is not None
    lb = lower_bound(ctx).latency_s
    out_mapping = _stamp(best.mapping, ctx, run_dir.name, best.latency_s, profile_hash(ctx.profile))

    front = study.best_trials if problem.two_objectives else []  # read once: a shared study may still grow
    pareto = pareto_points(front)
    n_trials = _n_completed(study)
    outcome = SearchOutcome(
        run_dir=run_dir,
        best=best,
        baselines=baselines,
        lower_bound_s=lb,
        n_trials=n_trials,
        storage=describe(req.storage, run_dir),
        sampler=sampler_name,
        pareto=pareto,
        best_from=best_from,
        n_waiting=len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,))),
    )
    from autotune.search.report import write_report

    stage = _staging(run_dir)  # every file is written there, then all are moved in (run.json last)
    try:
        atomic.write_json(stage / "mapping.json", out_mapping.to_dict())
        base_doc = {
            "batch_size": ctx.batch_size,
            "hardware": ctx.hw.name,
            "lower_bound_s": lb,
            "best_latency_s": best.latency_s,
            "baselines": [
                {
                    "name": n,
                    "latency_s": p.latency_s,
                    "feasible": p.feasible,
                    "reason": p.reason,
                    "speedup": p.latency_s / best.latency_s if p.feasible else None,
                }
                for n, p in sorted(base_preds.items())
            ],
        }
        atomic.write_json(stage / "baselines.json", base_doc)
        if pareto:
            trials = {t.number: t for t in front}
            points = [p | {"mapping": _point_mapping(trials[p["trial"]], ctx, space, run_dir.name)} for p in pareto]
            atomic.write_json(stage / "pareto.json", {"objectives": list(req.objectives), "trials": points})
        ok = {t.number for t in feasible}
        history = sorted(
            (t.number, t.values[0], t.number in ok)
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        )
        write_report(stage, outcome, base_preds, history, ctx, name=run_dir.name)
        run_doc = {
            "run": run_dir.name,
            "status": status,
            "command": " ".join(req.argv) if req.argv else None,
            **_inputs_record(req, problem, ctx),
            "seed": req.seed,
            "n_trials": n_trials,
            "n_waiting": outcome.n_waiting,
            "workers": workers,
            "storage": outcome.storage,
            "study_name": study.study_name,
            "sampler": sampler_name,
            "best_from": best_from,
            "best_trial": best_trial.number if best_trial is not None else None,
            "best_params": best_trial.params if best_trial is not None else None,
            "best_latency_s": best.latency_s,
            "lower_bound_s": lb,
            "pareto": {"points": len(pareto), "file": "pareto.json"} if pareto else None,
            "versions": runstore.versions(),
            "hardware_figures": hardware_to_dict(ctx.hw),
            "python": sys.version.split()[0],
        }
        atomic.write_json(stage / "run.json", run_doc)
        _publish(stage, run_dir)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return outcome


def _staging(run_dir: Path) -> Path:
    """A fresh folder inside the run directory where `_finish` writes the run's files before `_publish`."""
    import tempfile

    return Path(tempfile.mkdtemp(prefix=".finish.", suffix=".tmp", dir=run_dir))


def _publish(stage: Path, run_dir: Path) -> None:
    """Move the staged files into the run directory, run.json last, with Ctrl-C held back until all are moved: a
    run's run.json and mapping.json (and the rest) are always from the same `_finish`."""
    names = [*sorted(p.name for p in stage.iterdir() if p.name != "run.json"), "run.json"]
    with _sigint_deferred():
        for name in names:
            os.replace(stage / name, run_dir / name)


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold SIGINT (Ctrl-C) while the block runs and deliver it after (main thread only; elsewhere as is)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[Any] = []
    old = signal.signal(signal.SIGINT, lambda *a: got.append(a))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
    if got:
        raise InterruptedAfterStoring


class InterruptedAfterStoring(KeyboardInterrupt):
    """Ctrl-C held back while the run's files were moved in: it comes once the run is stored."""


def _inputs_record(req: SearchRequest, problem: Problem, ctx: ModelContext) -> dict[str, Any]:
    return runstore.inputs_record(
        _profile_file(problem), ctx.hw.name, Path(problem.hardware), ctx.batch_size, req.heavy, req.objectives
    )


def pareto_points(trials: list[optuna.trial.FrozenTrial]) -> list[dict[str, Any]]:
    """The Pareto set as pareto.json lists it, by latency: one entry per distinct (latency, memory) point, from the
    lowest-numbered trial that reached it; the other trials at the same point are listed in its `same_as`."""
    points: dict[tuple[float, ...], dict[str, Any]] = {}
    for t in sorted(trials, key=lambda t: t.number):
        key = tuple(t.values)
        if key in points:
            points[key]["same_as"].append(t.number)
        else:
            points[key] = {
                "trial": t.number,
                "latency_s": t.values[0],
                "memory_bytes": t.values[1],
                "params": t.params,
                "same_as": [],
            }
    return [points[k] for k in sorted(points)]


def _point_mapping(trial: optuna.trial.FrozenTrial, ctx: ModelContext, space: SearchSpace, run: str) -> dict:
    """A Pareto point's mapping as pareto.json stores it (with its placement), for `export RUN --trial N`."""
    mapping = apply_overrides(space.suggest(optuna.trial.FixedTrial(trial.params)), trial.user_attrs.get(TABLES_ATTR))
    pred = predict(ctx.profile, ctx.hw, mapping, ctx.batch_size, ctx=ctx)
    name = f"{run}-trial{trial.number}"
    return _stamp(pred.mapping, ctx, name, pred.latency_s, profile_hash(ctx.profile)).to_dict()


def _stamp(m: Mapping, ctx: ModelContext, run: str, latency: float, content_hash: str) -> Mapping:
    return replace(
        m,
        name=run,
        hardware=ctx.hw.name,
        batch_size=ctx.batch_size,
        profile={"name": ctx.profile.name, "hash": content_hash},
        predicted_latency_s=latency,
    )
