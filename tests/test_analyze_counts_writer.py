"""counts.parquet written by a background thread, table by table, while the statistics run.

The file must read back with the documented schema and exactly the rows handed to it; an error in the
writer thread or in the statistics must surface as an exception and leave no profile directory behind.
The separator count that proves a text log clean runs in a second thread too: if it fails, the log goes
to DuckDB like any log the fast path cannot prove clean.
"""

from __future__ import annotations

import threading

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analytics import analyze, fast_text
from analytics.profile_io import COUNTS_FILE, COUNTS_SCHEMA, CountsWriter, write_profile

TABLES = [
    ("a", ["x", "y", "z"], [2, 0, 1], [5, 1, 1]),
    ("empty", [], [], []),
    ("b", ["y", "q"], [7, 3], [9, 4]),
]


def _arrays(name: str, ids: list[str], rows: list[int], counts: list[int]) -> tuple:
    return name, pa.array(ids, pa.string()), np.array(rows, dtype=np.int64), np.array(counts, dtype=np.int64)


def _writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("counts-writer")]


def test_counts_read_back_with_the_schema_and_every_row(tmp_path):
    path = tmp_path / COUNTS_FILE
    with CountsWriter(path) as w:
        for t in TABLES:
            w.add(*_arrays(*t))
    got = pq.read_table(path)
    assert got.schema == COUNTS_SCHEMA
    want = [(name, i, r, c) for name, ids, rows, counts in TABLES for i, r, c in zip(ids, rows, counts, strict=True)]
    assert list(zip(*[got.column(c).to_pylist() for c in COUNTS_SCHEMA.names], strict=True)) == want
    assert pq.ParquetFile(path).metadata.num_row_groups == 2  # one per non-empty table
    assert not _writer_threads()


def test_only_the_table_column_has_statistics_and_a_filtered_read_skips_the_rest(tmp_path):
    path = tmp_path / COUNTS_FILE
    with CountsWriter(path) as w:
        for t in TABLES:
            w.add(*_arrays(*t))
    meta = pq.ParquetFile(path).metadata
    for g in range(meta.num_row_groups):
        cols = {meta.schema.column(i).name: meta.row_group(g).column(i) for i in range(meta.num_columns)}
        assert cols["table"].is_stats_set and cols["table"].statistics.has_min_max
        assert not any(cols[c].is_stats_set for c in ("id", "row", "count"))
        assert cols["id"].compression == "UNCOMPRESSED" and cols["count"].compression == "LZ4"
    # how replay reads one table's rows: a filter on the table column (its statistics skip the other groups)
    got = pq.read_table(path, columns=["table", "id", "row"], filters=[("table", "=", "b")])
    assert got.to_pylist() == [{"table": "b", "id": "y", "row": 7}, {"table": "b", "id": "q", "row": 3}]


def test_no_tables_is_an_empty_file_with_the_schema(tmp_path):
    with CountsWriter(tmp_path / COUNTS_FILE):
        pass
    got = pq.read_table(tmp_path / COUNTS_FILE)
    assert got.num_rows == 0 and got.schema == COUNTS_SCHEMA


def test_an_error_in_the_writer_thread_surfaces_and_nothing_is_left(tmp_path):
    out = tmp_path / "prof"

    def build(w: CountsWriter) -> object:
        name, ids, rows, counts = _arrays(*TABLES[0])
        w.add(name, ids, rows[:2], counts)  # rows shorter than ids: the writer thread cannot build the table
        from autotune.workload import load_profile

        return load_profile  # never written: the write fails first

    with pytest.raises(pa.ArrowInvalid):
        write_profile(out, build)
    assert not out.exists() and not list(tmp_path.iterdir())
    assert not _writer_threads()


def test_an_error_in_the_statistics_leaves_nothing(tmp_path):
    out = tmp_path / "prof"

    def build(w: CountsWriter) -> object:
        w.add(*_arrays(*TABLES[0]))
        raise ValueError("statistics failed")

    with pytest.raises(ValueError, match="statistics failed"):
        write_profile(out, build)
    assert not out.exists() and not list(tmp_path.iterdir())
    assert not _writer_threads()


def test_a_failing_separator_count_falls_back_to_duckdb(tmp_path, monkeypatch):
    log = tmp_path / "log.tsv"
    rows = [[str(q % 2), *[""] * 13, *[f"{(q * (j + 2)) % 7:x}" for j in range(26)]] for q in range(30)]
    log.write_text("".join("\t".join(r) + "\n" for r in rows))
    fast = analyze([log], fmt="criteo", out=tmp_path / "fast")

    def broken(*_args: object) -> tuple[int, bool]:
        raise ValueError("cannot count")

    monkeypatch.setattr(fast_text, "separators", broken)
    slow = analyze([log], fmt="criteo", out=tmp_path / "slow")
    assert (fast.profile.source["parser"], slow.profile.source["parser"]) == ("polars", "duckdb")
    a, b = fast.profile.to_dict(), slow.profile.to_dict()
    a["source"].pop("parser")
    b["source"].pop("parser")
    assert a == b and a["rows_read"] == 30
    c1 = next(t for t in a["tables"] if t["name"] == "C1")
    assert c1["accesses"] == 30 and c1["distinct"] == len({(q * 2) % 7 for q in range(30)})
