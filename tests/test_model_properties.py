"""Properties the latency model must have whatever the figures: bounds, monotonicity, skew, sharding, agreement."""

from __future__ import annotations

import random
from dataclasses import replace
from itertools import pairwise

import numpy as np
import pytest
from model_helpers import round_chip, workload, zipf_table

from autotune.hwload import load_hardware
from autotune.model.baselines import all_baselines
from autotune.model.bounds import knob_grid, lower_bound
from autotune.model.context import ModelContext
from autotune.model.evaluate import evaluate_latency, predict, score
from autotune.model.mapping import Mapping, TableMapping
from autotune.model.strategies import table_costs


def mixed_workload(contiguous: bool = True, row_map: str | None = None):
    return workload(
        zipf_table("tiny", rows=12, alpha=0.5, dim=16, pooling=1.0, contiguous=contiguous, row_map=row_map),
        zipf_table("small", rows=3000, alpha=1.0, dim=32, pooling=3.0, contiguous=contiguous, row_map=row_map),
        zipf_table("mid", rows=40_000, alpha=1.1, dim=64, pooling=2.0, contiguous=contiguous, row_map=row_map),
        zipf_table("big", rows=400_000, alpha=1.2, dim=64, pooling=1.5, contiguous=contiguous, row_map=row_map),
        zipf_table("flat", rows=100_000, alpha=0.0, dim=16, pooling=4.0, contiguous=contiguous, row_map=row_map),
    )


def runnable_knobs(ctx: ModelContext, t: int) -> list:
    """Knobs of the grid under which one task of table t fits a core on its own."""
    key = ("runnable", t)
    if key not in ctx.__dict__:
        grid = knob_grid(ctx, t)
        ctx.__dict__[key] = [
            k for k, c in zip(grid, table_costs(ctx, [(t, k) for k in grid]), strict=True) if not c.reason
        ]
    return ctx.__dict__[key]


def random_grid_mapping(ctx: ModelContext, rng: random.Random) -> Mapping:
    tables = []
    for t, tp in enumerate(ctx.tables):
        r, k, sharding, strategy, hot, dedup, chunk = rng.choice(runnable_knobs(ctx, t))
        tables.append(TableMapping(tp.name, r, k, sharding, strategy, hot, dedup, chunk))
    return Mapping(tables=tuple(tables))


@pytest.mark.parametrize(
    ("hw", "row_map"),
    [
        (round_chip(cores=8, l2_bytes=1 << 18, per_task_s=1e-7, launch_s=1e-6), None),
        (load_hardware("ascend910b"), None),
        (load_hardware("ascend910b"), "identity"),
        # slices so narrow that the memory hot spot binds the GM strategy's tables (hot ids contiguous)
        (round_chip(cores=8, l2_bytes=1 << 18, per_task_s=1e-7, launch_s=1e-6, l2_slices=20_000), "identity"),
    ],
    ids=["roundchip", "ascend910b", "ascend910b-identity", "roundchip-hotspot"],
)
def test_latency_never_below_the_lower_bound(hw, row_map):
    prof = mixed_workload(row_map=row_map)
    ctx = ModelContext(prof, hw, 256)
    lb = lower_bound(ctx).latency_s
    assert lb > hw.overheads.launch_s
    rng = random.Random(1)
    seen = 0
    for _ in range(300):
        s = score(ctx, random_grid_mapping(ctx, rng))
        if s.feasible:
            seen += 1
            assert s.latency_s >= lb
    assert seen > 100
    for name, m in all_baselines(ctx).items():
        assert evaluate_latency(ctx, m) >= lb, name


