"""`autotune show RUN` through the CLI on a real (small) search run: figures, JSON, bad inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from run_helpers import RUN, TABLES, completed_run, medium_profile_in
from typer.testing import CliRunner

from autotune.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return completed_run(tmp_path_factory.getbasetemp() / "h5-run")


def show(*args: str):
    return runner.invoke(app, ["show", *args])


def _copy_run(root: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "runs" / RUN
    shutil.copytree(root / RUN, dst)
    return tmp_path / "runs"


def test_show_json_reproduces_the_stored_run(root):
    res = show(RUN, "--runs-dir", str(root), "--json")
    assert res.exit_code == 0, res.stderr
    s = json.loads(res.stdout)
    run_doc = json.loads((root / RUN / "run.json").read_text())
    mapping = json.loads((root / RUN / "mapping.json").read_text())
    assert s["latency_s"] == run_doc["best_latency_s"] and s["matches_stored"] is True
    assert s["hardware"] == "ascend910b" and s["cores"] == 48 and len(s["per_core"]) == 48
    assert [c["core"] for c in s["per_core"]] == list(range(48))
    # every task of the stored mapping is on the core its placement names, once
    want: dict[int, list[str]] = {c: [] for c in range(48)}
    for t in mapping["tables"]:
        for row in t["placement"]:
            for j, core in enumerate(row):
                want[core].append(t["name"] if t["shards"] == 1 else f"{t['name']}/s{j}")
    assert {c["core"]: sorted(c["tasks"]) for c in s["per_core"]} == {c: sorted(v) for c, v in want.items()}
    assert [c["n_tasks"] for c in s["per_core"]] == [len(want[c]) for c in range(48)]
    by_name = {t["name"]: t for t in s["tables"]}
    assert set(by_name) == {f"t{i}" for i in range(len(TABLES))}
    for t in mapping["tables"]:
        got = by_name[t["name"]]
        assert got["placement"] == t["placement"]
        assert (got["replicas"], got["shards"], got["strategy"]) == (t["replicas"], t["shards"], t["strategy"])
        assert got["share"] == pytest.approx(got["time_s"] / s["latency_s"], rel=1e-12)


def test_show_imbalance_figures_from_the_per_core_times(root):
    s = json.loads(show(RUN, "--runs-dir", str(root), "--json").stdout)
    times = [c["time_s"] for c in s["per_core"]]
    busy = [c["time_s"] for c in s["per_core"] if c["n_tasks"] > 0]
    im = s["imbalance"]
    assert im["busiest_over_mean"] == pytest.approx(max(times) / (sum(times) / len(times)), rel=1e-12)
    assert im["max_over_min"] == pytest.approx(max(busy) / min(busy), rel=1e-12)
    assert im["idle_cores"] == sum(1 for c in s["per_core"] if c["n_tasks"] == 0)
    assert times[im["busiest_core"]] == max(times)
    # the model's own breakdown agrees (busiest / mean over all cores)
    assert im["busiest_over_mean"] == pytest.approx(s["breakdown"]["imbalance"], rel=1e-12)


def test_show_human_tables(root):
    res = runner.invoke(app, ["show", RUN, "--runs-dir", str(root)], env={"COLUMNS": "160"})
    assert res.exit_code == 0, res.stderr
    s = json.loads(show(RUN, "--runs-dir", str(root), "--json").stdout)
    text = res.stdout
    assert "Per core" in text and "Per table" in text
    assert f"run {RUN}: workload test on ascend910b (48 vector cores), batch 512" in text
    assert f"predicted latency {s['latency_s'] * 1e6:,.3f} µs" in text
    im = s["imbalance"]
    assert f"imbalance: busiest/mean {im['busiest_over_mean']:.3f} (core {im['busiest_core']}*" in text
    assert f"idle cores {im['idle_cores']} of 48" in text
    lines = text.splitlines()
    for c in s["per_core"]:  # one row per core, with its task count and time in µs
        mark = "*" if c["core"] == im["busiest_core"] else ""
        row = [ln for ln in lines if ln.startswith("│") and ln.split("│")[1].strip() == f"{c['core']}{mark}"]
        assert len(row) == 1, c["core"]
        cells = [x.strip() for x in row[0].split("│")]
        assert cells[2] == str(c["n_tasks"]) and cells[3] == f"{c['time_s'] * 1e6:.3f}"
    for t in s["tables"]:
        assert any(ln.split("│")[1].strip() == t["name"] for ln in lines if ln.startswith("│")), t["name"]
        assert f"{t['share'] * 100:.1f}%" in text
    assert "slowest task / latency" in text and "share" not in text
    assert "tasks of different tables run side by side on other cores, so the column does not sum to 100%" in text


def test_show_accepts_a_run_directory(root):
    res = show(str(root / RUN), "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["run"] == RUN


def test_show_unknown_run_lists_the_completed_runs(root):
    res = show("nope", "--runs-dir", str(root))
    assert res.exit_code == 2
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1
    assert "no completed run" in res.stderr and f"completed runs under {root}/: {RUN}" in res.stderr


def test_show_accepts_the_path_of_run_json(root):
    res = show(str(root / RUN / "run.json"), "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["path"] == str(root / RUN)


def test_show_another_file_says_to_pass_the_folder(root):
    res = show(str(root / RUN / "mapping.json"))
    assert res.exit_code == 2 and res.stderr.count("\n") == 1
    assert res.stderr.startswith(f"error: {root / RUN / 'mapping.json'}: a file, not a run; pass the run's directory")


def test_show_incomplete_run_suggests_resume(root, tmp_path):
    runs = _copy_run(root, tmp_path)
    (runs / RUN / "run.json").unlink()  # what an interrupted search leaves: the study, no run.json
    res = show(RUN, "--runs-dir", str(runs))
    assert res.exit_code == 2 and res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert "an interrupted search" in res.stderr
    assert (
        f"`autotune search --run {RUN} --resume` and the same --hw and --profile (and --runs-dir {runs})" in res.stderr
    )
    (runs / RUN / "study.journal").unlink()  # a folder without a study: nothing to resume
    res = show(RUN, "--runs-dir", str(runs))
    assert res.exit_code == 2 and "run.json missing" in res.stderr and "start one with `autotune search`" in res.stderr


def test_show_dot_slash_name_gives_the_same_hint_as_the_name(root, tmp_path, monkeypatch):
    runs = _copy_run(root, tmp_path)
    monkeypatch.chdir(tmp_path)  # ./small is not a folder here; runs/small is the run of that name
    res = show(f"./{RUN}")
    assert res.exit_code == 2 and res.stderr.count("\n") == 1
    assert res.stderr == f"error: ./{RUN}: no such folder; the run {RUN} is in runs/{RUN}: pass {RUN} or runs/{RUN}\n"
    (runs / RUN / "run.json").unlink()  # interrupted: the same --resume hint as `show small`
    by_path, by_name = show(f"./{RUN}"), show(RUN)
    assert by_path.exit_code == by_name.exit_code == 2
    assert by_path.stderr == by_name.stderr
    assert f"`autotune search --run {RUN} --resume`" in by_path.stderr


def test_show_a_cpu_run_counts_its_cores_once_and_large_latencies_in_fixed_point(tmp_path):
    from autotune.search.driver import SearchRequest, run_search

    prof = medium_profile_in(tmp_path / "medium")
    req = SearchRequest(
        profile=prof, hardware="cpu-generic", batch_size=65536, run="cpu", n_trials=3, polish=False, root=tmp_path
    )
    out = run_search(req)
    assert out.best.latency_s > 1e-3  # over 1,000 µs: a thousands separator, no exponent
    res = runner.invoke(app, ["show", "cpu", "--runs-dir", str(tmp_path)], env={"COLUMNS": "160"})
    assert res.exit_code == 0, res.stderr
    assert "on cpu-generic (16 cores), batch 65536" in res.stdout
    assert f"predicted latency {out.best.latency_s * 1e6:,.3f} µs" in res.stdout
    assert "e+" not in res.stdout


def test_show_invalid_mapping_names_the_field(root, tmp_path):
    runs = _copy_run(root, tmp_path)
    f = runs / RUN / "mapping.json"
    m = json.loads(f.read_text())
    m["tables"][2]["strategy"] = "FAST"
    f.write_text(json.dumps(m))
    res = show(RUN, "--runs-dir", str(runs))
    assert res.exit_code == 2
    assert "mapping.json: tables[2].strategy: 'FAST' is not one of GM, L1, GM-UB, L1-UB" in res.stderr
    assert res.stderr.count("\n") == 1


def test_show_mapping_edited_into_another_valid_one_warns(root, tmp_path):
    runs = _copy_run(root, tmp_path)
    f = runs / RUN / "mapping.json"
    m = json.loads(f.read_text())
    for t in m["tables"]:
        t["dedup"] = not t["dedup"]
    f.write_text(json.dumps(m))
    res = show(RUN, "--runs-dir", str(runs), "--json")
    assert res.exit_code == 0, res.stderr
    s = json.loads(res.stdout)
    assert s["matches_stored"] is False and s["latency_s"] != s["stored_latency_s"]
    assert "warning:" in res.stderr and "edited after the search" in res.stderr


def test_show_refuses_a_changed_profile_and_accepts_the_moved_original(root, tmp_path):
    runs = _copy_run(root, tmp_path)
    doc = json.loads((runs / RUN / "run.json").read_text())
    original = Path(doc["inputs"]["profile"]["path"])
    changed = tmp_path / "changed.json"
    changed.write_text(original.read_text() + " ")
    doc["inputs"]["profile"]["path"] = str(changed)
    (runs / RUN / "run.json").write_text(json.dumps(doc))
    res = show(RUN, "--runs-dir", str(runs))
    assert res.exit_code == 2 and "changed since run small was searched" in res.stderr
    moved = tmp_path / "moved" / "profile.json"
    moved.parent.mkdir()
    shutil.copy(original, moved)
    changed.unlink()
    res = show(RUN, "--runs-dir", str(runs))
    assert res.exit_code == 2 and "is gone; pass --profile" in res.stderr
    res = show(RUN, "--runs-dir", str(runs), "--profile", str(moved.parent), "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["matches_stored"] is True
