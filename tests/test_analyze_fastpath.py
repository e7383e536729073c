"""The Polars fast paths for wide text logs against the DuckDB path, their fallbacks, and the memory gate.

Every profile the in-memory fast path writes must equal the chunked path's (forced by making the memory
gate refuse, `fast_text.MEMORY_FACTOR` huge, with chunks of a few hundred bytes: `fast_chunks.CHUNK_SHARE`
huge) and the DuckDB path's (forced by making both fast paths decline) on the same log. Logs the fast
paths cannot prove clean (short, long or blank lines, bad UTF-8, quoted CSV) must fall back to DuckDB,
which skips, counts and locates the malformed lines as before.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from analytics import analyze, fast_chunks, fast_text, pipeline
from analytics.readers import CRITEO_COLUMNS
from analytics.sources import classify
from autotune.cli import app

runner = CliRunner()


def _criteo(rows: int, seed: int = 3) -> list[list[str]]:
    """Criteo-shaped rows: label, 13 ints, 26 hex-ish ids with missing cells (C26 often empty)."""
    out = []
    for q in range(rows):
        dense = [str((q * 7 + j) % 11) if (q + j) % 6 else "" for j in range(13)]
        cats = [f"{((q * (j + 3) + seed) % (j + 4)) * 977:x}" if (q + 2 * j) % 5 else "" for j in range(26)]
        cats[25] = "" if q % 2 else cats[25]
        out.append([str(q % 2), *dense, *cats])
    return out


def _text(rows: list[list[str]], sep: str = "\t") -> str:
    return "".join(sep.join(r) + "\n" for r in rows)


def _chunked(m: pytest.MonkeyPatch, chunk: int = 300) -> None:
    """Make `analyze` use the chunked path with chunks of about `chunk` bytes (under the default 2GB limit)."""
    m.setattr(fast_text, "MEMORY_FACTOR", 1e30)
    m.setattr(fast_chunks, "CHUNK_SHARE", 2 * 10**9 // chunk)


def _both(tmp: Path, monkeypatch: pytest.MonkeyPatch, paths: list[Path], **kw: object) -> tuple[dict, dict]:
    """(fast path profile, DuckDB path profile) of the same logs, as dicts, parsers checked; the chunked
    path's profile must equal the in-memory one."""
    fast = analyze(paths, out=tmp / "fast", **kw)
    with monkeypatch.context() as m:
        _chunked(m)
        chunked = analyze(paths, out=tmp / "chunked", **kw)
    with monkeypatch.context() as m:
        m.setattr(pipeline, "_count_fast", lambda *_a: None)
        slow = analyze(paths, out=tmp / "slow", **kw)
    parsers = [r.profile.source["parser"] for r in (fast, chunked, slow)]
    assert parsers == ["polars", "polars-chunks", "duckdb"]
    a, c, b = fast.profile.to_dict(), chunked.profile.to_dict(), slow.profile.to_dict()
    for d in (a, b, c):
        d["source"].pop("parser")
    assert a == c
    assert (a["rows_read"], a["rows_skipped"]) == (b["rows_read"], b["rows_skipped"])
    return a, b


def test_criteo_fast_path_equals_duckdb_and_plain_counts(tmp_path, monkeypatch):
    rows = _criteo(400)
    f = tmp_path / "day_0"
    f.write_text(_text(rows))
    a, b = _both(tmp_path, monkeypatch, [f], fmt="criteo")
    assert a == b
    for j, t in enumerate(a["tables"]):
        ref = Counter(r[14 + j] for r in rows if r[14 + j])
        assert (t["name"], t["accesses"], t["distinct"]) == (f"C{j + 1}", sum(ref.values()), len(ref))
        assert t["missing"] == len(rows) - sum(ref.values())


def test_gzip_multi_file_sample_and_model_equal_duckdb(tmp_path, monkeypatch):
    rows = _criteo(600)
    (tmp_path / "a.tsv").write_text(_text(rows[:250]))
    (tmp_path / "b.tsv.gz").write_bytes(gzip.compress(_text(rows[250:]).encode()))
    spec = tmp_path / "model.toml"
    spec.write_text("".join(f'[[tables]]\nname = "C{j}"\nrows = {1000 * j}\n' for j in range(1, 27)))
    kw = {"fmt": "criteo", "model": spec, "sample": 0.3, "seed": 4}
    a, b = _both(tmp_path, monkeypatch, [tmp_path / "a.tsv", tmp_path / "b.tsv.gz"], **kw)
    assert a == b
    assert a["rows_read"] == 600 and a["sample_fraction"] == 0.3
    assert [t["row_map"] for t in a["tables"]] == ["hash"] * 26 and a["tables"][0]["rows"] == 1000


