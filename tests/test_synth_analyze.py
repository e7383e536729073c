"""End to end: `autotune synth` logs through `autotune analyze` give back the generator's law.

Expected figures come from the law, summed here in plain Python; tolerances: 5 binomial standard errors
for shares, and 0.1 for the fitted Zipf exponent (the analyzer fits log count on log rank over the head of
a finite sample, where Poisson noise and ties bend the curve a little).
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

from typer.testing import CliRunner

from autotune.cli import app
from autotune.workload import load_profile

runner = CliRunner()
QUERIES = 100_000


def run_ok(*args: str) -> dict:
    res = runner.invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.stderr
    return json.loads(res.stdout)


def synth_and_analyze(tmp: Path, name: str, *extra: str) -> tuple[dict, Path]:
    logs = tmp / name
    spec = tmp / "spec.toml"
    spec.write_text(
        '[[tables]]\nname = "hot"\nrows = 2000\nalpha = 1.2\n'
        '[[tables]]\nname = "flat"\nrows = 500\nalpha = 0.0\nmissing = 0.2\n'
    )
    made = run_ok("synth", str(logs), "--spec", str(spec), "--queries", str(QUERIES), "--seed", "5",
                  "--format", "parquet", *extra)  # fmt: skip
    prof = tmp / f"{name}-profile"
    info = run_ok("analyze", made["log"], "--model", made["model"], "--row-map", made["row_map"], "--out", str(prof))
    return info, prof


def law_share(alpha: float, rows: int, top: int) -> float:
    total = sum(k**-alpha for k in range(1, rows + 1))
    return sum(k**-alpha for k in range(1, top + 1)) / total


def test_coverage_and_exponent_follow_the_law(tmp_path: Path) -> None:
    info, _ = synth_and_analyze(tmp_path, "permuted")
    assert info["queries"] == QUERIES
    tables = {t["name"]: t for t in info["tables"]}
    hot, flat = tables["hot"], tables["flat"]
    assert hot["accesses"] == QUERIES and hot["missing"] == 0
    assert abs(flat["missing"] / QUERIES - 0.2) < 5 * math.sqrt(0.2 * 0.8 / QUERIES)
    assert flat["accesses"] == QUERIES - flat["missing"]
    n = hot["accesses"]
    for pct in ("1", "10", "50"):
        top = math.ceil(Fraction(pct) * hot["distinct"] / 100)  # the analyzer's hottest ceil(p% x distinct) ids
        want = law_share(1.2, 2000, top)
        assert abs(hot["coverage"][pct] - want) < 5 * math.sqrt(want * (1 - want) / n), pct
    assert abs(hot["zipf_alpha"] - 1.2) < 0.1
    # Uniform: every row about equally hot, the 10% hottest ids serve a bit more than 10% (sampling noise).
    assert flat["distinct"] == 500
    assert flat["zipf_alpha"] < 0.1
    assert 0.10 <= flat["coverage"]["10"] < 0.13


def test_contiguous_vs_permuted_same_counts_different_bucket_mass(tmp_path: Path) -> None:
    spread_info, spread_dir = synth_and_analyze(tmp_path, "permuted")
    hot_info, hot_dir = synth_and_analyze(tmp_path, "contiguous", "--contiguous-hot")
    for a, b in zip(spread_info["tables"], hot_info["tables"], strict=True):
        for key in ("accesses", "distinct", "missing", "top_share", "coverage", "zipf_alpha"):
            assert a[key] == b[key], (a["name"], key)
    spread = load_profile(spread_dir).table("hot")
    hot = load_profile(hot_dir).table("hot")
    assert spread.reuse_rows == hot.reuse_rows
    # 2000 rows in 1024 buckets: contiguous hot rows put the law's two hottest ranks (rows 0 and 1) in
    # bucket 0; permuted, bucket 0 holds about its fair share.
    want = law_share(1.2, 2000, 2)
    assert abs(hot.bucket_mass[0] - want) < 5 * math.sqrt(want * (1 - want) / QUERIES)
    assert spread.bucket_mass[0] < want / 4
    # Row-wise sharding in 4 shards: contiguous loads the first shard with the law's top 500 ranks.
    first = law_share(1.2, 2000, 500)
    assert abs(hot.range_mass(4)[0] - first) < 5 * math.sqrt(first * (1 - first) / QUERIES)
    assert max(spread.range_mass(4)) < 0.4
