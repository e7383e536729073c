"""The search space: which knobs Optuna turns, and the exact decisions made inside the objective.

Optuna chooses the *shape* of the mapping, where the latency model is not separable:
- for each heavy table (the `heavy` tables with the most default-gather work), its replicas x shards and
  its sharding scheme;
- for the other tables, either the layout of one baseline (`rest` = a baseline name) or three global knobs:
  tables up to `small_bytes` are replicated on `small_replicas` cores, the rest take `large_rk` and
  `large_scheme`;
- `budget`: the share of each core's local memory one table may keep on-chip (hot rows, an L1-resident
  table), so that several tables fit on a core together;
- `pick`: whether a table's single-core configuration minimises its total work or its slowest task.
Given a table's shape, its single-core configuration (strategy, hot rows, de-duplication, chunk size) only
changes that table's own tasks, so it is chosen exactly inside the objective, from every candidate, and
memoised. Task-to-core assignment is the model's (longest task first onto the least-loaded core that has
room). Sizes and counts are categorical powers of two: TPE handles them about 5x faster than integers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import optuna

from autotune.model.bounds import counts as bound_counts
from autotune.model.bounds import knob_grid
from autotune.model.context import ModelContext
from autotune.model.mapping import Mapping, TableMapping
from autotune.model.strategies import table_costs

REST_KNOBS = "knobs"
AUTO = "auto"
PICKS = ("work", "span")
#: Task grain: a table is split until one task's work is at most grain x (total work / cores).
GRAINS = (4.0, 2.0, 1.0, 0.5, 0.25, 0.125)
#: How a table is split to reach the grain: batch replicas (no merge) or row shards (merge, less memory).
SPLITS = ("replicas", "shards", "balanced")
BUDGETS = (1.0, 0.5, 0.25, 0.125, 0.0625)
SCHEMES = ("contiguous", "balanced")


def core_counts(n_cores: int) -> tuple[int, ...]:
    """Powers of two up to the core count, and the core count itself (48 -> 1, 2, ..., 32, 48)."""
    return bound_counts(n_cores)


def rk_label(r: int, k: int) -> str:
    return f"{r}x{k}"


def parse_rk(label: str) -> tuple[int, int]:
    r, k = label.split("x")
    return int(r), int(k)


@dataclass(frozen=True)
class Shape:
    """Where a table's work goes: r replicas of k row shards each."""

    replicas: int
    shards: int
    sharding: str


