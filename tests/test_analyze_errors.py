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
    _fails([str(tmp_path / "*.tsv")], tmp_path / "p", "no file matches")
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