def test_fast_path_agrees_with_predict_and_saved_placement_reproduces_it():
    prof = mixed_workload()
    hw = round_chip(cores=8, l2_bytes=1 << 18, per_task_s=1e-7, launch_s=1e-6)
    ctx = ModelContext(prof, hw, 256)
    rng = random.Random(2)
    for _ in range(50):
        m = random_grid_mapping(ctx, rng)
        p = predict(prof, hw, m, 256)  # a fresh context: no shared cache
        assert evaluate_latency(ctx, m) == p.latency_s
        assert score(ctx, m).feasible == p.feasible
        assert p.mapping.has_placement
        assert evaluate_latency(ctx, p.mapping) == p.latency_s
        assert predict(prof, hw, p.mapping, 256).latency_s == p.latency_s


def test_monotone_in_batch_size_and_lookups():
    hw = round_chip(cores=8, l2_bytes=1 << 18, per_task_s=1e-7)
    rng = random.Random(3)
    prof = mixed_workload()
    for _ in range(20):
        m = random_grid_mapping(ModelContext(prof, hw, 64), rng)
        fixed = predict(prof, hw, m, 64).mapping  # placement held fixed across batch sizes
        lat = [predict(prof, hw, fixed, b).latency_s for b in (64, 128, 256, 512, 1024)]
        assert all(a <= b for a, b in pairwise(lat)), lat
        more = [
            predict(workload(*(replace(t, pooling_mean=t.pooling_mean * f) for t in prof.tables)), hw, fixed, 256)
            for f in (1.0, 1.5, 2.0, 4.0)
        ]
        lat = [p.latency_s for p in more]
        assert all(a <= b for a, b in pairwise(lat)), lat
    gm = Mapping(tables=tuple(TableMapping(t.name, replicas=8) for t in prof.tables))
    lat = [predict(prof, hw, gm, b).latency_s for b in (64, 128, 256, 512)]
    assert all(a < b for a, b in pairwise(lat))


def test_table_larger_than_l1_cannot_use_l1_or_l1_ub():
    hw = round_chip(cores=2, l1_bytes=1 << 20)
    prof = workload(zipf_table("T", rows=20_000, dim=16))  # 20,000 x 64 B = 1.28 MB > 1 MiB
    for strategy in ("L1", "L1-UB"):
        p = predict(prof, hw, Mapping(tables=(TableMapping("T", strategy=strategy),)), 128)
        assert not p.feasible
        assert "L1" in p.reason and "1 MiB" in p.reason
        assert p.memory_excess_bytes == 20_000 * 64 - (1 << 20)
        # split in two shards of 640,000 B each, it fits
        p2 = predict(prof, hw, Mapping(tables=(TableMapping("T", shards=2, strategy=strategy),)), 128)
        assert p2.feasible, p2.reason


def test_split_architecture_has_no_l1_on_vector_cores():
    hw = load_hardware("ascend910b")
    prof = workload(zipf_table("C3", rows=1000, dim=16))
    p = predict(prof, hw, Mapping(tables=(TableMapping("C3", strategy="L1"),)), 128)
    assert not p.feasible
    assert p.reason == "table C3 needs 62.5 KiB of L1 (L1), a core has 0 B on ascend910b vector cores"


def test_gm_ub_ignores_skew_gm_does_not():
    hw = round_chip(cores=1, l2_bytes=1 << 18)
    times = {}
    for alpha in (0.0, 0.8, 1.2):
        prof = workload(zipf_table("T", rows=100_000, alpha=alpha, dim=16, pooling=2.0))
        ctx = ModelContext(prof, hw, 256)
        for strategy in ("GM", "GM-UB", "L1-UB"):
            (c,) = table_costs(ctx, [(0, (1, 1, "contiguous", strategy, 0, False, None))])
            times[strategy, alpha] = c.max_time_s
    assert times["GM-UB", 0.0] == times["GM-UB", 0.8] == times["GM-UB", 1.2]
    assert times["GM", 1.2] < 0.8 * times["GM", 0.0]  # the skewed table's hot rows hit L2


def imbalance(prof, hw, sharding: str, k: int = 8) -> float:
    (c,) = table_costs(ModelContext(prof, hw, 512), [(0, (1, k, sharding, "GM", 0, False, None))])
    return float(c.shard_time_s.max() / c.shard_time_s.mean())


