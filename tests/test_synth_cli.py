"""`autotune synth` through the CLI: files, formats, determinism, presets, and one-line errors."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from autotune.cli import app
from autotune.synth import TableSpec, generate_table
from autotune.synth_presets import PRESETS
from autotune.synth_writers import criteo_ids, hex8

runner = CliRunner()


def synth(*args: str) -> object:
    return runner.invoke(app, ["synth", *args])


def test_hex8_and_criteo_ids() -> None:
    assert hex8(np.array([0, 0xDEADBEEF, 0x0A1B2C3D], dtype=np.uint32)).tolist() == [
        b"00000000",
        b"deadbeef",
        b"0a1b2c3d",
    ]
    ids = criteo_ids(np.arange(200_000), "C1")
    assert len(np.unique(ids)) == 200_000  # a bijection: distinct rows stay distinct ids
    assert not np.array_equal(ids[:100], criteo_ids(np.arange(100), "C2"))  # salted per table


def test_presets_are_what_the_docs_say() -> None:
    criteo = PRESETS["criteo1tb"]
    # DESIGN section 8, typed here independently of the preset module.
    sizes = [39884406, 39043, 17289, 7420, 20263, 3, 7120, 1543, 63, 38532951, 2953546, 403346, 10, 2208, 11938,
             155, 4, 976, 14, 39979771, 25641295, 39664984, 585935, 12972, 108, 36]  # fmt: skip
    assert [t.rows for t in criteo.tables] == sizes
    assert all(t.dim == 128 and t.pooling == 1.0 and not t.multi_hot for t in criteo.tables)
    assert [t.name for t in criteo.tables] == [f"C{i}" for i in range(1, 27)]
    assert len(PRESETS["avazu"].tables) == 22
    meta = PRESETS["meta84"]
    assert len(meta.tables) == 84
    assert min(t.rows for t in meta.tables) == 100 and max(t.rows for t in meta.tables) == 10**7
    assert sum(t.pooling for t in meta.tables) / 84 == pytest.approx(15.0, abs=1.0)


def test_parquet_output_holds_the_generated_rows(tmp_path: Path) -> None:
    out = tmp_path / "p"
    res = synth(str(out), "--tables", "2", "--rows", "300", "--zipf", "1.2", "--queries", "5000", "--seed", "4",
                "--format", "parquet", "--json")  # fmt: skip
    assert res.exit_code == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["format"] == "parquet" and info["row_map"] == "identity"
    table = pq.read_table(out / "queries.parquet")
    assert table.column_names == ["C1", "C2"] and table.num_rows == 5000
    spec = TableSpec("C1", 300, 128, "float32", 1.0, "fixed", 1.2, 0.0)
    want = generate_table(spec, 5000, seed=4)
    assert table.column("C1").to_numpy().tolist() == want.rows.tolist()
    model = tomllib.loads((out / "model.toml").read_text())
    assert model["tables"][0] == {"name": "C1", "rows": 300, "dim": 128, "dtype": "float32"}
    record = json.loads((out / "synth.json").read_text())
    assert record["seed"] == 4 and record["spec"]["tables"][1]["alpha"] == 1.2
    assert [w["accesses"] for w in record["written"]] == [5000, 5000]


def test_tiny_preset_defaults_to_long_and_is_deterministic(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        res = synth(str(out), "--preset", "tiny", "--queries", "3000", "--seed", "1")
        assert res.exit_code == 0, res.stderr
        assert "analyse with: autotune analyze" in res.stderr
    assert (a / "lookups.parquet").read_bytes() == (b / "lookups.parquet").read_bytes()
    long = pq.read_table(a / "lookups.parquet").to_pydict()
    record = json.loads((a / "synth.json").read_text())
    per_table = {w["name"]: w["accesses"] for w in record["written"]}
    for name, n in per_table.items():
        assert long["table"].count(name) == n
    missing = {w["name"]: w["missing"] for w in record["written"]}
    assert missing["onehot"] == 0 and 0 < missing["sparse"] < 3000
    assert long["query_id"] == sorted(long["query_id"])


def test_criteo_format_shape(tmp_path: Path) -> None:
    out = tmp_path / "c"
    res = synth(str(out), "--tables", "26", "--rows", "1000", "--queries", "2000", "--format", "criteo")
    assert res.exit_code == 0, res.stderr
    lines = (out / "criteo.tsv").read_text().splitlines()
    assert len(lines) == 2000
    fields = [line.split("\t") for line in lines]
    assert {len(f) for f in fields} == {40}
    assert {f[0] for f in fields} <= {"0", "1"}
    cats = [c for f in fields for c in f[14:]]
    assert all(len(c) == 8 and int(c, 16) >= 0 for c in cats)


def test_contiguous_hot_changes_rows_not_counts(tmp_path: Path) -> None:
    outs = []
    for flag in ([], ["--contiguous-hot"]):
        out = tmp_path / f"h{len(flag)}"
        res = synth(str(out), "--tables", "1", "--rows", "5000", "--queries", "20000", "--format", "parquet", *flag)
        assert res.exit_code == 0, res.stderr
        outs.append(pq.read_table(out / "queries.parquet").column("C1").to_numpy())
    spread, hot = outs
    assert np.array_equal(np.sort(np.bincount(spread, minlength=5000)), np.sort(np.bincount(hot, minlength=5000)))
    assert np.bincount(hot).argmax() == 0 and np.bincount(spread).argmax() != 0


def test_spec_file(tmp_path: Path) -> None:
    spec = tmp_path / "w.toml"
    spec.write_text('name = "w"\n[defaults]\ndim = 8\n[[tables]]\nname = "a"\nrows = 50\npooling = 3\nalpha = 1.3\n')
    res = synth(str(tmp_path / "o"), "--spec", str(spec), "--queries", "100", "--json")
    assert res.exit_code == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["format"] == "long" and info["spec"] == "w"
    assert info["tables"][0]["accesses"] > 100


def test_dtype_overrides_the_preset_in_the_model_spec(tmp_path: Path) -> None:
    # Criteo-1TB in float32 does not fit one 910B (64 GiB); --dtype float16 halves every table's bytes
    out = tmp_path / "c"
    res = synth(str(out), "--preset", "criteo1tb", "--queries", "200", "--dtype", "float16")
    assert res.exit_code == 0, res.stderr
    model = tomllib.loads((out / "model.toml").read_text())
    assert {t["dtype"] for t in model["tables"]} == {"float16"} and len(model["tables"]) == 26
    rows = sum(t.rows for t in PRESETS["criteo1tb"].tables)
    assert sum(t["rows"] * t["dim"] * 2 for t in model["tables"]) == rows * 128 * 2
    assert round(rows * 128 * 2 / 2**30, 1) == 44.8 and round(rows * 128 * 4 / 2**30, 1) == 89.5  # as the help says
    uniform = tmp_path / "u"
    assert synth(str(uniform), "--tables", "2", "--rows", "10", "--queries", "5", "--dtype", "int8").exit_code == 0
    assert {t["dtype"] for t in tomllib.loads((uniform / "model.toml").read_text())["tables"]} == {"int8"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--queries", "10"], "say what to generate"),
        (["--queries", "10", "--preset", "nope"], "--preset 'nope' is unknown"),
        (["--queries", "10", "--preset", "tiny", "--tables", "3"], "only one of"),
        (["--queries", "10", "--preset", "tiny", "--format", "criteo"], "--format criteo"),
        (["--queries", "10", "--tables", "3", "--format", "criteo"], "has 3 tables"),
        (["--queries", "10", "--tables", "2", "--format", "xml"], "--format 'xml' is unknown"),
        (["--queries", "10", "--tables", "2", "--zipf", "-3"], "--zipf must be in [0, 10]"),
        (["--queries", "10", "--spec", "/nonexistent/spec.toml"], "synth spec not found"),
        (["--queries", "10", "--tables", "2", "--dtype", "float64"], "'dtype' is 'float64'"),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "out"
    res = synth(str(out), *args)
    assert res.exit_code == 2
    assert message in res.stderr
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1
    assert not out.exists()


def test_refuses_to_replace_a_foreign_folder_and_bad_spec(tmp_path: Path) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep me")
    res = synth(str(foreign), "--preset", "tiny", "--queries", "10")
    assert res.exit_code == 2 and "is not a previous `autotune synth` output (it holds precious.txt)" in res.stderr
    assert (foreign / "precious.txt").read_text() == "keep me" and len(list(foreign.iterdir())) == 1
    bad = tmp_path / "bad.toml"
    bad.write_text("[[tables]\nname=")
    res = synth(str(tmp_path / "x"), "--spec", str(bad), "--queries", "10")
    assert res.exit_code == 2 and "not valid TOML" in res.stderr
    # A previous synth output is replaced.
    out = tmp_path / "again"
    assert synth(str(out), "--tables", "1", "--rows", "9", "--queries", "10", "--format", "long").exit_code == 0
    assert synth(str(out), "--tables", "1", "--rows", "9", "--queries", "20", "--format", "parquet").exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == ["model.toml", "queries.parquet", "synth.json"]


def test_off_a_terminal_progress_is_plain_lines(tmp_path: Path, monkeypatch) -> None:
    import autotune.console as console
    from autotune.synth import CHUNK_QUERIES

    monkeypatch.setattr(console, "PLAIN_EVERY_S", 0.0)  # a line per chunk written (10 s apart by default)
    queries = 2 * CHUNK_QUERIES + 5
    res = synth(str(tmp_path / "s"), "--tables", "2", "--rows", "100", "--queries", str(queries), "--json")
    assert res.exit_code == 0, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("synth: ")]
    assert lines == [f"synth: {n:,}/{queries:,} queries" for n in (CHUNK_QUERIES, 2 * CHUNK_QUERIES, queries)]
    assert json.loads(res.stdout)["queries"] == queries