class SearchSpace:
    """Turns an Optuna trial into a mapping for one (workload, chip, batch size)."""

    def __init__(self, ctx: ModelContext, baselines: dict[str, Mapping], heavy: int = 16) -> None:
        self.ctx = ctx
        self.baselines = baselines
        n = ctx.n_cores
        self.counts = core_counts(n)
        self.rk_options = tuple(rk_label(r, k) for r in self.counts for k in self.counts if r * k <= n)
        names = [t.name for t in ctx.tables]
        work = self._gather_work()
        order = sorted(range(len(names)), key=lambda i: -work[i])
        self.heavy: tuple[str, ...] = tuple(names[i] for i in order[: min(heavy, len(names))])
        sizes = sorted({t.table_bytes for t in ctx.tables})
        lo, hi = max(sizes[0], 1), sizes[-1]
        self.thresholds = tuple(2**e for e in range(int(math.log2(lo)), math.ceil(math.log2(hi)) + 1))
        self.light = len(names) > len(self.heavy)  # with no light tables, `rest` and the grain rule are moot
        self.rest_options = (REST_KNOBS, *sorted(baselines)) if self.light else (REST_KNOBS,)
        self.heavy_options = (AUTO, *self.rk_options) if self.light else self.rk_options
        self.work = dict(zip(names, work, strict=True))
        self.mean_core_work = sum(work) / n
        self._best: dict[tuple, TableMapping] = {}
        self._grids: dict[int, list[tuple]] = {}

    # ---- the parameters

    def suggest(self, trial: optuna.trial.BaseTrial) -> Mapping:
        """The mapping this trial's parameters describe (the single-core configurations chosen exactly)."""
        rest = trial.suggest_categorical("rest", self.rest_options)
        pick = trial.suggest_categorical("pick", PICKS)
        budget = trial.suggest_categorical("budget", BUDGETS)
        grain, split = 1.0, SPLITS[0]
        if self.light:
            grain = trial.suggest_categorical("grain", GRAINS)
            split = trial.suggest_categorical("split", SPLITS)
        shapes: dict[str, Shape] = {}
        for name in self.heavy:
            choice = trial.suggest_categorical(f"{name}.rk", self.heavy_options)
            if choice == AUTO:
                shapes[name] = self.auto_shape(name, grain, split)
                continue
            r, k = parse_rk(choice)
            scheme = trial.suggest_categorical(f"{name}.scheme", SCHEMES) if k > 1 else "contiguous"
            shapes[name] = Shape(r, k, scheme)
        if rest == REST_KNOBS and self.light:
            small = trial.suggest_categorical("small_bytes", self.thresholds)
            small_r = trial.suggest_categorical("small_replicas", self.counts)
            for t in self.ctx.tables:
                if t.name not in shapes:
                    shapes[t.name] = (
                        Shape(small_r, 1, "contiguous")
                        if t.table_bytes <= small
                        else self.auto_shape(t.name, grain, split)
                    )
        elif rest != REST_KNOBS:
            for tm in self.baselines[rest].tables:
                shapes.setdefault(tm.name, Shape(tm.replicas, tm.shards, tm.sharding))
        return Mapping(tables=tuple(self.configure(t.name, shapes[t.name], pick, budget) for t in self.ctx.tables))

    def auto_shape(self, name: str, grain: float, split: str) -> Shape:
        """Split a table into the fewest tasks (a core count) whose work is at most grain x the mean core's."""
        target = grain * self.mean_core_work
        c = next((c for c in self.counts if self.work[name] / c <= target), self.counts[-1])
        if split == "replicas" or c == 1:
            return Shape(c, 1, "contiguous")
        return Shape(1, c, "contiguous" if split == "shards" else "balanced")

    def seeds(self) -> list[dict[str, object]]:
        """Good starting points besides the baselines, under a few on-chip memory budgets (which decide how many
        hot rows each table may pin):
        - every table split to a grain, by replicas;
        - the heavy tables split to half a core's mean work, every light table replicated on the same few cores
          (1, 2, 4): few copies leave each core room to pin the hot rows of many tables, which is what wins on
          memory-bound workloads with many tables (meta84 on the 910B), a corner TPE rarely reaches alone."""
        if not self.light:
            return []
        out = []
        for budget in (1.0, 0.5, 0.25):
            for grain in (2.0, 1.0, 0.5, 0.25):
                out.append(self._seed(budget, grain, self.thresholds[0], self.counts[-1]))
        for budget in (0.5, 0.25, 0.125):
            for replicas in self.counts[:3]:
                out.append(self._seed(budget, 0.5, self.thresholds[-1], replicas))
        return out

    def _seed(self, budget: float, grain: float, small_bytes: int, small_replicas: int) -> dict[str, object]:
        p: dict[str, object] = {
            "rest": REST_KNOBS,
            "pick": "work",
            "budget": budget,
            "grain": grain,
            "split": "replicas",
            "small_bytes": small_bytes,
            "small_replicas": small_replicas,
        }
        p.update({f"{name}.rk": AUTO for name in self.heavy})
        return p

    def params_of(self, baseline: str) -> dict[str, object]:
        """Parameters that reproduce a baseline's shapes (for `study.enqueue_trial`)."""
        m = self.baselines[baseline]
        rest = baseline if baseline in self.rest_options else REST_KNOBS
        params: dict[str, object] = {"rest": rest, "pick": "work", "budget": BUDGETS[0]}
        for name in self.heavy:
            tm = m.table(name)
            r, k = _clip_shape(tm.replicas, tm.shards, self.counts, self.ctx.n_cores)
            params[f"{name}.rk"] = rk_label(r, k)
            if k > 1:
                params[f"{name}.scheme"] = tm.sharding
        return params

    def size(self) -> float:
        """Number of distinct parameter combinations (inf when beyond counting): decides exhaustive search."""
        per_heavy = sum(len(SCHEMES) if parse_rk(o)[1] > 1 else 1 for o in self.rk_options)
        if not self.light:
            return float(per_heavy ** len(self.heavy) * len(PICKS) * len(BUDGETS))
        heavy = (per_heavy + 1) ** len(self.heavy)
        rest = len(self.thresholds) * len(self.counts) + len(self.baselines)
        total = heavy * rest * len(GRAINS) * len(SPLITS) * len(PICKS) * len(BUDGETS)
        return float(total) if total < 1e12 else math.inf

    # ---- the exact inner decision

    def configure(self, name: str, shape: Shape, pick: str, budget: float) -> TableMapping:
        """The fastest single-core configuration of one table for a shape, within a memory budget."""
        rows = self.ctx.tables[self.ctx.index[name]].rows
        if shape.shards > rows:  # a shard needs at least one row
            k = max(c for c in self.counts if c <= rows)
            shape = Shape(shape.replicas, k, shape.sharding if k > 1 else "contiguous")
        key = (name, shape, pick, budget)
        got = self._best.get(key)
        if got is None:
            got = self._choose(name, shape, pick, budget)
            self._best[key] = got
        return got

    def _choose(self, name: str, shape: Shape, pick: str, budget: float) -> TableMapping:
        ctx = self.ctx
        t = ctx.index[name]
        cands = list(self._candidates(t, shape))
        costs = table_costs(ctx, [(t, knobs) for knobs in cands])
        roles = ctx.roles
        cap_s = float(roles.staging.capacity_bytes)
        cap_r = float(roles.resident.capacity_bytes) if roles.resident is not None and not roles.shared else math.inf
        best, best_key = None, (math.inf, math.inf)
        fallback, fallback_key = None, (math.inf, math.inf)
        for knobs, c in zip(cands, costs, strict=True):
            work, span = float(c.task_time_s.sum()), c.max_time_s
            k = (work, span) if pick == "work" else (span, work)
            if k < fallback_key and c.reason is None:
                fallback, fallback_key = knobs, k
            kept_s = float(c.kept_staging.max(initial=0.0))
            kept_r = float(c.kept_resident.max(initial=0.0))
            if c.reason is None and kept_s <= budget * cap_s and kept_r <= budget * cap_r and k < best_key:
                best, best_key = knobs, k
        chosen = best or fallback or cands[0]
        r, k, sharding, strategy, hot, dedup, chunk = chosen
        return TableMapping(name, r, k, sharding, strategy, hot, dedup, chunk)

    def _candidates(self, t: int, shape: Shape) -> Iterable[tuple]:
        """The model's knob grid for this table (the grid its lower bound is computed over), for this shape."""
        grid = self._grids.get(t)
        if grid is None:
            grid = self._grids[t] = knob_grid(self.ctx, t)
        want = (shape.replicas, shape.shards, shape.sharding)
        return [kn for kn in grid if kn[:3] == want] or [(*want, "GM", 0, False, None)]

    def _gather_work(self) -> list[float]:
        """Each table's work as one GM task serving the whole batch: the default compiler's view of it."""
        ctx = self.ctx
        costs = table_costs(ctx, [(t, (1, 1, "contiguous", "GM", 0, False, None)) for t in range(len(ctx.tables))])
        return [float(c.task_time_s.sum()) for c in costs]


def _clip_shape(r: int, k: int, counts: tuple[int, ...], n: int) -> tuple[int, int]:
    """The nearest representable shape at or below (r, k) with r * k <= n."""
    k = max(c for c in counts if c <= max(k, 1))
    r = max(c for c in counts if c <= max(r, 1) and c * k <= n)
    return r, k
