"""The objective Optuna minimises, and the worker process that runs it.

A worker rebuilds everything it needs from paths (profile, hardware profile, batch size), so worker
processes on one machine, or on many sharing a database storage, need nothing but the same inputs.
Infeasible mappings are constraint violations (bytes beyond capacity), never exceptions.
"""

from __future__ import annotations

from dataclasses import dataclass

import optuna

from autotune.hwload import load_hardware
from autotune.model.baselines import all_baselines
from autotune.model.context import ModelContext
from autotune.model.evaluate import predict, score
from autotune.search.space import SearchSpace
from autotune.search.storage import WORKER_ATTR, open_storage, registered_worker, worker_id
from autotune.search.tablepolish import TABLES_ATTR, apply_overrides
from autotune.workload import load_profile

MEMORY_CONSTRAINT = "memory_excess_bytes"


@dataclass(frozen=True)
class Problem:
    """Everything a worker needs to rebuild the objective (picklable: plain values only)."""

    profile: str
    hardware: str
    batch_size: int
    heavy: int
    two_objectives: bool

    def build(self) -> tuple[ModelContext, SearchSpace]:
        ctx = ModelContext(load_profile(self.profile), load_hardware(self.hardware), self.batch_size)
        return ctx, SearchSpace(ctx, all_baselines(ctx), heavy=self.heavy)


def peak_core_memory(ctx: ModelContext, mapping: object) -> float:
    """Largest on-chip footprint of any core (bytes): the second objective."""
    p = predict(ctx.profile, ctx.hw, mapping, ctx.batch_size, ctx=ctx)  # type: ignore[arg-type]
    return max(c.memory_bytes for c in p.per_core)


def make_objective(problem: Problem, ctx: ModelContext, space: SearchSpace):
    def objective(trial: optuna.Trial) -> float | tuple[float, float]:
        trial.set_user_attr(WORKER_ATTR, worker_id())
        mapping = apply_overrides(space.suggest(trial), trial.user_attrs.get(TABLES_ATTR))
        s = score(ctx, mapping)
        trial.set_constraint(MEMORY_CONSTRAINT, s.memory_excess_bytes if not s.feasible else 0.0)
        if not s.feasible and s.reason:
            trial.set_user_attr("infeasible", s.reason)
        if problem.two_objectives:
            return s.latency_s, peak_core_memory(ctx, mapping)
        return s.latency_s

    return objective


def run_worker(
    problem: Problem,
    storage_url: str | None,
    run_dir: str,
    study_name: str,
    n_trials: int | None,
    timeout_s: float | None,
    seed: int | None,
    total_trials: int | None = None,
) -> None:
    """Body of one worker process: open the shared study and add `n_trials` trials (or until the timeout).

    `total_trials` is the whole invocation's budget: it decides, as in the parent, whether to enumerate.
    """
    from pathlib import Path

    from autotune.search.driver import make_sampler, quiet_optuna

    quiet_optuna()
    ctx, space = problem.build()
    storage = open_storage(storage_url, Path(run_dir))
    study = optuna.load_study(study_name=study_name, storage=storage, sampler=make_sampler(space, seed, total_trials))
    from autotune.search.driver import _registry

    with registered_worker(_registry(storage_url, Path(run_dir))):
        try:
            study.optimize(make_objective(problem, ctx, space), timeout=timeout_s, n_trials=n_trials)
        except KeyboardInterrupt:  # Ctrl-C reaches every worker: the parent reports it once
            return
