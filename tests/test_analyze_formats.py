"""Every log format, malformed rows, row maps, sampling and merging, on small logs written inline."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from analytics import analyze, merge_profiles, read_counts
from analytics.sampling import splitmix64
from autotune.cli import app
from autotune.errors import UserError
from autotune.workload import load_profile

runner = CliRunner()


def _criteo_line(label: int, cats: list[str]) -> str:
    return "\t".join([str(label), *[str(i) for i in range(13)], *cats])


def _criteo_rows() -> list[list[str]]:
    rows = []
    for q in range(30):
        cats = [f"{(q * (j + 1)) % (j + 2):x}" for j in range(26)]
        cats[0] = "" if q % 5 == 0 else f"a{q % 3}"  # C1: missing every 5th query
        rows.append(cats)
    return rows


def _json(args: list[str]) -> dict:
    result = runner.invoke(app, ["analyze", *args, "--json"])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_criteo_tsv_and_gzip_agree(tmp_path):
    rows = _criteo_rows()
    text = "".join(_criteo_line(i % 2, r) + "\n" for i, r in enumerate(rows))
    (tmp_path / "day_0").write_text(text)
    (tmp_path / "day_1.gz").write_bytes(gzip.compress(text.encode()))
    plain = _json([str(tmp_path / "day_0"), "--out", str(tmp_path / "a")])
    zipped = _json([str(tmp_path / "day_1.gz"), "--out", str(tmp_path / "b")])
    assert [t["name"] for t in plain["tables"]] == [f"C{i}" for i in range(1, 27)]
    c1 = plain["tables"][0]
    ref = Counter(r[0] for r in rows if r[0])
    assert c1["missing"] == 6 and c1["accesses"] == 24 and c1["distinct"] == len(ref)
    assert c1["pooling_factor_mean"] == pytest.approx(24 / 30)
    assert c1["top_share"] == pytest.approx(max(ref.values()) / 24)
    assert plain["tables"] == zipped["tables"]
    both = _json([str(tmp_path / "day_*"), "--out", str(tmp_path / "c")])  # a glob over both files
    assert both["queries"] == 60 and both["tables"][0]["accesses"] == 48


def test_malformed_rows_are_skipped_counted_and_located(tmp_path):
    rows = _criteo_rows()[:4]
    lines = [_criteo_line(0, r) for r in rows]
    lines.insert(1, "1\t2\t3")  # too few fields: line 2
    lines.insert(3, _criteo_line(0, rows[0]) + "\textra")  # too many: line 4
    data = ("\n".join(lines) + "\n").encode() + b"0" + b"\t\xff\xfe" * 39 + b"\n"  # bad UTF-8: line 7
    f = tmp_path / "log.tsv"
    f.write_bytes(data)
    out = _json([str(f), "--format", "criteo", "--out", str(tmp_path / "p")])
    assert out["rows_read"] == 4 and out["rows_skipped"] == 3 and out["queries"] == 4
    assert [s.split(": ")[0] for s in out["skipped_examples"]] == [f"{f}:2", f"{f}:4", f"{f}:7"]
    assert "invalid encoding" in out["skipped_examples"][2]


def test_long_format(tmp_path):
    f = tmp_path / "long.csv"
    triples = [(1, "user", "u1"), (1, "item", "i1"), (1, "item", "i2"), (2, "user", "u1"), (3, "item", "i1")]
    triples += [(3, "item", "i1"), (3, "item", "i3"), (4, "user", "")]
    f.write_text("query_id,table,id\n" + "".join(f"{q},{t},{i}\n" for q, t, i in triples))
    out = _json([str(f), "--out", str(tmp_path / "p")])
    assert out["queries"] == 4 and out["rows_read"] == len(triples)
    by = {t["name"]: t for t in out["tables"]}
    assert set(by) == {"item", "user"}
    assert by["item"]["accesses"] == 5 and by["item"]["distinct"] == 3 and by["item"]["pooling_max"] == 3
    assert by["item"]["missing"] == 2  # queries 2 and 4 have no item look-up
    assert by["user"]["accesses"] == 2 and by["user"]["missing"] == 2  # query 4's user id is empty
    assert by["item"]["top_share"] == pytest.approx(3 / 5)
    picked = _json([str(f), "--tables", "user", "--out", str(tmp_path / "q")])
    assert [t["name"] for t in picked["tables"]] == ["user"]


def test_parquet_wide_equals_csv(tmp_path):
    users = ["u1", "u2", "u1", None, "u3", "u1"]
    items = [5, 7, 5, 5, 9, None]
    pq.write_table(pa.table({"user": users, "item": items, "score": [1.0] * 6}), tmp_path / "log.parquet")
    csv = "user,item,score\n" + "".join(
        f"{u or ''},{'' if i is None else i},1.0\n" for u, i in zip(users, items, strict=True)
    )
    (tmp_path / "log.csv").write_text(csv)
    a = _json([str(tmp_path / "log.parquet"), "--tables", "user,item", "--out", str(tmp_path / "a")])
    b = _json([str(tmp_path / "log.csv"), "--tables", "user,item", "--out", str(tmp_path / "b")])
    assert a["tables"] == b["tables"]
    item = a["tables"][1]
    assert item["accesses"] == 5 and item["missing"] == 1 and item["distinct"] == 3
    # by default only the string column is a table in Parquet
    c = _json([str(tmp_path / "log.parquet"), "--out", str(tmp_path / "c")])
    assert [t["name"] for t in c["tables"]] == ["user"]


def test_model_spec_and_hash_row_map(tmp_path):
    f = tmp_path / "log.csv"
    f.write_text("user,item\n" + "".join(f"u{q % 7},i{q % 11}\n" for q in range(200)))
    spec = tmp_path / "model.toml"
    spec.write_text('[defaults]\ndim = 16\n[[tables]]\nname = "user"\nrows = 1000\ndtype = "float16"\n')
    out = _json([str(f), "--model", str(spec), "--out", str(tmp_path / "p")])
    # with a model, the tables are the model's ones present in the log
    (user,) = out["tables"]
    assert (user["name"], user["rows"], user["dim"], user["dtype"], user["row_map"]) == (
        "user",
        1000,
        16,
        "float16",
        "hash",
    )

    def fnv(s: str) -> int:
        h = 0xCBF29CE484222325
        for b in s.encode():
            h = ((h ^ b) * 0x100000001B3) % 2**64
        return h

    counts = pq.read_table(tmp_path / "p" / "counts.parquet").to_pylist()
    assert {r["id"]: r["row"] for r in counts} == {f"u{k}": fnv(f"u{k}") % 1000 for k in range(7)}
    prof = load_profile(tmp_path / "p").table("user")
    mass = {}
    for r in counts:
        b = r["row"] * 1024 // 1000
        mass[b] = mass.get(b, 0) + r["count"] / 200
    assert {i: m for i, m in enumerate(prof.bucket_mass) if m} == pytest.approx(mass)


def test_folder_input_skips_non_log_files(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "model.toml").write_text('[[tables]]\nname = "item"\nrows = 10\n')
    (logs / "part-0.csv").write_text("item\na\nb\n")
    (logs / "part-1.csv").write_text("item\na\n")
    out = _json([str(logs), "--out", str(tmp_path / "p")])
    assert out["queries"] == 3 and out["tables"][0]["distinct"] == 2
    assert out["name"] == "logs"


def test_sample_is_deterministic_and_scaled(tmp_path):
    n, frac, seed = 3000, 0.2, 11
    f = tmp_path / "log.csv"
    f.write_text("item\n" + "".join(f"r{q}\n" for q in range(n)))  # every row its own id
    kept = [q for q in range(n) if splitmix64(q, seed) < int(frac * 2**64)]
    out = _json([str(f), "--sample", str(frac), "--seed", str(seed), "--out", str(tmp_path / "p")])
    assert out["sampled"] is True and out["sample_fraction"] == frac
    assert out["rows_read"] == n
    assert out["queries"] == round(len(kept) / frac)
    t = out["tables"][0]
    assert t["distinct"] == len(kept) and t["distinct_is_lower_bound"] is True
    assert t["accesses"] == round(len(kept) / frac)
    assert t["stderr"]["top_share"] == pytest.approx(((1 / len(kept)) * (1 - 1 / len(kept)) / len(kept)) ** 0.5)
    ids = set(read_counts(tmp_path / "p")["item"][0].to_pylist())
    assert ids == {f"r{q}" for q in kept}
    again = _json([str(f), "--sample", str(frac), "--seed", str(seed), "--out", str(tmp_path / "q")])
    assert again["tables"] == out["tables"]


def test_merge_equals_analysing_both_logs(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("user,item\n" + "".join(f"u{q % 5},i{q % 3}|i{q % 4}\n" for q in range(40)))
    b.write_text("user,item\n" + "".join(f"u{q % 9},{'' if q % 6 == 0 else f'i{q % 7}'}\n" for q in range(25)))
    kw = {"multi_sep": "|", "tables": ["user", "item"]}
    pa_ = analyze([a], out=tmp_path / "pa", **kw).profile
    pb_ = analyze([b], out=tmp_path / "pb", **kw).profile
    whole = analyze([a, b], out=tmp_path / "whole", **kw).profile
    merged = merge_profiles(tmp_path / "pa", tmp_path / "pb", tmp_path / "m", name=whole.name)
    assert (merged.queries, merged.rows_read) == (pa_.queries + pb_.queries, whole.rows_read)
    for tm, tw in zip(merged.tables, whole.tables, strict=True):
        dm, dw = tm.to_dict(), tw.to_dict()
        assert dm == dw
    cm, cw = read_counts(tmp_path / "m"), read_counts(tmp_path / "whole")
    for name in ("user", "item"):
        assert dict(zip(cm[name][0].to_pylist(), cm[name][1].tolist(), strict=True)) == dict(
            zip(cw[name][0].to_pylist(), cw[name][1].tolist(), strict=True)
        )


def test_merge_keeps_the_hot_ids_asked_for_and_refuses_itself(tmp_path):
    # shards that each see fewer distinct ids than --top-k: the merge keeps --top-k hot ids, as the whole log would
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("item\n" + "".join(f"i{q % 5}\n" for q in range(30)))  # ids i0..i4
    b.write_text("item\n" + "".join(f"j{q % 5}\n" for q in range(20)))  # ids j0..j4
    analyze([a], out=tmp_path / "pa", top_k=10)
    analyze([b], out=tmp_path / "pb", top_k=10)
    merged = merge_profiles(tmp_path / "pa", tmp_path / "pb", tmp_path / "m")
    assert len(merged.tables[0].hot_ids) == 10 and merged.source["top_k"] == 10
    assert {i for i, _ in merged.tables[0].hot_ids} == {f"i{k}" for k in range(5)} | {f"j{k}" for k in range(5)}
    with pytest.raises(UserError, match="merging it with itself would double its counts"):
        merge_profiles(tmp_path / "pa", tmp_path / "pa", tmp_path / "m2")
    with pytest.raises(UserError, match="is one of the profiles being merged"):
        merge_profiles(tmp_path / "pa", tmp_path / "pb", tmp_path / "pb")


def test_the_package_exports_what_scripts_need():
    import analytics
    from autotune.workload import load_profile

    assert analytics.load_profile is load_profile and analytics.UserError is UserError
    assert set(analytics.__all__) >= {"analyze", "merge_profiles", "load_profile", "read_counts", "UserError"}


def test_headerless_csv_with_columns(tmp_path):
    f = tmp_path / "log.csv"
    f.write_text("x1,y1\nx2,y1\n")
    out = _json([str(f), "--columns", "a,b", "--tables", "b", "--out", str(tmp_path / "p")])
    assert out["queries"] == 2 and out["tables"][0]["accesses"] == 2 and out["tables"][0]["distinct"] == 1


def test_human_output_table_on_stdout_note_on_stderr(tmp_path):
    # like show, evaluate, baselines and hw: the result on stdout; where the profile went is a note on stderr
    f = tmp_path / "log.csv"
    f.write_text("user\nu1\nu2\nu1\n")
    result = runner.invoke(app, ["analyze", str(f), "--out", str(tmp_path / "p")])
    assert result.exit_code == 0
    assert "user" in result.stdout and "3 queries" in result.stdout
    assert "user" not in result.stderr and str(tmp_path / "p") in result.stderr.replace("\n", "")


def test_default_output_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    f = tmp_path / "clicks.tsv.gz"
    f.write_bytes(gzip.compress(b"user\titem\nu1\ti1\n"))
    out = _json([str(f)])
    assert Path(out["profile"]) == Path("runs/profiles/clicks")
    assert (tmp_path / "runs" / "profiles" / "clicks" / "profile.json").exists()
