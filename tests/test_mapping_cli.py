"""The mapping format and the `evaluate` / `baselines` commands, end to end through the CLI."""

from __future__ import annotations

import json
import re
import tomllib

import pytest
from model_helpers import workload, zipf_table
from typer.testing import CliRunner

from autotune.cli import app
from autotune.hwload import bundled_dir, load_hardware
from autotune.model.baselines import BASELINES
from autotune.model.context import ModelContext
from autotune.model.evaluate import predict
from autotune.model.mapping import Mapping, TableMapping, load_mapping, parse_mapping, save_mapping

runner = CliRunner()


@pytest.fixture
def prof_dir(tmp_path):
    prof = workload(
        zipf_table("C1", rows=50, alpha=0.8, dim=32, pooling=1.0),
        zipf_table("C2", rows=20_000, alpha=1.1, dim=32, pooling=2.0),
        zipf_table("C3", rows=300_000, alpha=1.0, dim=64, pooling=1.0, contiguous=False),
        name="three",
    )
    d = tmp_path / "profile"
    d.mkdir()
    (d / "profile.json").write_text(json.dumps(prof.to_dict()))
    return d


def write(tmp_path, obj, name="mapping.json"):
    p = tmp_path / name
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return p


GOOD = {
    "version": 1,
    "tables": [
        {"name": "C1", "replicas": 48},
        {"name": "C2", "shards": 4, "sharding": "balanced", "dedup": True},
        {"name": "C3", "shards": 8, "strategy": "GM", "hot_rows": 64},
    ],
}


def evaluate(prof_dir, mapping, *extra):
    return runner.invoke(
        app, ["evaluate", "--profile", str(prof_dir), "--hw", "ascend910b", "--mapping", str(mapping), *extra]
    )


def test_mapping_round_trip(tmp_path):
    m = parse_mapping(GOOD)
    assert m.tables[1] == TableMapping("C2", shards=4, sharding="balanced", dedup=True)
    save_mapping(tmp_path / "m.json", m)
    assert load_mapping(tmp_path / "m.json") == m


def test_evaluate_json(prof_dir, tmp_path):
    res = evaluate(prof_dir, write(tmp_path, GOOD), "--json", "--batch-size", "256")
    assert res.exit_code == 0, res.stderr
    d = json.loads(res.stdout)
    assert set(d) >= {"latency_s", "per_core", "tables", "breakdown", "feasible"}
    assert len(d["per_core"]) == 48
    assert set(d["per_core"][0]) >= {"core", "time_s", "memory_bytes"}
    assert [t["name"] for t in d["tables"]] == ["C1", "C2", "C3"]
    # the same as the library call
    from autotune.workload import load_profile

    prof, hw = load_profile(prof_dir), load_hardware("ascend910b")
    assert d["latency_s"] == predict(prof, hw, parse_mapping(GOOD), 256).latency_s
    assert d["latency_s"] >= max(c["time_s"] for c in d["per_core"])


def test_evaluate_write_refuses_a_file_it_did_not_write_and_replaces_its_own(prof_dir, tmp_path):
    log = write(tmp_path, "step\tloss\n1\t0.5\n", "train_log.tsv")
    res = evaluate(prof_dir, write(tmp_path, GOOD), "--write", str(log))
    assert res.exit_code == 2 and res.stdout == "" and res.stderr.count("\n") == 1, res.stderr
    assert res.stderr.startswith(f"error: --write {log}: the file exists and is not a previous `autotune evaluate")
    assert "choose another --write" in res.stderr
    assert log.read_text() == "step\tloss\n1\t0.5\n"
    out = tmp_path / "placed.json"
    for _ in range(2):  # its own output, and the mapping it read, are mappings: replaced
        assert evaluate(prof_dir, write(tmp_path, GOOD), "--write", str(out)).exit_code == 0
        assert load_mapping(out).has_placement


