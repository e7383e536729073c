"""Multi-hot list columns in Parquet (list<int64>, list<string>) read as bags, against plain-Python counts."""

from __future__ import annotations

import json
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from analytics import read_counts
from analytics.sampling import splitmix64
from autotune.cli import app

runner = CliRunner()


def _ok(*args: str) -> dict:
    res = runner.invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.stderr
    return json.loads(res.stdout)


def _reference(cells: list) -> dict:
    """Bag figures of one column in plain Python: a cell is None, a scalar, or a list of ids."""
    bags = []
    for cell in cells:
        items = cell if isinstance(cell, list) else [cell]
        bags.append([str(x) for x in items if x is not None and x != ""])
    ids = Counter(x for b in bags for x in b)
    return {
        "accesses": sum(ids.values()),
        "distinct": len(ids),
        "queries": sum(1 for b in bags if b),
        "missing": sum(1 for b in bags if not b),
        "pooling_max": max((len(b) for b in bags), default=0),
        "counts": ids,
    }


def test_synth_tiny_parquet_bags_match_plain_python(tmp_path):
    made = _ok("synth", str(tmp_path / "logs"), "--preset", "tiny", "--queries", "3000", "--seed", "2",
               "--format", "parquet")  # fmt: skip
    log = pq.read_table(made["log"])
    assert pa.types.is_list(log.schema.field("bag").type)  # the multi-hot tables are list<int64>
    out = _ok("analyze", made["log"], "--model", made["model"], "--row-map", made["row_map"],
              "--out", str(tmp_path / "p"))  # fmt: skip
    assert out["queries"] == 3000
    counts = read_counts(tmp_path / "p")
    for t in out["tables"]:
        ref = _reference(log.column(t["name"]).to_pylist())
        for key in ("accesses", "distinct", "missing", "pooling_max"):
            assert t[key] == ref[key], (t["name"], key)
        assert t["queries"] == ref["queries"]
        assert t["pooling_factor_mean"] == pytest.approx(ref["accesses"] / 3000)
        ids, n = counts[t["name"]]
        assert dict(zip(ids.to_pylist(), n.tolist(), strict=True)) == dict(ref["counts"])
    # identity row map: a row id is the id itself, within the model's rows
    by = {t["name"]: t for t in out["tables"]}
    assert by["bag"]["pooling_max"] > 1 and by["sparse"]["missing"] > 0
    gen = {t["name"]: t for t in made["tables"]}  # what synth says it wrote
    for name, t in by.items():
        assert (t["accesses"], t["missing"]) == (gen[name]["accesses"], gen[name]["missing"])


def test_hand_made_list_of_strings_with_nulls_and_empties(tmp_path):
    tags = [["a", "b"], None, [], ["a", None, ""], ["c"], ["a", "a", "b"], [""], ["b"]]
    users = ["u1", "u2", None, "u1", "u3", "", "u2", "u1"]
    f = tmp_path / "log.parquet"
    pq.write_table(pa.table({"user": users, "tags": pa.array(tags, pa.list_(pa.string())), "w": [1.0] * len(tags)}), f)
    out = _ok("analyze", str(f), "--out", str(tmp_path / "p"))
    assert [t["name"] for t in out["tables"]] == ["user", "tags"]  # list columns are tables by default
    by = {t["name"]: t for t in out["tables"]}
    for name, cells in (("tags", tags), ("user", users)):
        ref = _reference(cells)
        t = by[name]
        got = (t["accesses"], t["distinct"], t["missing"], t["pooling_max"], t["queries"])
        assert got == (ref["accesses"], ref["distinct"], ref["missing"], ref["pooling_max"], ref["queries"]), name
    assert by["tags"]["hot_ids"][0] == ["a", 4]
    # --multi-sep does not split list elements: same figures
    again = _ok("analyze", str(f), "--multi-sep", "|", "--out", str(tmp_path / "q"))
    assert {t["name"]: t["accesses"] for t in again["tables"]} == {"user": 6, "tags": 8}


def test_list_column_sample_keeps_whole_rows(tmp_path):
    n, frac, seed = 2000, 0.25, 7
    bags = [[q % 11, (q * 3) % 17, (q * 3) % 17] if q % 5 else None for q in range(n)]
    f = tmp_path / "log.parquet"
    pq.write_table(pa.table({"items": pa.array(bags, pa.list_(pa.int64()))}), f)
    out = _ok("analyze", str(f), "--sample", str(frac), "--seed", str(seed), "--out", str(tmp_path / "p"))
    kept = [bags[q] for q in range(n) if splitmix64(q, seed) < int(frac * 2**64)]
    ref = _reference(kept)
    (t,) = out["tables"]
    assert t["distinct"] == ref["distinct"]
    assert t["accesses"] == round(ref["accesses"] / frac)
    assert t["missing"] == round(ref["missing"] / frac)
    assert t["pooling_max"] == 3