def test_header_csv_and_bags_equal_duckdb(tmp_path, monkeypatch):
    lines = ["user,items,score"]
    bags = []
    for q in range(300):
        bag = [f"i{(q * k) % 17}" for k in range(q % 4)] + ([""] if q % 7 == 0 else [])
        bags.append([x for x in bag if x])
        lines.append(f"u{q % 13},{'|'.join(bag)},{q / 7:.3f}")
    f = tmp_path / "log.csv"
    f.write_text("\n".join(lines) + "\n")
    a, b = _both(tmp_path, monkeypatch, [f], multi_sep="|")
    assert a == b
    items = next(t for t in a["tables"] if t["name"] == "items")
    ref = Counter(x for bag in bags for x in bag)
    assert items["accesses"] == sum(ref.values()) and items["distinct"] == len(ref)
    assert items["pooling_max"] == max(len(x) for x in bags)
    assert items["missing"] == sum(1 for x in bags if not x)
    assert [t["name"] for t in a["tables"]] == ["user", "items"]  # score looks numeric


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("1\t2\t3", "missing columns"),  # short line
        ("\t".join(["0"] * 41), "too many columns"),  # long line with a non-empty extra field
        ("\t".join(["0"] * 40) + "\t", "kept"),  # trailing empty field: DuckDB keeps the row, Polars too
        ("", None),  # blank line: DuckDB skips it, Polars would read a row of nulls
    ],
)
def test_malformed_lines_fall_back_to_duckdb(tmp_path, bad, reason):
    rows = _criteo(20)
    lines = [("\t".join(r)) for r in rows]
    lines.insert(5, bad)
    f = tmp_path / "log.tsv"
    f.write_text("\n".join(lines) + "\n")
    res = analyze([f], fmt="criteo", out=tmp_path / "p")
    assert res.profile.source["parser"] == "duckdb"  # the separator count does not match: not provably clean
    if reason == "kept":
        assert (res.profile.rows_read, res.profile.rows_skipped) == (21, 0)
        return
    assert res.profile.rows_read == 20
    if reason is None:
        assert res.profile.rows_skipped == 0
    else:
        assert res.profile.rows_skipped == 1
        assert res.skipped[0].startswith(f"{f}:6: ") and reason in res.skipped[0]


def test_short_and_long_lines_that_balance_still_fall_back(tmp_path):
    # one line with a non-empty 41st field and one with 39 fields: the separator total is right,
    # the extra column catches the long line
    rows = _criteo(10)
    lines = ["\t".join(r) for r in rows]
    lines[2] += "\tx"
    lines[7] = "\t".join(rows[7][:39])
    f = tmp_path / "log.tsv"
    f.write_text("\n".join(lines) + "\n")
    res = analyze([f], fmt="criteo", out=tmp_path / "p")
    assert res.profile.source["parser"] == "duckdb"
    assert (res.profile.rows_read, res.profile.rows_skipped) == (8, 2)


def test_bad_utf8_and_quoted_csv_fall_back(tmp_path):
    f = tmp_path / "log.tsv"
    rows = _criteo(5)
    f.write_bytes(_text(rows).encode() + b"0" + b"\t\xff" * 39 + b"\n")
    res = analyze([f], fmt="criteo", out=tmp_path / "p")
    assert res.profile.source["parser"] == "duckdb" and res.profile.rows_skipped == 1
    q = tmp_path / "q.csv"
    q.write_text('user,title\nu1,"a, b"\nu2,c\n')
    res = analyze([q], tables=["user", "title"], out=tmp_path / "q")
    assert res.profile.source["parser"] == "duckdb"
    assert res.profile.table("title").distinct == 2


def test_strict_through_the_cli_after_fallback(tmp_path):
    f = tmp_path / "log.csv"
    f.write_text("user,item\nu1,i1\nu2\nu3,i3\n")
    result = runner.invoke(app, ["analyze", str(f), "--strict", "--out", str(tmp_path / "p"), "--json"])
    assert result.exit_code == 2
    assert f"{f}:3" in result.stderr and "--strict" in result.stderr
    ok = runner.invoke(app, ["analyze", str(f), "--out", str(tmp_path / "q"), "--json"])
    assert ok.exit_code == 0
    out = json.loads(ok.stdout)
    assert (out["rows_read"], out["rows_skipped"]) == (2, 1)


