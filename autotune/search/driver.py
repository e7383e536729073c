"""`autotune search` end to end: open or resume the study, seed it with the baselines, run the workers,
then store the best mapping and the evidence under `runs/<run>/`."""

from __future__ import annotations

import multiprocessing
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
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
    describe,
    open_storage,
    recover_stale_trials,
    registered_worker,
)
from autotune.search.tablepolish import TABLES_ATTR, apply_overrides, polish_tables

DEFAULT_BASELINE = "default-gather"


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
            "n_trials": self.n_trials,
            "storage": self.storage,
            "sampler": self.sampler,
            "pareto": self.pareto,
        }


def quiet_optuna() -> None:
    """Optuna's INFO log and experimental-feature warnings would drown the progress bar."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def make_sampler(space: SearchSpace, seed: int | None, n_trials: int | None) -> optuna.samplers.BaseSampler:
    """Exhaustive when the whole space fits in the trial budget, else TPE (grouped: the space is conditional)."""
    if n_trials is not None and space.size() <= n_trials:
        return optuna.samplers.BruteForceSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True, n_startup_trials=16)


def run_search(
    req: SearchRequest, progress: Callable[[int, int | None, float | None, float], None] | None = None
) -> SearchOutcome:
    """Run (or continue) a search and write the run directory.

    `progress(done, total, best_latency_s, default_gather_latency_s)` is called as trials complete.
    """
    if req.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {req.batch_size}")
    if req.workers < 1:
        raise UserError(f"--workers must be >= 1, got {req.workers}")
    if req.n_trials is None and req.timeout_s is None:
        raise UserError("give --n-trials or --timeout (or both), or the search never ends")
    bad = [o for o in req.objectives if o not in ("latency", "memory")]
    if bad or not req.objectives or req.objectives[0] != "latency":
        raise UserError(f"--objectives {','.join(req.objectives)}: use 'latency' or 'latency,memory'")
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
    run_dir = runstore.run_dir(req.run, req.root)
    if req.resume and req.storage is None and not (run_dir / JOURNAL_NAME).exists():
        raise UserError(f"--resume: {run_dir} has no study to resume; drop --resume to start one")
    _check_same_inputs(run_dir, problem, ctx)
    run_dir.mkdir(parents=True, exist_ok=True)
    storage = open_storage(req.storage, run_dir)
    directions = ["minimize"] * len(req.objectives)
    study_name = run_dir.name
    try:
        study = optuna.create_study(
            storage=storage,
            study_name=study_name,
            directions=directions,
            load_if_exists=True,
            sampler=make_sampler(space, req.seed, req.n_trials),
        )
    except ValueError as exc:
        raise UserError(f"run {study_name}: {exc}; use another --run or the study's objectives") from None
    if len(study.directions) != len(directions):
        raise UserError(
            f"run {study_name} was started with {len(study.directions)} objective(s); "
            f"resume it with the same --objectives or use another --run"
        )
    registry = _registry(req.storage, run_dir)
    if isinstance(storage, optuna.storages.JournalStorage):  # databases have heartbeats for this
        recover_stale_trials(study, registry)
    before = len(study.get_trials(deepcopy=False))
    if before == 0:
        for name in sorted(space.baselines):
            study.enqueue_trial(space.params_of(name), user_attrs={"baseline": name}, skip_if_exists=True)
        for params in space.seeds():
            study.enqueue_trial(params, user_attrs={"seed": "grain"}, skip_if_exists=True)
    sampler_name = type(study.sampler).__name__
    default_s = score(ctx, space.baselines[DEFAULT_BASELINE]).latency_s

    if req.workers == 1:

        def report(st: optuna.Study, _t: optuna.trial.FrozenTrial) -> None:
            if progress:
                progress(len(st.get_trials(deepcopy=False)) - before, req.n_trials, _best_value(st), default_s)

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        callbacks: list[Any] = [report]
        with registered_worker(registry):
            study.optimize(
                make_objective(problem, ctx, space), n_trials=req.n_trials, timeout=req.timeout_s, callbacks=callbacks
            )
    else:
        _run_pool(req, problem, run_dir, study_name, study, before, progress, default_s)

    if req.polish and not problem.two_objectives:

        def polished() -> None:  # each point the polish tells the study is a trial: the progress shows it
            if progress:
                progress(len(study.get_trials(deepcopy=False)) - before, req.n_trials, _best_value(study), default_s)

        _polish(study, problem, ctx, space, registry, polished)
    return _finish(req, problem, ctx, space, study, run_dir, sampler_name)


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
) -> None:
    """Coordinate descent from each of the best few distinct feasible trials (one start alone often ends in the
    local optimum the sampler happened to find first), then table-by-table descent (`tablepolish.py`) from the
    best point reached. Every point better than all trials so far is told to the study as a trial as soon as it
    is reached (after the coordinate descent, after each sweep of the table descent; per-table overrides in the
    trial's `TABLES_ATTR` user attribute), so the study's history shows when the search got there; `on_tell`
    runs after each."""
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

    deadline = time.monotonic() + POLISH_BUDGET_S
    best_params, best_latency, origin = None, feasible[0].values[0], None
    for start in starts:
        left = deadline - time.monotonic()
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

    start_mapping = apply_overrides(space.suggest(optuna.trial.FixedTrial(params)), before)
    polish_tables(ctx, start_mapping, TABLE_POLISH_BUDGET_S, on_sweep=on_sweep)


def _run_pool(
    req: SearchRequest,
    problem: Problem,
    run_dir: Path,
    study_name: str,
    study: optuna.Study,
    before: int,
    progress: Callable | None,
    default_s: float,
) -> None:
    mp = multiprocessing.get_context("spawn")
    procs = []
    for i in range(req.workers):
        seed = None if req.seed is None else req.seed + 1000 * (i + 1)
        p = mp.Process(
            target=run_worker,
            args=(
                problem,
                req.storage,
                str(run_dir),
                study_name,
                _share(req.n_trials, req.workers, i),
                req.timeout_s,
                seed,
                req.n_trials,
            ),
            daemon=False,
        )
        p.start()
        procs.append(p)
    try:
        while any(p.is_alive() for p in procs):
            time.sleep(0.5)
            if progress:
                progress(len(study.get_trials(deepcopy=False)) - before, req.n_trials, _best_value(study), default_s)
        failed = [p.exitcode for p in procs if p.exitcode]
        if failed:
            raise UserError(f"{len(failed)} search worker(s) failed (exit codes {failed}); see the messages above")
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()


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


def _check_same_inputs(run_dir: Path, problem: Problem, ctx: ModelContext) -> None:
    """A run continues only with the inputs it was started with: its trials were scored against them."""
    meta = run_dir / "run.json"
    if not meta.exists():
        return
    doc = runstore.read_json(meta)
    inputs = doc.get("inputs", {})
    profile = Path(problem.profile)
    profile_file = profile / "profile.json" if profile.is_dir() else profile
    was_hw = inputs.get("hardware", {}).get("name")
    if was_hw and was_hw != ctx.hw.name:
        raise UserError(f"run {run_dir.name} was searched for {was_hw}, not {ctx.hw.name}; use another --run")
    if doc.get("batch_size") not in (None, ctx.batch_size):
        raise UserError(
            f"run {run_dir.name} was searched at batch size {doc['batch_size']}, not {ctx.batch_size}; "
            "use another --run"
        )
    was = inputs.get("profile", {}).get("sha256")
    if was and was != runstore.sha256_file(profile_file):
        raise UserError(
            f"run {run_dir.name} was searched for another profile ({inputs['profile'].get('path')}); "
            "use another --run for this one"
        )


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
) -> SearchOutcome:
    from autotune.search.report import write_report

    feasible = _feasible(study)
    if not feasible:
        trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not trials:
            raise UserError(f"run {run_dir.name}: no trial completed; give more --n-trials or a longer --timeout")
        least = min(trials, key=lambda t: sum(max(c, 0.0) for c in t.constraints.values()))
        excess = sum(max(c, 0.0) for c in least.constraints.values())
        why = least.user_attrs.get("infeasible", "local memory overflows")
        raise UserError(
            f"nothing fits in memory on {ctx.hw.name}: the closest mapping is {fmt_bytes(excess)} over "
            f"({why}); lower --batch-size, shard the largest tables over more cores, or use a chip with more memory"
        )
    best_trial = min(feasible, key=lambda t: t.values[0])
    mapping = apply_overrides(
        space.suggest(optuna.trial.FixedTrial(best_trial.params)), best_trial.user_attrs.get(TABLES_ATTR)
    )
    best = predict(ctx.profile, ctx.hw, mapping, ctx.batch_size, ctx=ctx)
    base_preds = {n: predict(ctx.profile, ctx.hw, m, ctx.batch_size, ctx=ctx) for n, m in space.baselines.items()}
    baselines = {n: p.latency_s for n, p in base_preds.items() if p.feasible}
    lb = lower_bound(ctx).latency_s
    profile_path = Path(problem.profile)
    profile_file = profile_path / "profile.json" if profile_path.is_dir() else profile_path
    hw_path = Path(problem.hardware)
    out_mapping = _stamp(best.mapping, ctx, run_dir.name, best.latency_s, profile_hash(ctx.profile))

    pareto: list[dict[str, Any]] = []
    if problem.two_objectives:
        for t in sorted(study.best_trials, key=lambda t: t.values[0]):
            pareto.append(
                {"trial": t.number, "latency_s": t.values[0], "memory_bytes": t.values[1], "params": t.params}
            )
    n_trials = len(study.get_trials(deepcopy=False))
    outcome = SearchOutcome(
        run_dir=run_dir,
        best=best,
        baselines=baselines,
        lower_bound_s=lb,
        n_trials=n_trials,
        storage=describe(req.storage, run_dir),
        sampler=sampler_name,
        pareto=pareto,
    )
    atomic.write_json(run_dir / "mapping.json", out_mapping.to_dict())
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
    atomic.write_json(run_dir / "baselines.json", base_doc)
    if pareto:
        atomic.write_json(run_dir / "pareto.json", {"objectives": list(req.objectives), "trials": pareto})
    ok = {t.number for t in feasible}
    history = sorted(
        (t.number, t.values[0], t.number in ok) for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    )
    write_report(run_dir, outcome, base_preds, history, ctx)
    run_doc = {
        "run": run_dir.name,
        "status": "complete",
        "command": " ".join(req.argv) if req.argv else None,
        "inputs": {
            "profile": {"path": str(profile_file), "sha256": runstore.sha256_file(profile_file)},
            "hardware": {"name": ctx.hw.name, "path": str(hw_path), "sha256": runstore.sha256_file(hw_path)},
        },
        "batch_size": ctx.batch_size,
        "objectives": list(req.objectives),
        "seed": req.seed,
        "n_trials": n_trials,
        "workers": req.workers,
        "storage": outcome.storage,
        "study_name": study.study_name,
        "sampler": sampler_name,
        "best_trial": best_trial.number,
        "best_params": best_trial.params,
        "best_latency_s": best.latency_s,
        "lower_bound_s": lb,
        "versions": runstore.versions(),
        "hardware_figures": hardware_to_dict(ctx.hw),
        "python": sys.version.split()[0],
    }
    atomic.write_json(run_dir / "run.json", run_doc)
    return outcome


def _stamp(m: Mapping, ctx: ModelContext, run: str, latency: float, content_hash: str) -> Mapping:
    from dataclasses import replace

    return replace(
        m,
        name=run,
        hardware=ctx.hw.name,
        batch_size=ctx.batch_size,
        profile={"name": ctx.profile.name, "hash": content_hash},
        predicted_latency_s=latency,
    )
