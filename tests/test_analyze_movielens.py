"""`autotune analyze` on the real MovieLens data, against plain-Python references (csv + Counter)."""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from autotune.cli import app
from autotune.workload import load_profile

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "movielens-latest-small"
runner = CliRunner()


def _run(args: list[str]) -> dict:
    result = runner.invoke(app, ["analyze", *args, "--json"])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def _reference(counter: Counter) -> dict:
    total = sum(counter.values())
    desc = sorted(counter.values(), reverse=True)
    cov = {}
    for key, pct in (("0.1", 0.1), ("1", 1), ("10", 10), ("50", 50)):
        k = math.ceil(round(pct * len(desc) / 100, 9))
        cov[key] = sum(desc[:k]) / total
    return {"accesses": total, "distinct": len(counter), "top_share": desc[0] / total, "coverage": cov}


def test_ratings_user_and_movie_tables(tmp_path):
    with (DATA / "ratings.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    out = _run([str(DATA / "ratings.csv"), "--tables", "userId,movieId", "--out", str(tmp_path / "p")])
    assert out["queries"] == len(rows) == out["rows_read"]
    assert out["rows_skipped"] == 0
    assert out["profile"] == str(tmp_path / "p")
    by_name = {t["name"]: t for t in out["tables"]}
    assert list(by_name) == ["userId", "movieId"]
    for col in ("userId", "movieId"):
        ref = _reference(Counter(r[col] for r in rows))
        t = by_name[col]
        assert t["accesses"] == ref["accesses"]
        assert t["distinct"] == ref["distinct"]
        assert t["missing"] == 0
        assert t["pooling_factor_mean"] == pytest.approx(1.0)
        assert t["top_share"] == pytest.approx(ref["top_share"])
        for key, share in ref["coverage"].items():
            assert t["coverage"][key] == pytest.approx(share), key
        assert 0.0 < t["zipf_alpha"] < 3.0
    # the profile loads back, and counts.parquet holds exactly the reference counts
    prof = load_profile(tmp_path / "p")
    assert prof.table("movieId").distinct == by_name["movieId"]["distinct"]
    counts = pq.read_table(tmp_path / "p" / "counts.parquet").to_pylist()
    got = Counter({r["id"]: r["count"] for r in counts if r["table"] == "userId"})
    assert got == Counter(r["userId"] for r in rows)


def test_movie_genres_as_multi_valued_table(tmp_path):
    with (DATA / "movies.csv").open(newline="") as fh:
        movies = list(csv.DictReader(fh))  # titles hold quoted commas
    bags = [[g for g in m["genres"].split("|") if g] for m in movies]
    ref = Counter(g for bag in bags for g in bag)
    out = _run(
        [str(DATA / "movies.csv"), "--tables", "genres", "--multi-sep", "|", "--out", str(tmp_path / "g"), "--plots"]
    )
    (t,) = out["tables"]
    assert out["queries"] == len(movies)
    assert t["accesses"] == sum(ref.values())
    assert t["distinct"] == len(ref)
    assert t["pooling_factor_mean"] == pytest.approx(sum(ref.values()) / len(movies))
    assert t["pooling_max"] == max(len(b) for b in bags)
    assert t["missing"] == sum(1 for b in bags if not b)
    assert t["top_share"] == pytest.approx(max(ref.values()) / sum(ref.values()))
    assert t["hot_ids"][0] == [ref.most_common(1)[0][0], ref.most_common(1)[0][1]]
    for png in ("coverage.png", "frequency.png"):
        assert (tmp_path / "g" / "plots" / png).read_bytes()[:4] == b"\x89PNG"


def test_default_tables_are_the_non_numeric_columns(tmp_path):
    out = _run([str(DATA / "movies.csv"), "--out", str(tmp_path / "m")])
    assert [t["name"] for t in out["tables"]] == ["title", "genres"]