def test_memory_gate(tmp_path):
    assert fast_text.memory_bytes("2GB") == 2 * 10**9
    assert fast_text.memory_bytes("500MiB") == 500 * 2**20
    assert fast_text.memory_bytes(" 1.5 gb ") == 1_500_000_000
    assert fast_text.memory_bytes("lots") is None
    f = tmp_path / "log.tsv"
    f.write_bytes(b"x\ty\n" * 1000)  # 4000 bytes of text
    g = tmp_path / "log.tsv.gz"
    g.write_bytes(gzip.compress(b"x\ty\n" * 1000))
    plain, zipped = classify(f), classify(g)
    assert fast_text.text_bytes(plain) == 4000
    assert fast_text.text_bytes(zipped) == max(4000, fast_text.GZIP_RATIO * g.stat().st_size)
    need = fast_text.MEMORY_FACTOR * 4000
    assert fast_text.fits((plain,), f"{int(need)}B") and not fast_text.fits((plain,), f"{int(need) - 1}B")
    assert not fast_text.fits((plain,), "nonsense")


@pytest.mark.parametrize("bad", ["1\t2\t3", "\t".join(["0"] * 41), ""], ids=["short line", "long line", "blank line"])
def test_chunked_path_falls_back_to_duckdb_on_a_malformed_line(tmp_path, monkeypatch, bad):
    rows = _criteo(40)
    lines = ["\t".join(r) for r in rows]
    lines.insert(31, bad)  # in a later chunk
    f = tmp_path / "log.tsv"
    f.write_text("\n".join(lines) + "\n")
    _chunked(monkeypatch)
    res = analyze([f], fmt="criteo", out=tmp_path / "p")
    assert res.profile.source["parser"] == "duckdb"
    assert res.profile.rows_read == 40
    if bad:
        assert res.profile.rows_skipped == 1 and res.skipped[0].startswith(f"{f}:32: ")


def test_chunks_end_at_line_ends_and_cover_the_text(tmp_path):
    text = "".join(f"{i}\t{'x' * (i % 13)}\n" for i in range(200)) + "last\tline"
    f = tmp_path / "log.tsv"
    f.write_text(text)
    g = tmp_path / "log.tsv.gz"
    g.write_bytes(gzip.compress(text.encode()))
    for src in (f, g):
        pieces = list(fast_chunks.chunks(classify(src), 100))
        assert b"".join(pieces) == text.encode()
        assert all(p.endswith(b"\n") for p in pieces[:-1]) and len(pieces) > 10
    with pytest.raises(ValueError, match="longer than"):
        list(fast_chunks.chunks(classify(f), 5))


def test_chunked_path_gives_up_when_the_counts_outgrow_the_budget(tmp_path, monkeypatch):
    rows = _criteo(200)
    f = tmp_path / "log.tsv"
    f.write_text(_text(rows))
    _chunked(monkeypatch)
    monkeypatch.setattr(fast_chunks, "COUNTS_SHARE", 2 * 10**9 // 2000)  # 2,000 bytes of counts at most
    monkeypatch.setattr(fast_chunks, "MERGE_SHARE", 2 * 10**9 // 1000)  # added up past 1,000 bytes
    res = analyze([f], fmt="criteo", out=tmp_path / "p")
    assert res.profile.source["parser"] == "duckdb"
    ref = Counter(r[14] for r in rows if r[14])
    assert (res.profile.table("C1").accesses, res.profile.table("C1").distinct) == (sum(ref.values()), len(ref))


@pytest.mark.parametrize("bags", [False, True])
def test_chunked_counts_added_up_after_every_chunk_equal_the_in_memory_ones(tmp_path, bags):
    if bags:
        lines = ["user,items"] + [f"u{q % 13},{'|'.join(f'i{(q * k) % 17}' for k in range(q % 4))}" for q in range(300)]
        names, tables, kw = ("user", "items"), ("user", "items"), {"delimiter": ",", "header": True, "quote": True}
        f = tmp_path / "log.csv"
        f.write_text("\n".join(lines) + "\n")
    else:
        f = tmp_path / "log.tsv"
        f.write_text(_text(_criteo(300)))
        names, tables = CRITEO_COLUMNS, CRITEO_COLUMNS[14:]
        kw = {"delimiter": "\t", "header": False, "quote": False}
    logs = fast_text.TextLogs((classify(f),), names, tables, **kw, multi_sep="|" if bags else None, sample=0.5, seed=3)
    whole = fast_text.count_text(logs)
    chunked = fast_chunks.count_text_chunked(logs, chunk_bytes=500, merge_bytes=1, counts_budget=10**9)
    assert whole is not None and chunked is not None
    assert (chunked.rows_read, chunked.counts.queries) == (whole.rows_read, whole.counts.queries)
    assert whole.rows_read == 300 and 100 < whole.counts.queries < 200
    for a, b in zip(whole.counts.tables, chunked.counts.tables, strict=True):
        assert (a.name, a.queries, a.pooling_max) == (b.name, b.queries, b.pooling_max)
        assert dict(zip(a.ids.to_pylist(), a.counts.tolist(), strict=True)) == dict(
            zip(b.ids.to_pylist(), b.counts.tolist(), strict=True)
        )