def test_evaluate_write_refuses_a_path_inside_a_profile_or_a_run(prof_dir, tmp_path):
    (prof_dir / "counts.parquet").write_bytes(b"PAR1 stand-in")
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "run.json").write_text("{}")
    before = (prof_dir / "profile.json").read_bytes()
    for target, what in (
        (prof_dir / "profile.json", "the profile's profile.json"),
        (prof_dir / "placed.json", "a new file inside the profile"),
        (run / "run.json", "the run's run.json"),
    ):
        res = evaluate(prof_dir, write(tmp_path, GOOD), "--write", str(target))
        assert res.exit_code == 2 and res.stderr.count("\n") == 1, res.stderr
        assert res.stderr.startswith(f"error: --write {target}: {what}"), res.stderr
        assert "choose another --write outside" in res.stderr
    assert (prof_dir / "profile.json").read_bytes() == before and (run / "run.json").read_text() == "{}"
    assert sorted(p.name for p in prof_dir.iterdir()) == ["counts.parquet", "profile.json"]


def test_evaluate_human_output_and_written_mapping_reproduces_latency(prof_dir, tmp_path):
    out = tmp_path / "placed.json"
    res = evaluate(prof_dir, write(tmp_path, GOOD), "--write", str(out))
    assert res.exit_code == 0, res.stderr
    assert "predicted latency" in res.stdout and "busiest cores" in res.stdout
    saved = load_mapping(out)
    assert saved.has_placement and saved.batch_size == 512 and saved.hardware == "ascend910b"
    res2 = evaluate(prof_dir, out, "--json")
    assert json.loads(res2.stdout)["latency_s"] == saved.predicted_latency_s


def test_baselines_json_and_written_mappings(prof_dir, tmp_path):
    outdir = tmp_path / "bl"
    res = runner.invoke(
        app, ["baselines", "--profile", str(prof_dir), "--hw", "ascend", "--json", "--write-dir", str(outdir)]
    )
    assert res.exit_code == 0, res.stderr
    d = json.loads(res.stdout)
    assert [b["name"] for b in d["baselines"]] == list(BASELINES)
    assert all(b["latency_s"] >= d["lower_bound_s"] for b in d["baselines"])
    # the bound is the largest of its parts (each a valid bound on its own), none of them above it
    parts = dict(d["lower_bound"])
    launch = parts.pop("launch_s")
    assert set(parts) == {"average_work_s", "largest_task_s", "gm_bound_s", "l2_bound_s", "span_work_s", "combined_s"}
    assert max(parts.values()) + launch == pytest.approx(d["lower_bound_s"], rel=1e-12)
    assert launch == tomllib.loads((bundled_dir() / "ascend910b.toml").read_text())["overheads"]["launch_s"]["value"]
    for b in d["baselines"]:
        f = outdir / f"{b['name']}.json"
        again = json.loads(evaluate(prof_dir, f, "--json").stdout)
        assert again["latency_s"] == b["latency_s"]


