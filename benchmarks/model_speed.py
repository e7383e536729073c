"""How many mapping evaluations per second the latency model does on one core (the search's inner loop).

Workloads: the 26 Criteo-1TB tables (DESIGN section 8, dim 128) and an 84-table mix (log-uniform sizes from 10
to 40M rows, dims 16-256, pooling 1-20), each table a Zipf law (alpha 0.8-1.3) with curves computed
analytically. Chips: ascend910b's figures with 24, 48 and 108 look-up cores. Mappings: random points of the
knob grid (every table's replicas, shards, sharding, strategy, hot rows, dedup, chunk), placement left to the
model's assignment, as the search does.

"cold" = knob combinations never seen by the context (every table costed afresh, vectorised over the
mapping); "warm" = the context's cost cache already holds them (a long search revisits knob values).
Times are CPU time of this process (time.process_time), so other processes on the machine disturb them less.

    .venv/bin/python benchmarks/model_speed.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import math
import random
import time
from dataclasses import replace

import numpy as np

from autotune.hwload import load_hardware
from autotune.model.bounds import knob_grid
from autotune.model.context import ModelContext
from autotune.model.evaluate import evaluate_latency
from autotune.model.mapping import Mapping, TableMapping
from autotune.model.strategies import table_costs
from autotune.workload import N_BUCKETS, REUSE_BINS, TableProfile, WorkloadProfile

CRITEO_ROWS = (
    39884406, 39043, 17289, 7420, 20263, 3, 7120, 1543, 63, 38532951, 2953546, 403346, 10, 2208, 11938, 155, 4,
    976, 14, 39979771, 25641295, 39664984, 585935, 12972, 108, 36,
)  # fmt: skip
TARGET = 2000.0  # evaluations per second, 84 tables on 48 cores


def zipf_profile(name: str, rows: int, alpha: float, dim: int, pooling: float, rng: random.Random) -> TableProfile:
    """A Zipf table profile from a log-spaced rank grid (exact sums on the first 1000 ranks, integrals beyond)."""
    ranks = np.unique(np.concatenate([np.arange(1, min(rows, 1000) + 1), np.geomspace(1, rows, 400).astype(np.int64)]))
    ranks = ranks[ranks <= rows]
    w = ranks.astype(float) ** -alpha
    width = np.diff(np.concatenate([[0], ranks])).astype(float)  # ranks represented by each grid point
    mass = w * width
    cum = np.cumsum(mass) / mass.sum()
    p = w / mass.sum()
    rank_curve = ((0, 0.0), *((int(h), float(c)) for h, c in zip(ranks, cum, strict=True)))
    ns = 2.0 ** np.arange(0, 27)
    uniq = [float(np.sum(width * -np.expm1(-n * p))) for n in ns]
    bucket = np.full(N_BUCKETS, (1 - p[0]) / N_BUCKETS)
    bucket[rng.randrange(N_BUCKETS)] += p[0]
    zeros = tuple([1.0] + [0.0] * (REUSE_BINS - 1))
    return TableProfile(
        name=name, rows=rows, dim=dim, dtype="float32", accesses=10**6, queries=10**6, missing=0, distinct=rows,
        pooling_mean=pooling, pooling_max=math.ceil(pooling), top_share=float(p[0]), zipf_alpha=alpha, coverage={},
        rank_curve=rank_curve, unique_curve=tuple((int(n), u) for n, u in zip(ns, uniq, strict=True)),
        reuse_rows=zeros, reuse_accesses=zeros, bucket_mass=tuple(bucket),
    )  # fmt: skip


def workload(n_tables: int, seed: int = 0) -> WorkloadProfile:
    rng = random.Random(seed)
    tables = []
    for i in range(n_tables):
        if n_tables == 26:
            rows, dim, pooling = CRITEO_ROWS[i], 128, 1.0
        else:
            rows = int(10 ** rng.uniform(1, math.log10(4e7)))
            dim, pooling = rng.choice((16, 32, 64, 128, 256)), rng.choice((1.0, 2.0, 5.0, 10.0, 20.0))
        tables.append(zipf_profile(f"T{i}", rows, rng.uniform(0.8, 1.3), dim, pooling, rng))
    return WorkloadProfile(
        name=f"bench{n_tables}", queries=10**6, rows_read=10**6, rows_skipped=0, tables=tuple(tables)
    )


def chip(cores: int):
    hw = load_hardware("ascend910b")
    core = replace(hw.lookup_cores, count=cores)
    return replace(hw, core_types=(core, *(c for c in hw.core_types if c is not hw.lookup_cores)))


def mappings(ctx: ModelContext, n: int, seed: int) -> list[Mapping]:
    rng = random.Random(seed)
    runnable = []
    for t in range(len(ctx.tables)):
        grid = knob_grid(ctx, t)
        costs = table_costs(ctx, [(t, k) for k in grid])
        runnable.append([k for k, c in zip(grid, costs, strict=True) if c.reason is None] or grid)
    ctx.cost_cache.clear()
    return [
        Mapping(tables=tuple(TableMapping(tp.name, *rng.choice(runnable[t])) for t, tp in enumerate(ctx.tables)))
        for _ in range(n)
    ]


def rate(ctx: ModelContext, maps: list[Mapping], seconds: float) -> float:
    done, start = 0, time.process_time()
    while True:
        for m in maps:
            evaluate_latency(ctx, m)
        done += len(maps)
        elapsed = time.process_time() - start
        if elapsed >= seconds:
            return done / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="measuring time per cell")
    args = ap.parse_args()
    print(f"{'tables':>6} {'cores':>5} {'cold eval/s':>12} {'warm eval/s':>12}   target (84 tables, 48 cores)")
    for n_tables in (26, 84):
        prof = workload(n_tables)
        for cores in (24, 48, 108):
            ctx = ModelContext(prof, chip(cores), 512)
            maps = mappings(ctx, 400, seed=cores)
            start = time.process_time()
            for m in maps:  # every mapping costed with an empty cache for its new knob combinations
                evaluate_latency(ctx, m)
            cold = len(maps) / (time.process_time() - start)
            warm = rate(ctx, maps, args.seconds)
            note = ""
            if n_tables == 84 and cores == 48:
                note = f"   >= {TARGET:,.0f}: {'met' if warm >= TARGET else 'NOT met'} (warm)"
            print(f"{n_tables:>6} {cores:>5} {cold:>12,.0f} {warm:>12,.0f}{note}")


if __name__ == "__main__":
    main()
