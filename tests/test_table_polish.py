"""Table-by-table descent (`autotune/search/tablepolish.py`): its candidates, its local optimum, and the search
storing and reproducing what it finds."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import optuna
import pytest
from model_helpers import round_chip, workload, zipf_table

from autotune.hwload import load_hardware
from autotune.model.baselines import all_baselines
from autotune.model.bounds import knob_grid
from autotune.model.context import ModelContext
from autotune.model.evaluate import score
from autotune.model.mapping import Mapping, TableMapping, load_mapping
from autotune.model.strategies import table_costs
from autotune.search.driver import SearchRequest, run_search
from autotune.search.tablepolish import TABLES_ATTR, apply_overrides, candidates, polish_tables
from autotune.workload import load_profile


def small_ctx() -> ModelContext:
    prof = workload(
        zipf_table("hot", rows=6000, alpha=0.8, dim=64, pooling=8.0),
        zipf_table("flat", rows=3000, alpha=0.3, dim=32, pooling=2.0),
        zipf_table("big", rows=200_000, alpha=1.1, dim=32, pooling=4.0),
    )
    hw = round_chip(cores=4, l2_bytes=1 << 18, per_task_s=2e-7, launch_s=1e-6, merge_sync_s=1e-7)
    return ModelContext(prof, hw, 128)


def figures(ctx: ModelContext, t: int, knobs: tuple) -> tuple[float, ...]:
    """What the candidates are compared on, from the public per-table costs (task by task, in plain Python)."""
    (c,) = table_costs(ctx, [(t, knobs)])
    kept = [float(a) + float(b) for a, b in zip(c.kept_staging, c.kept_resident, strict=True)]
    return (
        sum(float(x) for x in c.task_time_s),
        c.max_time_s,
        max(kept),
        c.gm_bytes + c.l2_bytes,
        c.merge_bytes,
    )


def covers(a: tuple, b: tuple) -> bool:
    """Figures a are no worse than b on every count (up to float rounding)."""
    return all(x <= y * (1 + 1e-9) + 1e-18 for x, y in zip(a, b, strict=True))


def test_candidates_are_the_undominated_runnable_grid_points() -> None:
    ctx = small_ctx()
    for t in range(len(ctx.tables)):
        runnable = [k for k in knob_grid(ctx, t) if table_costs(ctx, [(t, k)])[0].reason is None]
        got = candidates(ctx, t)
        assert got and set(got) <= set(runnable)
        fig = {k: figures(ctx, t, k) for k in runnable}

        for k in runnable:  # every point left out is matched or beaten by a candidate
            if k not in got:
                assert any(covers(fig[c], fig[k]) for c in got), k
        for a in got:  # no candidate is beaten outright by another
            assert not any(b != a and covers(fig[b], fig[a]) and fig[b] != fig[a] for b in got)


def test_polish_reaches_a_local_optimum_over_single_table_moves() -> None:
    ctx = small_ctx()
    for name, start in sorted(all_baselines(ctx).items()):
        s0 = score(ctx, start)
        heard: list[tuple[dict, float]] = []
        overrides, latency = polish_tables(
            ctx, start, budget_s=60.0, on_sweep=lambda o, lat, h=heard: h.append((o, lat))
        )
        polished = apply_overrides(start, overrides)
        s = score(ctx, polished)
        assert s.feasible and s.latency_s == latency
        # every point reported on the way is what its overrides give, none worse than the one before
        for o, lat in heard:
            assert score(ctx, apply_overrides(start, o)).latency_s == lat
        assert [lat for _, lat in heard] == sorted((lat for _, lat in heard), reverse=True)
        assert not heard or heard[-1] == (overrides, latency)
        if s0.feasible:
            assert latency <= s0.latency_s
        # brute force: no single table's candidate lowers the latency any further
        for i, tm in enumerate(polished.tables):
            for knobs in candidates(ctx, ctx.index[tm.name]):
                moved = list(polished.tables)
                moved[i] = TableMapping(tm.name, *knobs)
                m = score(ctx, Mapping(tables=tuple(moved)))
                assert not (m.feasible and m.latency_s < latency * (1 - 1e-12)), (name, tm.name, knobs)


def test_overrides_replace_only_the_named_tables() -> None:
    m = Mapping(tables=(TableMapping("a", replicas=2), TableMapping("b", shards=4, sharding="balanced")))
    got = apply_overrides(m, {"b": [1, 2, "contiguous", "GM-UB", 0, True, 8192]})
    assert got.tables[0] == m.tables[0]
    assert got.tables[1] == TableMapping("b", 1, 2, "contiguous", "GM-UB", 0, True, 8192)
    assert apply_overrides(m, None) is m and apply_overrides(m, {}) is m


def test_search_stores_and_reproduces_a_table_polished_best(tmp_path: Path) -> None:
    # Tables whose best hot-row counts differ: the space's one memory budget cannot give each its own.
    specs = [(200_000, 1.2, 8), (150_000, 1.1, 6), (80_000, 1.3, 4), (3000, 0.8, 2), (60, 0.5, 1), (500_000, 1.05, 3)]
    tables = [zipf_table(f"t{i}", rows=r, alpha=a, dim=128, pooling=p) for i, (r, a, p) in enumerate(specs)]
    folder = tmp_path / "prof"
    folder.mkdir()
    (folder / "profile.json").write_text(json.dumps(workload(*tables).to_dict()))
    out = run_search(
        SearchRequest(
            profile=folder, hardware="ascend910b", batch_size=512, run="tp", n_trials=30, root=tmp_path / "runs"
        )
    )
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    study = optuna.load_study(
        study_name="tp", storage=JournalStorage(JournalFileBackend(str(out.run_dir / "study.journal")))
    )
    polished = [t for t in study.get_trials(deepcopy=False) if TABLES_ATTR in t.user_attrs]
    assert polished, "the table polish found nothing to improve: pick a workload where it does"
    best = min((t for t in study.get_trials(deepcopy=False) if t.values), key=lambda t: t.values[0])
    assert best.number == polished[-1].number
    assert out.best.latency_s == pytest.approx(best.values[0], rel=1e-12)
    # the stored mapping (placement included) reproduces the latency; so does the mapping without placement
    ctx = ModelContext(load_profile(folder), load_hardware("ascend910b"), 512)
    stored = load_mapping(out.run_dir / "mapping.json")
    assert score(ctx, stored).latency_s == out.best.latency_s
    bare = Mapping(tables=tuple(replace(t, placement=None) for t in stored.tables))
    assert np.isclose(score(ctx, bare).latency_s, out.best.latency_s, rtol=1e-12)