def test_contiguous_hot_ids_unbalance_range_sharding_but_not_balanced_sharding():
    hw = round_chip(cores=8)
    hot_first = workload(zipf_table("T", rows=200_000, alpha=1.05, dim=16, pooling=2.0, contiguous=True))
    permuted = workload(zipf_table("T", rows=200_000, alpha=1.05, dim=16, pooling=2.0, contiguous=False))
    # busiest / mean shard time over 8 shards. Permuted, only the hottest row (10% of look-ups) still
    # unbalances its shard a little; hot ids together put most of the load on the first shard.
    contiguous, scattered = imbalance(hot_first, hw, "contiguous"), imbalance(permuted, hw, "contiguous")
    assert contiguous > 5.0
    assert scattered < 1.5
    assert contiguous > 4 * scattered
    assert imbalance(hot_first, hw, "balanced") < 1.05


def test_replicating_a_tiny_table_is_never_slower_than_sharding_it():
    hw = round_chip(cores=8, per_task_s=1e-7, merge_sync_s=1e-6, l2_bytes=1 << 16)
    prof = workload(zipf_table("tiny", rows=64, alpha=0.9, dim=16, pooling=2.0))
    for batch in (16, 128, 1024):
        ctx = ModelContext(prof, hw, batch)
        for strategy in ("GM", "L1", "GM-UB", "L1-UB"):
            rep = evaluate_latency(ctx, Mapping(tables=(TableMapping("tiny", replicas=8, strategy=strategy),)))
            for sharding in ("contiguous", "balanced"):
                m = Mapping(tables=(TableMapping("tiny", shards=8, sharding=sharding, strategy=strategy),))
                assert rep <= evaluate_latency(ctx, m), (batch, strategy, sharding)


def test_assignment_respects_memory_capacity():
    # Two 600 KiB L1 tables and one slow GM table on 2 cores with 1 MiB of L1 each: load alone would put both
    # L1 tables on the idle core, memory forces one of them next to the GM table.
    hw = round_chip(cores=2, l1_bytes=1 << 20)
    prof = workload(
        zipf_table("A", rows=9600, dim=16), zipf_table("B", rows=9600, dim=16), zipf_table("C", rows=50_000, dim=16)
    )
    m = Mapping(tables=(TableMapping("A", strategy="L1"), TableMapping("B", strategy="L1"), TableMapping("C")))
    p = predict(prof, hw, m, 256)
    assert p.feasible, p.reason
    assert p.mapping.table("A").placement != p.mapping.table("B").placement
    # three of them cannot fit: one core holds 2 x 614,400 B in 1,048,576 B of L1
    prof3 = workload(*(zipf_table(n, rows=9600, dim=16) for n in "ABC"))
    m3 = Mapping(tables=tuple(TableMapping(n, strategy="L1") for n in "ABC"))
    p3 = predict(prof3, hw, m3, 256)
    assert not p3.feasible
    assert p3.memory_excess_bytes == 2 * 614_400 - 1_048_576
    assert "L1" in p3.reason


def test_lpt_assignment_balances_equal_tables():
    hw = round_chip(cores=4)
    prof = workload(*(zipf_table(f"T{i}", rows=1000, alpha=0.0, dim=16) for i in range(8)))
    p = predict(prof, hw, Mapping(tables=tuple(TableMapping(f"T{i}") for i in range(8))), 128)
    assert [c.n_tasks for c in p.per_core] == [2, 2, 2, 2]
    assert np.ptp([c.time_s for c in p.per_core]) == 0.0


def test_infeasible_when_more_tasks_than_cores():
    hw = round_chip(cores=2)
    prof = workload(zipf_table("T", rows=1000))
    s = score(ModelContext(prof, hw, 64), Mapping(tables=(TableMapping("T", replicas=2, shards=2),)))
    assert not s.feasible and "needs 4 cores" in s.reason