def test_baselines_human_output(prof_dir):
    args = ["baselines", "--profile", str(prof_dir), "--hw", "ascend910b", "-b", "128"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.stderr
    assert "lower bound" in res.stdout and "default-gather" in res.stdout
    d = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    (line,) = [x for x in res.stdout.splitlines() if x.startswith("lower bound ")]
    # every term is printed with its name: launch plus the largest of the six explains the total
    named = dict(re.findall(r"(launch|[a-z][a-zA-Z, 0-9]+?) ([0-9.,]+) µs", line.split(" = ", 1)[1]))
    lb = d["lower_bound"]
    assert float(named["launch"]) == pytest.approx(lb["launch_s"] * 1e6, abs=0.005)
    assert float(named["chip L2"]) == pytest.approx(lb["l2_bound_s"] * 1e6, abs=0.005)
    assert float(named["chip GM"]) == pytest.approx(lb["gm_bound_s"] * 1e6, abs=0.005)
    total = float(line.split()[2].replace(",", ""))
    terms = [float(v.replace(",", "")) for k, v in named.items() if k != "launch"]
    assert len(terms) == 6 and total == pytest.approx(float(named["launch"]) + max(terms), abs=0.011)


def bad(tables=None, **top):
    d = {"version": 1, "tables": tables if tables is not None else [dict(t) for t in GOOD["tables"]]}
    d.update(top)
    return d


def with_table(i, **fields):
    tables = [dict(t) for t in GOOD["tables"]]
    tables[i].update(fields)
    return bad(tables)


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        (with_table(2, strategy="L2"), "tables[2].strategy: 'L2' is not one of GM, L1, GM-UB, L1-UB"),
        (with_table(0, replicas=0), "tables[0].replicas: must be >= 1, got 0"),
        (with_table(1, sharding="random"), "tables[1].sharding: 'random' is not one of contiguous, balanced"),
        (with_table(0, replica=2), "tables[0]: unknown field 'replica'"),
        (with_table(0, dedup="yes"), "tables[0].dedup: must be boolean, got 'yes'"),
        (bad(version=2), "version: is 2; this autotune reads mapping version 1"),
        ({"tables": GOOD["tables"]}, "(top level): missing required field 'version'"),
        (bad(tables=[]), "tables: must not be empty"),
        (with_table(0, name="C9"), "tables[0].name: 'C9' is not a table of profile 'three'"),
        (bad(tables=GOOD["tables"][:2]), "profile table(s) 'C3' have no entry"),
        (bad(tables=[*GOOD["tables"], {"name": "C1"}]), "tables[3].name: table 'C1' is mapped twice"),
        (with_table(1, replicas=16, shards=4), "replicas x shards = 16 x 4 = 64 tasks, but ascend910b has 48"),
        (with_table(0, replicas=1, shards=51), "tables[0].shards: 51 shards for a table of 50 rows"),
        (with_table(0, replicas=2, placement=[[0], [48]]), "tables[0].placement: core 48 is out of range"),
        (with_table(0, replicas=2, placement=[[0, 1]]), "tables[0].placement: must be 2 list(s)"),
        (with_table(0, replicas=2, placement=[[3], [3]]), "tables[0].placement: a core appears twice"),
        ("{not json", "not a readable JSON mapping"),
        ("[1, 2]", "a mapping must be a JSON object"),
    ],
)
def test_bad_mapping_is_one_clear_line(prof_dir, tmp_path, mapping, message):
    f = write(tmp_path, mapping)
    res = evaluate(prof_dir, f)
    assert res.exit_code == 2
    assert res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(f"error: {f}")
    assert message in lines[0]


def test_missing_mapping_file(prof_dir, tmp_path):
    res = evaluate(prof_dir, tmp_path / "nope.json")
    assert res.exit_code == 2
    assert "no such mapping file" in res.stderr and len(res.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(version=7), "field 'version' is 7"),
        (lambda d: d["tables"][1].update(rows=0), "field 'rows' must be >= 1"),
        (lambda d: d["tables"][0].pop("rank_curve"), "field 'rank_curve' must be a list"),
        (lambda d: d["tables"][2].update(dtype="float64"), "field 'dtype' is 'float64'"),
    ],
)
def test_bad_profile_is_one_clear_line(prof_dir, tmp_path, edit, message):
    d = json.loads((prof_dir / "profile.json").read_text())
    edit(d)
    (prof_dir / "profile.json").write_text(json.dumps(d))
    for cmd in (["evaluate", "--mapping", str(write(tmp_path, GOOD))], ["baselines"]):
        res = runner.invoke(app, [*cmd, "--profile", str(prof_dir), "--hw", "ascend910b"])
        assert res.exit_code == 2
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], res.stderr


def test_bad_batch_size_and_unknown_hardware(prof_dir, tmp_path):
    res = evaluate(prof_dir, write(tmp_path, GOOD), "--batch-size", "0")
    assert res.exit_code == 2 and "--batch-size must be >= 1" in res.stderr
    res = runner.invoke(app, ["baselines", "--profile", str(prof_dir), "--hw", "tpu9"])
    assert res.exit_code == 2 and "unknown hardware 'tpu9'" in res.stderr


