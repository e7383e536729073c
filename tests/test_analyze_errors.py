"""Bad input through the CLI: one `error:` line on stderr, exit code 2, no traceback, no profile left."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from autotune.cli import app

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "movielens-latest-small"
runner = CliRunner()


def _fails(args: list[str], out: Path, *fragments: str) -> str:
    result = runner.invoke(app, ["analyze", *args, "--out", str(out), "--json"])
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for f in fragments:
        assert f in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert not out.exists()
    leftovers = [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]
    assert leftovers == []
    return lines[0]


def test_missing_path(tmp_path):
    _fails([str(tmp_path / "nope.csv")], tmp_path / "p", "nope.csv", "no such file or folder")


def test_glob_without_match_and_empty_folder(tmp_path):
    _fails([str(tmp_path / "*.tsv")], tmp_path / "p", "no log file matches")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "model.toml").write_text("x = 1\n")
    _fails([str(tmp_path / "logs")], tmp_path / "p", "holds no log files")


def test_empty_file(tmp_path):
    f = tmp_path / "empty.csv"
    f.write_bytes(b"")
    _fails([str(f)], tmp_path / "p", "empty.csv", "empty")


def test_header_only_file(tmp_path):
    f = tmp_path / "h.csv"
    f.write_text("user,item\n")
    _fails([str(f)], tmp_path / "p", "no data rows")


def test_table_column_that_does_not_exist_lists_the_columns(tmp_path):
    _fails(
        [str(DATA / "ratings.csv"), "--tables", "userId,itemId"],
        tmp_path / "p",
        "'itemId'",
        "columns: userId, movieId, rating, timestamp",
    )


def test_all_numeric_columns_need_tables(tmp_path):
    _fails([str(DATA / "ratings.csv")], tmp_path / "p", "--tables", "userId, movieId")


def test_unreadable_parquet(tmp_path):
    f = tmp_path / "broken.parquet"
    f.write_bytes(b"PAR1" + b"\x00garbage" * 20)
    _fails([str(f)], tmp_path / "p", "broken.parquet", "not a readable Parquet file")


def test_strict_stops_at_first_malformed_row(tmp_path):
    f = tmp_path / "log.csv"
    f.write_text("user,item\nu1,i1\nu2\nu3,i3\n")
    _fails([str(f), "--strict"], tmp_path / "p", "log.csv:3", "missing columns", "--strict")


def test_bad_model_spec_names_file_and_field(tmp_path):
    spec = tmp_path / "model.toml"
    spec.write_text('[[tables]]\nname = "item"\nrows = -5\n')
    f = tmp_path / "log.csv"
    f.write_text("user,item\nu1,i1\n")
    _fails([str(f), "--model", str(spec)], tmp_path / "p", "model.toml", "'item'", "'rows'")


def test_identity_row_map_needs_integer_ids(tmp_path):
    f = tmp_path / "log.csv"
    f.write_text("user,item\nu1,i1\n")
    _fails([str(f), "--row-map", "identity"], tmp_path / "p", "'user'", "integer ids")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [(["--sample", "0"], "--sample"), (["--format", "xml"], "--format"), (["--row-map", "mod"], "--row-map")],
)
def test_bad_options(tmp_path, args, fragment):
    f = tmp_path / "log.csv"
    f.write_text("user,item\nu1,i1\n")
    _fails([str(f), *args], tmp_path / "p", fragment)


def test_failure_keeps_a_previous_profile_intact(tmp_path):
    f = tmp_path / "log.csv"
    f.write_text("user,item\nu1,i1\n")
    out = tmp_path / "p"
    ok = runner.invoke(app, ["analyze", str(f), "--out", str(out)])
    assert ok.exit_code == 0, ok.stderr
    before = (out / "profile.json").read_text()
    bad = runner.invoke(app, ["analyze", str(f), "--tables", "nope", "--out", str(out)])
    assert bad.exit_code == 2
    assert (out / "profile.json").read_text() == before


def _analyze(args: list[str], out: Path) -> dict:
    import json

    result = runner.invoke(app, ["analyze", *args, "--out", str(out), "--json"])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_a_profile_and_other_files_that_are_not_logs_are_refused(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "q.csv").write_text("user,item\nu1,a\nu2,a\nu1,b\n")
    (logs / "model.toml").write_text('[[tables]]\nname = "item"\nrows = 10\n')
    first = _analyze([str(logs)], logs / "profile")  # the profile is written into the log folder
    # the folder scan leaves the profile directory (its counts.parquet) out: the same two tables again
    again = _analyze([str(logs), "--tables", "user,item"], logs / "profile2")
    assert [t["accesses"] for t in again["tables"]] == [3, 3] and len(first["tables"]) == 2
    _fails([str(logs / "profile" / "profile.json")], tmp_path / "p", "a workload profile written by")
    _fails([str(logs / "profile" / "counts.parquet")], tmp_path / "p", "per-id counts of a workload profile")
    _fails([str(logs / "profile")], tmp_path / "p", "not a folder of logs")
    _fails([str(logs / "model.toml")], tmp_path / "p", "model.toml: not a query log")


def test_documentation_beside_the_data_is_not_a_log(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "README.txt").write_text("These logs were collected in 2024.\nOne line per query.\n")
    (logs / "q.csv").write_text("user,item\nu1,a\nu2,a\n")
    got = _analyze([str(logs)], tmp_path / "p")
    assert [t["name"] for t in got["tables"]] == ["user", "item"] and got["rows_read"] == 2


def test_every_long_form_file_needs_the_long_columns(tmp_path):
    good, bad = tmp_path / "a.csv", tmp_path / "b.csv"
    good.write_text("query_id,table,id\n1,t,x\n")
    bad.write_text("query_id,tbl,id\n2,t,y\n")
    _fails([str(good), str(bad), "--format", "long"], tmp_path / "p", "b.csv", "missing table")


def test_a_format_that_contradicts_the_separator(tmp_path):
    tsv, csv = tmp_path / "q.tsv", tmp_path / "q.csv"
    tsv.write_text("user\titem\nu1\ta\n")
    csv.write_text("user,item\nu1,a\n")
    _fails([str(tsv), "--format", "csv"], tmp_path / "p", "q.tsv", "tab-separated", "--format tsv")
    _fails([str(csv), "--format", "tsv"], tmp_path / "p", "q.csv", "comma-separated", "--format csv")


def test_columns_with_a_format_that_names_its_own(tmp_path):
    criteo = tmp_path / "day_0"
    criteo.write_text("\t".join(["1"] + ["0"] * 13 + ["a"] * 26) + "\n")
    _fails([str(criteo), "--columns", "a,b"], tmp_path / "p", "--columns", "Criteo logs have fixed columns")


def test_a_model_that_names_none_of_the_columns(tmp_path):
    log = tmp_path / "q.csv"
    log.write_text("user,item\nu1,a\n")
    model = tmp_path / "other.toml"
    model.write_text('[[tables]]\nname = "t00"\nrows = 10\n')
    _fails([str(log), "--model", str(model)], tmp_path / "p", "other.toml: names none of the log's columns", "t00")


def test_numeric_columns_point_at_the_model_spec_beside_the_log(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "q.csv").write_text("a,b\n1,2\n3,4\n")
    (logs / "model.toml").write_text('[[tables]]\nname = "a"\nrows = 10\n')
    _fails([str(logs)], tmp_path / "p", "every column looks numeric", f"--model {logs / 'model.toml'}")


def test_a_memory_limit_too_small_for_duckdb_names_the_remedy(tmp_path):
    log = tmp_path / "q.csv"
    log.write_text("user,item\n" + "".join(f"u{i},i{i % 7}\n" for i in range(20_000)))
    _fails([str(log), "--memory-limit", "1KB"], tmp_path / "p", "q.csv", "raise --memory-limit")
    criteo = tmp_path / "day_0"  # DuckDB's parse of the text (not the table sniffing) is what runs out here
    criteo.write_text("".join("\t".join(["1"] + ["0"] * 13 + [f"{i % 97:x}"] * 26) + "\n" for i in range(20_000)))
    _fails([str(criteo), "--memory-limit", "1KB"], tmp_path / "p", "day_0", "raise --memory-limit")


def test_scans_and_globs_leave_out_build_files_markers_specs_and_empty_parts(tmp_path):
    logs = tmp_path / "logs"
    (logs / "part").mkdir(parents=True)
    (logs / "Makefile").write_text("all:\n\techo hi\n")  # no extension, like Criteo's day_0: not a log all the same
    (logs / "part" / "part-0000.csv").write_text("user,item\nu1,a\nu2,b\n")
    (logs / "part" / "part-0001.csv").write_text("")  # an empty part file holds no rows
    (logs / "part" / "_SUCCESS").write_text("")
    (logs / "model.toml").write_text('[[tables]]\nname = "item"\nrows = 10\n')
    (logs / "synth.json").write_text("{}")
    for arg in (str(logs), str(logs / "**"), str(logs / "part" / "*")):
        got = _analyze([arg, "--tables", "user,item"], tmp_path / "p")
        assert got["rows_read"] == 2 and [t["accesses"] for t in got["tables"]] == [2, 2], arg
    _fails([str(logs / "*.toml")], tmp_path / "q", "no log file matches", "only files that are not logs")
    # a glob the user typed takes any suffix that is not plainly a non-log, as naming the file would
    (logs / "part" / "part-0002.dat").write_text("user,item\nu3,c\n")
    got = _analyze([str(logs / "part" / "*.dat"), "--tables", "user,item"], tmp_path / "r")
    assert got["rows_read"] == 1