def test_memory_priced_bound_by_hand() -> None:
    # Two tables, each either cheap and keeping 10 kB on-chip (1 µs) or dear and keeping nothing (3 µs); the
    # chip holds 10 kB. Any mapping pays 1 + 3 = 4 µs; ignoring memory would say 2 µs. The Lagrangian bound
    # 2 min(1 µs + 1e4 p, 3 µs) - 1e4 p peaks at 4 µs for p = 2e-10 s/B; the price grid steps by 15.5%, so the
    # bound lands within (1e4 x 2e-10 / 1.155 ... 4 µs].
    from autotune.model.bounds import _memory_priced_work

    points = [(np.array([1e-6, 3e-6]), np.array([1e4, 0.0]), np.array([1e-6, 3e-6]))] * 2
    got = _memory_priced_work(points, capacity=1e4)
    assert 3.7e-6 <= got <= 4e-6 * (1 + 1e-9)
    assert _memory_priced_work(points, capacity=2e4) == pytest.approx(2e-6)  # room for both: no price helps


def test_span_constrained_work_by_hand() -> None:
    # Two cores. Table A: one 10 us task, or two 6 us tasks (12 us of work); table B: one 2 us task. Alone, the
    # average work (10 + 2) / 2 = 6 us and the largest least-slowest task (6 us) say 6 us. Tied together: a busiest
    # core of M < 10 us forces A's two-task form, 14 us of work, so M >= 7 us; M >= 10 us otherwise: 7 us.
    # (The best mapping takes 8 us: 6 | 6 + 2.)
    from autotune.model.bounds import _span_constrained_work

    a = (np.array([10e-6, 12e-6]), np.zeros(2), np.array([10e-6, 6e-6]))
    b = (np.array([2e-6]), np.zeros(1), np.array([2e-6]))
    assert _span_constrained_work([a, b], capacity=1.0, cores=2) == pytest.approx(7e-6)
    # with three cores the balanced work (14 / 3) falls below A's 6 us task: the bound is 6 us
    assert _span_constrained_work([a, b], capacity=1.0, cores=3) == pytest.approx(6e-6)


def test_combined_bound_prices_the_merge_by_hand() -> None:
    # Two cores. Table A: one 10 us task, or two 6 us shards (12 us of work) whose merge takes 3 us; table B: one
    # 2 us task. Without the merge the span bound says 7 us (sharded A, balanced). With it: sharded A costs at
    # least (12 + 2) / 2 + 3 = 10 us, unsharded A a 10 us task: 10 us. The best mapping takes 10 us (A | B;
    # sharded: 6 + 2 | 6, then the merge: 11 us).
    from autotune.model.bounds import _combined, _Configs

    a = _Configs(
        *(np.array(v) for v in ([10e-6, 12e-6], [0.0, 0.0], [0.0, 0.0], [0.0, 3e-6], [0.0, 0.0], [10e-6, 6e-6]))
    )
    b = _Configs(*(np.array(v) for v in ([2e-6], [0.0], [0.0], [0.0], [0.0], [2e-6])))
    assert _combined([a, b], capacity=1.0, cores=2, gm_bw=1.0, l2_bw=1.0) == pytest.approx(10e-6)
    # only configurations without a merge: A runs whole
    assert _combined([a.without_merge(), b], 1.0, 2, 1.0, 1.0) == pytest.approx(10e-6)
    # a merge of 0.5 us: sharded A costs 7.5 us, below A's whole 10 us task
    a_cheap = _Configs(a.work, a.gm, a.l2, np.array([0.0, 0.5e-6]), a.kept, a.slowest)
    assert _combined([a_cheap, b], 1.0, 2, 1.0, 1.0) == pytest.approx(7.5e-6)


