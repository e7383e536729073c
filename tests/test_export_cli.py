"""`autotune export RUN --format json|torchrec` through the CLI on a real (small) search run."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pytest
from run_helpers import RUN, TABLES, completed_run
from typer.testing import CliRunner

from autotune.cli import app
from autotune.export.torchrec import check_plan
from autotune.model.mapping import parse_mapping

runner = CliRunner()
ROWS = {f"t{i}": t[0] for i, t in enumerate(TABLES)}
DIM = 32
CORES = 48  # ascend910b vector cores


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return completed_run(tmp_path_factory.getbasetemp() / "h5-run")


def export(*args: str):
    return runner.invoke(app, ["export", *args])


def test_native_export_reproduces_the_stored_latency_through_evaluate(root, tmp_path):
    out = tmp_path / "best.json"
    res = export(RUN, "--runs-dir", str(root), "--format", "json", "--out", str(out))
    assert res.exit_code == 0, res.stderr
    assert res.stdout == "" and f"wrote {out}" in res.stderr
    doc = json.loads(out.read_text())
    parse_mapping(doc, where=str(out))  # the shipped mapping schema accepts it
    stored = json.loads((root / RUN / "mapping.json").read_text())
    assert [t["placement"] for t in doc["tables"]] == [t["placement"] for t in stored["tables"]]
    run_doc = json.loads((root / RUN / "run.json").read_text())
    profile = run_doc["inputs"]["profile"]["path"]
    ev = runner.invoke(app, ["evaluate", "--profile", profile, "--hw", "ascend910b", "--mapping", str(out), "--json"])
    assert ev.exit_code == 0, ev.stderr
    assert json.loads(ev.stdout)["latency_s"] == run_doc["best_latency_s"] == doc["predicted_latency_s"]
    assert "warning" not in ev.stderr  # same hardware, same profile hash


def test_torchrec_export_tiles_every_table(root):
    res = export(RUN, "--runs-dir", str(root), "--format", "torchrec")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    check_plan(doc)
    stored = {t["name"]: t for t in json.loads((root / RUN / "mapping.json").read_text())["tables"]}
    plan = doc["plan"]["sparse_arch.embedding_bag_collection"]
    assert set(plan) == set(ROWS) and doc["hardware"]["world_size"] == CORES
    for name, entry in plan.items():
        t, rows = stored[name], ROWS[name]
        assert doc["tables"][name] == {"num_embeddings": rows, "embedding_dim": DIM, "data_type": "FP32"}
        if t["shards"] == 1 and t["replicas"] == CORES:
            assert entry["sharding_type"] == "data_parallel" and entry["shards"] is None
            assert entry["ranks"] == list(range(CORES))
            continue
        assert entry["sharding_type"] == ("table_wise" if t["shards"] == 1 else "row_wise")
        assert entry["ranks"] == t["placement"][0]  # replica 0's cores, shard by shard
        k = t["shards"]
        edges = [j * rows // k for j in range(k + 1)]  # equal row ranges, rounded down
        assert [s["shard_offsets"] for s in entry["shards"]] == [[e, 0] for e in edges[:-1]]
        assert [s["shard_sizes"] for s in entry["shards"]] == [[b - a, DIM] for a, b in itertools.pairwise(edges)]
        assert [s["placement"] for s in entry["shards"]] == [f"rank:{c}/npu:{c}" for c in t["placement"][0]]
        ext = doc["autotune"]["tables"][name]
        assert ext["placement"] == t["placement"] and ext["strategy"] == t["strategy"]
        assert ("replicas" in ext["not_expressed"]) == (t["replicas"] > 1)


def test_torchrec_export_notes_what_the_plan_leaves_out(root):
    # one stderr note per kind of decision the plan section cannot carry, naming how many tables, from the
    # stored mapping: partial replicas, a strategy other than GM, hot rows under GM, de-duplication
    res = export(RUN, "--runs-dir", str(root), "--format", "torchrec")
    assert res.exit_code == 0, res.stderr
    tables = json.loads((root / RUN / "mapping.json").read_text())["tables"]
    expected = {
        "replicas on a subset of the ranks": [
            t for t in tables if t["replicas"] > 1 and not (t["shards"] == 1 and t["replicas"] == CORES)
        ],
        "a single-core strategy other than GM": [t for t in tables if t["strategy"] != "GM"],
        "hot rows pinned": [t for t in tables if t["strategy"] == "GM" and t["hot_rows"] > 0],
        "de-duplication": [t for t in tables if t["dedup"]],
    }
    notes = [ln for ln in res.stderr.splitlines() if ln.startswith("note: ")]
    assert notes and len(notes) == sum(1 for v in expected.values() if v)
    for what, hits in expected.items():
        got = [ln for ln in notes if what in ln]
        assert len(got) == (1 if hits else 0), (what, notes)
        if hits:
            assert got[0].startswith(f"note: {len(hits)} table(s) ({hits[0]['name']}")
    plain = export(RUN, "--runs-dir", str(root), "--format", "json")
    assert "note:" not in plain.stderr  # the native mapping leaves nothing out


def test_torchrec_module_option(root):
    res = export(RUN, "--runs-dir", str(root), "-f", "torchrec", "--module", "model.ebc")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert list(doc["plan"]) == ["model.ebc"] and doc["autotune"]["module"] == "model.ebc"
    for bad in ("a b!", "model..ebc", ".ebc", "1model"):
        res = export(RUN, "--runs-dir", str(root), "-f", "torchrec", "--module", bad)
        assert res.exit_code == 2 and res.stdout == ""
        assert res.stderr.startswith(f"error: --module {bad!r}: give the dotted attribute path") and (
            res.stderr.count("\n") == 1
        )


def test_unknown_format_lists_the_formats(root):
    res = export(RUN, "--runs-dir", str(root), "--format", "onnx")
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr.startswith("error: --format 'onnx' is not an export format; use one of: json (")
    assert "torchrec (" in res.stderr and res.stderr.count("\n") == 1


def test_unknown_and_incomplete_runs(root, tmp_path):
    res = export("nope", "--runs-dir", str(root), "--format", "json")
    assert res.exit_code == 2 and f"completed runs under {root}/: {RUN}" in res.stderr
    half = tmp_path / "runs" / "half"
    half.mkdir(parents=True)
    shutil.copy(root / RUN / "mapping.json", half / "mapping.json")  # an interrupted search: no run.json
    res = export("half", "--runs-dir", str(tmp_path / "runs"), "--format", "json")
    assert res.exit_code == 2 and "half: no completed run here (run.json missing)" in res.stderr


def test_invalid_mapping_is_refused_and_nothing_is_written(root, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(root / RUN, runs / RUN)
    f = runs / RUN / "mapping.json"
    m = json.loads(f.read_text())
    m["tables"][1]["shards"] = 0
    f.write_text(json.dumps(m))
    out = tmp_path / "out" / "plan.json"
    res = export(RUN, "--runs-dir", str(runs), "--format", "torchrec", "--out", str(out))
    assert res.exit_code == 2 and "Traceback" not in res.stderr
    assert "mapping.json: tables[1].shards: must be >= 1, got 0" in res.stderr
    assert not out.exists() and not (out.parent.exists() and any(out.parent.iterdir()))


def test_mapping_placement_out_of_range_is_refused(root, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(root / RUN, runs / RUN)
    f = runs / RUN / "mapping.json"
    m = json.loads(f.read_text())
    m["tables"][0]["placement"][0][0] = 48
    f.write_text(json.dumps(m))
    res = export(RUN, "--runs-dir", str(runs), "--format", "json")
    assert res.exit_code == 2
    assert "tables[0].placement: core 48 is out of range; ascend910b has cores 0..47" in res.stderr


def test_out_must_be_a_file(root, tmp_path):
    res = export(RUN, "--runs-dir", str(root), "--format", "json", "--out", str(tmp_path))
    assert res.exit_code == 2 and f"--out {tmp_path}: is a folder; give a file name" in res.stderr


def one_line_error(res, *needles: str) -> None:
    assert res.exit_code == 2 and res.stdout == "", res.stdout
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1, res.stderr
    for needle in needles:
        assert needle in res.stderr, res.stderr


def test_out_under_a_file_is_one_line(root, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("keep")
    res = export(RUN, "--runs-dir", str(root), "-f", "json", "--out", str(afile / "x.json"))
    one_line_error(res, f"--out {afile / 'x.json'}: cannot create its folder, {afile} is a file")
    assert afile.read_text() == "keep"


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    ("fmt", "name", "what"),
    [
        ("json", "run.json", "the run's run.json"),
        ("torchrec", "mapping.json", "the run's mapping.json"),
        ("json", "plan.json", "a new file inside the run"),
    ],
)
def test_out_inside_the_run_is_refused_and_the_run_kept(root, tmp_path, fmt, name, what):
    run_dir = tmp_path / RUN
    shutil.copytree(root / RUN, run_dir)
    before = _snapshot(run_dir)
    res = export(str(run_dir), "-f", fmt, "--out", str(run_dir / name))
    one_line_error(
        res, f"--out {run_dir / name}: {what}", "`autotune search`", f"choose another --out outside {run_dir}"
    )
    assert _snapshot(run_dir) == before
    assert export(str(run_dir), "-f", "json").exit_code == 0  # the run still loads


def test_out_inside_a_profile_folder_is_refused(root, tmp_path):
    profile = Path(json.loads((root / RUN / "run.json").read_text())["inputs"]["profile"]["path"]).parent
    folder = tmp_path / "prof"
    folder.mkdir()
    (folder / "profile.json").write_bytes((profile / "profile.json").read_bytes())
    (folder / "counts.parquet").write_bytes(b"PAR1 stand-in")
    before = _snapshot(folder)
    for target in (folder / "profile.json", folder / "plots" / "plan.json"):
        res = export(RUN, "--runs-dir", str(root), "-f", "torchrec", "--out", str(target))
        one_line_error(res, f"--out {target}: ", "the profile", "`autotune analyze`", "choose another --out")
    assert _snapshot(folder) == before


@pytest.mark.parametrize("fmt", ["json", "torchrec"])
def test_out_refuses_a_file_that_is_not_an_earlier_export_of_the_format(root, tmp_path, fmt):
    log = tmp_path / "notes.json"
    log.write_text("old contents that are longer than nothing")
    res = export(RUN, "--runs-dir", str(root), "-f", fmt, "-o", str(log))
    one_line_error(res, f"--out {log}: ", f"not a previous `autotune export --format {fmt}` output", "another --out")
    assert log.read_text() == "old contents that are longer than nothing"
    other = "torchrec" if fmt == "json" else "json"
    assert export(RUN, "--runs-dir", str(root), "-f", other, "-o", str(log.with_name("x.json"))).exit_code == 0
    res = export(RUN, "--runs-dir", str(root), "-f", fmt, "-o", str(log.with_name("x.json")))
    one_line_error(res, f"not a previous `autotune export --format {fmt}` output")


def test_out_replaces_an_earlier_export_of_the_same_format_whole(root, tmp_path):
    out = tmp_path / "plan.json"
    for _ in range(2):
        assert export(RUN, "--runs-dir", str(root), "-f", "torchrec", "-o", str(out)).exit_code == 0
        check_plan(json.loads(out.read_text()))
    for _ in range(2):
        assert export(RUN, "--runs-dir", str(root), "-f", "json", "-o", str(out.with_name("m.json"))).exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "plan.json"]  # no temporary file left behind


def test_json_reports_the_file_written(root, tmp_path):
    out = tmp_path / "plan.json"
    res = export(RUN, "--runs-dir", str(root), "-f", "torchrec", "-o", str(out), "--json")
    assert res.exit_code == 0, res.stderr
    assert f"wrote {out}" in res.stderr and "wrote" not in res.stdout  # messages on stderr, one object on stdout
    info = json.loads(res.stdout)
    run_doc = json.loads((root / RUN / "run.json").read_text())
    assert info["format"] == "torchrec" and info["schema"] == "torchrec_plan.schema.json"
    assert info["path"] == str(out) and info["bytes"] == out.stat().st_size
    assert info["run"] == RUN and info["run_dir"] == str(root / RUN)
    assert info["hardware"] == "ascend910b" and info["tables"] == len(TABLES)
    assert info["latency_s"] == info["stored_latency_s"] == run_doc["best_latency_s"]
    assert info["matches_stored"] is True and "document" not in info
    check_plan(json.loads(out.read_text()))


def test_json_without_out_carries_the_document(root):
    plain = export(RUN, "--runs-dir", str(root), "-f", "json")
    res = export(RUN, "--runs-dir", str(root), "-f", "json", "--json")
    assert res.exit_code == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["path"] is None and "bytes" not in info and info["format"] == "json"
    assert info["document"] == json.loads(plain.stdout)  # the same document a plain export prints


def test_json_error_is_still_one_line_on_stderr(root):
    res = export("nope", "--runs-dir", str(root), "-f", "json", "--json")
    assert res.exit_code == 2 and res.stdout == ""
    (line,) = res.stderr.splitlines()
    assert line.startswith("error: ")


def test_trial_of_a_single_objective_run_is_one_line(root):
    res = export(RUN, "--runs-dir", str(root), "-f", "json", "--trial", "3")
    assert res.exit_code == 2 and res.stdout == "" and res.stderr.count("\n") == 1
    assert res.stderr.startswith(f"error: --trial 3: run {RUN} has no pareto.json")
    assert "drop --trial" in res.stderr