def test_write_dir_is_not_left_half_written(prof_dir, tmp_path, monkeypatch):
    import autotune.commands.baselines as cmd

    calls = {"n": 0}
    real = cmd.save_mapping

    def flaky(path, mapping):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        real(path, mapping)

    monkeypatch.setattr(cmd, "save_mapping", flaky)
    outdir = tmp_path / "bl"
    res = runner.invoke(
        app, ["baselines", "--profile", str(prof_dir), "--hw", "ascend910b", "--write-dir", str(outdir)]
    )
    assert res.exit_code != 0
    assert not outdir.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".bl")] == []


def test_infeasible_mapping_is_reported_not_raised(prof_dir, tmp_path):
    m = bad([{"name": "C1"}, {"name": "C2", "strategy": "L1"}, {"name": "C3"}])
    res = evaluate(prof_dir, write(tmp_path, m), "--json")
    assert res.exit_code == 0
    d = json.loads(res.stdout)
    assert d["feasible"] is False
    assert d["reason"].startswith("table C2 needs 2.44 MiB of L1")
    assert d["memory_excess_bytes"] == 20_000 * 128


def test_profile_hash_mismatch_warns(prof_dir, tmp_path):
    prof_dict = json.loads((prof_dir / "profile.json").read_text())
    from autotune.workload import WorkloadProfile

    prof = WorkloadProfile.from_dict(prof_dict)
    m = Mapping(tables=tuple(TableMapping(t.name) for t in prof.tables), profile={"name": "three", "hash": "sha256:x"})
    f = tmp_path / "m.json"
    save_mapping(f, m)
    res = evaluate(prof_dir, f)
    assert res.exit_code == 0
    assert "hash differs" in res.stderr
    ctx = ModelContext(prof, load_hardware("ascend910b"), 512)
    assert ctx.n_cores == 48


def test_an_exported_torchrec_plan_is_named_not_dumped(prof_dir, tmp_path):
    from autotune.export.torchrec import FORMAT

    # the head of a plan as `autotune export --format torchrec` writes it, with a large tables object
    plan = {
        "format": FORMAT,
        "version": 1,
        "tables": {f"C{i}": {"num_embeddings": 1000 * i, "embedding_dim": 64, "data_type": "FP32"} for i in range(40)},
        "plan": {},
    }
    res = evaluate(prof_dir, write(tmp_path, plan, "plan.torchrec.json"))
    assert res.exit_code == 2 and res.stderr.count("\n") == 1
    assert "this is a TorchRec plan exported by `autotune export`" in res.stderr
    assert "give the run's mapping.json" in res.stderr and len(res.stderr) < 300


def test_schema_errors_never_embed_a_large_value(prof_dir, tmp_path):
    from autotune.model.mapping import SHOWN_CHARS

    big = {f"C{i}": {"num_embeddings": 1000 * i} for i in range(40)}  # tables as an object, not a list
    res = evaluate(prof_dir, write(tmp_path, {"version": 1, "tables": big}))
    assert res.exit_code == 2 and res.stderr.count("\n") == 1
    assert "tables: must be array, got {'C0': {'num_embeddings': 0}" in res.stderr
    shown = res.stderr.split("got ", 1)[1].strip()
    assert len(shown) == SHOWN_CHARS and shown.endswith("...")


def test_a_workload_profile_given_as_mapping_is_named(prof_dir):
    f = prof_dir / "profile.json"
    res = evaluate(prof_dir, f)
    assert res.exit_code == 2
    assert res.stderr == (
        f"error: {f}: this is a workload profile (from `autotune analyze`), not a mapping; give a mapping.json "
        "(runs/<run>/mapping.json, or one `autotune baselines --write-dir` writes) and the profile as --profile\n"
    )