def test_combined_bound_weighs_work_against_gm_by_hand() -> None:
    # One core. Each of two tables does 4 us of work and reads 1 us worth of GM bytes, or 1 us of work and 4 us of
    # GM. latency = max(work, GM time): both alike cost max(8, 2) or max(2, 8) = 8 us, one of each max(5, 5) = 5 us.
    # Separately the least work (2 us) and the least GM time (2 us) say 2 us; weighted half and half, every table
    # costs at least 2.5 us: 5 us, the optimum.
    from autotune.model.bounds import _combined, _Configs

    t = _Configs(*(np.array(v) for v in ([4e-6, 1e-6], [1e3, 4e3], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [4e-6, 1e-6])))
    got = _combined([t, t], capacity=1.0, cores=1, gm_bw=1e9, l2_bw=1.0)
    assert got == pytest.approx(5e-6)


def all_grid_mappings(ctx: ModelContext):
    """Every mapping whose tables' knobs come from the grid and run alone on a core (plain enumeration)."""
    import itertools

    per_table = [[TableMapping(tp.name, *knobs) for knobs in runnable_knobs(ctx, t)] for t, tp in enumerate(ctx.tables)]
    for combo in itertools.product(*per_table):
        yield Mapping(tables=combo)


@pytest.mark.parametrize("merge_sync_s", [0.0, 5e-7])
def test_lower_bound_never_above_the_enumerated_optimum(merge_sync_s: float) -> None:
    # Two tables on two cores, every grid mapping scored (about 7,400 run): the bound must not pass the best of
    # them. The 1.5 MB table fits the 1 MiB L1 only as two row shards, so sharding (and its merge) competes: the
    # best mapping shards both tables without a sync cost and shards none with it.
    prof = workload(
        zipf_table("hot", rows=6000, alpha=0.8, dim=64, pooling=8.0),
        zipf_table("flat", rows=3000, alpha=0.3, dim=32, pooling=2.0),
    )
    hw = round_chip(cores=2, l2_bytes=1 << 18, per_task_s=2e-7, launch_s=1e-6, merge_sync_s=merge_sync_s)
    ctx = ModelContext(prof, hw, 128)
    lb = lower_bound(ctx)
    scored = [(s, m) for s, m in ((score(ctx, m), m) for m in all_grid_mappings(ctx)) if s.feasible]
    best, best_mapping = min(scored, key=lambda sm: sm[0].latency_s)
    assert len(scored) > 5000
    assert lb.latency_s <= best.latency_s
    assert any(t.shards > 1 for t in best_mapping.tables) == (merge_sync_s == 0.0)
    # the merge is what the span term misses here: the combined term is the larger
    assert lb.combined_s > lb.span_work_s


@pytest.mark.parametrize("seed", range(6))
def test_lower_bound_never_above_the_enumerated_optimum_on_random_workloads(seed: int) -> None:
    # Random two-table workloads on two cores of a hand-made chip or of a bundled profile cut to two cores (a CPU
    # whose cores cache GM reads; the 910A with L1 and UB): the bound against every grid mapping, scored.
    rng = random.Random(seed)
    tables = [
        zipf_table(
            f"t{i}",
            rows=rng.choice([50, 3000, 6000, 40_000, 300_000]),
            alpha=rng.choice([0.3, 0.8, 1.1, 1.3]),
            dim=rng.choice([16, 64, 128]),
            pooling=rng.choice([1.0, 3.0, 8.0]),
            contiguous=rng.random() < 0.5,
        )
        for i in range(2)
    ]
    if seed % 3 == 0:
        hw = round_chip(cores=2, l2_bytes=1 << 18, per_task_s=2e-7, launch_s=1e-6, merge_sync_s=3e-7)
    else:
        base = load_hardware("cpu-generic" if seed % 3 == 1 else "ascend910a")
        hw = replace(base, core_types=(replace(base.core_types[0], count=2), *base.core_types[1:]))
    ctx = ModelContext(workload(*tables), hw, rng.choice([64, 512]))
    scores = [s.latency_s for s in map(lambda m: score(ctx, m), all_grid_mappings(ctx)) if s.feasible]
    assert scores
    assert lower_bound(ctx).latency_s <= min(scores)
