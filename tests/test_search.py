"""`autotune search`: finds the optimum of an enumerable workload, resumes, shares a study between workers
and machines (journal file, PostgreSQL), and reports bad input in one line."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import optuna
import pytest
from model_helpers import zipf_table
from optuna.trial import TrialState
from pgserver import find_pg_bin, postgres_server
from run_helpers import medium_profile_in, write_profile
from typer.testing import CliRunner

from autotune.cli import app
from autotune.hwload import load_hardware, write_hardware
from autotune.model.bounds import HOT_ROWS_GRID, lower_bound
from autotune.model.context import ModelContext
from autotune.model.evaluate import predict, score
from autotune.model.mapping import Mapping, TableMapping, parse_mapping
from autotune.search.driver import SearchRequest, run_search
from autotune.workload import load_profile

runner = CliRunner()


@pytest.fixture(scope="module")
def two_core_chip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ascend 910A figures (coupled cores: L1 1 MiB and UB 256 KiB) cut down to two cores."""
    hw = load_hardware("ascend910a")
    core = replace(hw.core_types[0], count=2)
    tiny = replace(hw, name="tiny2", core_types=(core, *hw.core_types[1:]))
    return write_hardware(tiny, tmp_path_factory.mktemp("hw") / "tiny2.toml")


@pytest.fixture(scope="module")
def medium_profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return medium_profile_in(tmp_path_factory.mktemp("prof") / "medium")


def all_mappings(ctx: ModelContext):
    """Every mapping of the test workload over an explicit grid (independent of the search space code)."""
    chunks = (8192, 16384, 32768, 65536)
    per_table = []
    for t in ctx.tables:
        options = []
        for r, k in ((1, 1), (1, 2), (2, 1)):
            for sharding in ("contiguous", "balanced") if k > 1 else ("contiguous",):
                for dedup in (False, True):
                    options += [TableMapping(t.name, r, k, sharding, "GM", h, dedup) for h in HOT_ROWS_GRID]
                    options.append(TableMapping(t.name, r, k, sharding, "L1", 0, dedup))
                    for s in ("GM-UB", "L1-UB"):
                        options += [TableMapping(t.name, r, k, sharding, s, 0, dedup, c) for c in chunks]
        per_table.append(options)
    for combo in itertools.product(*per_table):
        yield Mapping(tables=combo)


def test_search_finds_the_optimum_of_an_enumerable_workload(tmp_path: Path, two_core_chip: Path) -> None:
    # Two tables on two cores: a skewed 2,000-row table that fits in L1 and a 100,000-row one that does not.
    prof = write_profile(
        tmp_path / "p",
        zipf_table("small", rows=2000, alpha=1.2, dim=16, pooling=4, contiguous=True),
        zipf_table("big", rows=100_000, alpha=1.05, dim=64, pooling=8, contiguous=False),
    )
    out = run_search(
        SearchRequest(
            profile=prof, hardware=str(two_core_chip), batch_size=256, run="opt", n_trials=400, root=tmp_path / "runs"
        )
    )
    ctx = ModelContext(load_profile(prof), load_hardware(two_core_chip), 256)
    brute = float("inf")
    for m in all_mappings(ctx):
        s = score(ctx, m)
        if s.feasible:
            brute = min(brute, s.latency_s)
    assert out.sampler == "BruteForceSampler"  # the space is small enough to enumerate exactly
    assert out.best.feasible
    assert out.best.latency_s <= brute * (1 + 1e-12)
    assert out.best.latency_s >= lower_bound(ctx).latency_s * (1 - 1e-12)


def test_search_beats_every_baseline_and_stores_the_run(tmp_path: Path, medium_profile: Path) -> None:
    res = runner.invoke(
        app,
        [
            "search",
            "--hw",
            "ascend910b",
            "--profile",
            str(medium_profile),
            "--run",
            "r1",
            "--n-trials",
            "40",
            "--runs-dir",
            str(tmp_path / "runs"),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert set(doc) >= {"run", "best", "lower_bound_s", "baselines", "n_trials"}
    assert doc["n_trials"] >= 40  # and one more when polishing improved the best
    names = {b["name"] for b in doc["baselines"]}
    assert {"default-gather", "table-wise", "row-wise", "hugectr"} <= names
    best = doc["best"]["latency_s"]
    assert best >= doc["lower_bound_s"]
    for b in doc["baselines"]:  # every baseline was enqueued as a trial, so the best is at least as fast
        assert best <= b["latency_s"] * (1 + 1e-12)
        assert b["speedup"] == pytest.approx(b["latency_s"] / best)
    run = Path(doc["run"])
    for f in ("run.json", "mapping.json", "baselines.json", "report.md", "history.png", "cores.png"):
        assert (run / f).is_file(), f
    stored = json.loads((run / "mapping.json").read_text())
    assert stored["predicted_latency_s"] == best
    assert all("placement" in t for t in stored["tables"])
    meta = json.loads((run / "run.json").read_text())
    assert meta["inputs"]["profile"]["sha256"] and meta["hardware_figures"]
    assert not list(run.glob("*.tmp")) and not list(run.glob(".*.tmp"))


def test_search_off_a_terminal_prints_plain_progress_lines(tmp_path: Path, medium_profile: Path, monkeypatch) -> None:
    import autotune.console as console

    monkeypatch.setattr(console, "PLAIN_EVERY_S", 0.0)  # a line for every trial (10 s apart by default)
    args = ["search", "--hw", "ascend910b", "--profile", str(medium_profile), "--n-trials", "12"]
    res = runner.invoke(app, [*args, "--run", "plain", "--runs-dir", str(tmp_path / "runs"), "--json"])
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)  # stdout holds the JSON alone
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("search: ")]
    done = [int(ln.split()[1].split("/")[0]) for ln in lines]
    assert done == sorted(done) and done[-1] == doc["n_trials"] >= 12  # the polish's trials are reported too
    best_us = doc["best"]["latency_s"] * 1e6
    assert f"best {best_us:,.2f} µs" in lines[-1]
    default = next(b for b in doc["baselines"] if b["name"] == "default-gather")
    assert f"({default['speedup']:.2f}x over default-gather)" in lines[-1]


def test_two_objectives_write_a_pareto_set(tmp_path: Path, medium_profile: Path) -> None:
    out = run_search(
        SearchRequest(
            profile=medium_profile,
            hardware="ascend910a",
            batch_size=512,
            run="p2",
            n_trials=30,
            objectives=("latency", "memory"),
            root=tmp_path,
        )
    )
    pareto = json.loads((out.run_dir / "pareto.json").read_text())["trials"]
    assert pareto
    pts = [(p["latency_s"], p["memory_bytes"]) for p in pareto]
    for a in pts:  # no point of the Pareto set dominates another
        assert not any(b[0] <= a[0] and b[1] <= a[1] and b != a for b in pts)
    assert len(set(pts)) == len(pts)  # each point once
    # every Pareto-optimal trial of the study is listed once, as the lowest-numbered trial at its point or a same_as
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    study = optuna.load_study(
        study_name="p2", storage=JournalStorage(JournalFileBackend(str(out.run_dir / "study.journal")))
    )
    groups: dict[tuple[float, ...], list[int]] = {}
    for t in study.best_trials:
        groups.setdefault(tuple(t.values), []).append(t.number)
    want = sorted((k, sorted(v)) for k, v in groups.items())
    assert [((p["latency_s"], p["memory_bytes"]), [p["trial"], *p["same_as"]]) for p in pareto] == want
    line = f"Pareto set (latency, memory): {len(want)} distinct point{'s' if len(want) != 1 else ''} in"
    assert f"- {line} pareto.json" in (out.run_dir / "report.md").read_text()
    res = runner.invoke(app, ["show", str(out.run_dir)])
    assert res.exit_code == 0 and f"{line} {out.run_dir / 'pareto.json'}" in res.stdout.replace("\n", " ")
    assert json.loads(runner.invoke(app, ["show", str(out.run_dir), "--json"]).stdout)["pareto"] == {
        "points": len(want),
        "file": str(out.run_dir / "pareto.json"),
    }
    # every Pareto point exports (`export RUN --trial N`, N the point's trial or one of its same_as) with its figures
    for p in pareto:
        for n in (p["trial"], *p["same_as"]):
            res = runner.invoke(app, ["export", str(out.run_dir), "-f", "json", "--trial", str(n)])
            assert res.exit_code == 0, res.stderr
            doc = json.loads(res.stdout)
            assert doc["predicted_latency_s"] == pytest.approx(p["latency_s"], rel=1e-9)
            prof, hw = load_profile(medium_profile), load_hardware("ascend910a")
            pred = predict(prof, hw, parse_mapping(doc), 512)
            assert max(c.memory_bytes for c in pred.per_core) == pytest.approx(p["memory_bytes"], rel=1e-9)
    listed = {n for p in pareto for n in (p["trial"], *p["same_as"])}
    other = next(t.number for t in study.trials if t.number not in listed)
    res = runner.invoke(app, ["export", str(out.run_dir), "-f", "json", "--trial", str(other)])
    assert res.exit_code == 2 and res.stderr.count("\n") == 1
    assert res.stderr.startswith(f"error: --trial {other}: not a Pareto point of run p2; ")


def test_pareto_points_keep_the_lowest_trial_of_identical_points() -> None:
    from optuna.distributions import IntDistribution

    from autotune.search.driver import pareto_points

    def trial(number: int, latency: float, memory: float):
        t = optuna.trial.create_trial(
            values=[latency, memory], params={"x": number}, distributions={"x": IntDistribution(0, 99)}
        )
        t.number = number  # create_trial numbers nothing: the number a study would have given it
        return t

    ts = [trial(15, 2e-6, 100), trial(7, 2e-6, 100), trial(3, 1e-6, 400), trial(11, 2e-6, 100)]
    assert [(p["trial"], p["latency_s"], p["memory_bytes"], p["same_as"], p["params"]) for p in pareto_points(ts)] == [
        (3, 1e-6, 400, [], {"x": 3}),
        (7, 2e-6, 100, [11, 15], {"x": 7}),
    ]


def _completed(journal: Path, name: str) -> list[optuna.trial.FrozenTrial]:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    try:
        study = optuna.load_study(study_name=name, storage=JournalStorage(JournalFileBackend(str(journal))))
    except KeyError:  # the journal file exists a moment before the study's first record is written
        return []
    return study.get_trials(deepcopy=False)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "autotune", *args]


def test_resume_after_sigkill_loses_no_completed_trial(tmp_path: Path, medium_profile: Path) -> None:
    runs = tmp_path / "runs"
    journal = runs / "k" / "study.journal"
    cmd = _cli(
        "search",
        "--hw",
        "ascend910b",
        "--profile",
        str(medium_profile),
        "--run",
        "k",
        "--n-trials",
        "100000",
        "--runs-dir",
        str(runs),
    )
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            time.sleep(0.5)
            if journal.exists() and sum(t.state == TrialState.COMPLETE for t in _completed(journal, "k")) >= 15:
                break
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = {t.number: t.values for t in _completed(journal, "k") if t.state == TrialState.COMPLETE}
    assert len(before) >= 15
    assert not (runs / "k" / "run.json").exists()  # interrupted: no result was claimed

    res = subprocess.run(
        _cli(
            "search",
            "--hw",
            "ascend910b",
            "--profile",
            str(medium_profile),
            "--run",
            "k",
            "--resume",
            "--n-trials",
            "10",
            "--runs-dir",
            str(runs),
            "--json",
        ),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    after = _completed(journal, "k")
    done = {t.number: t.values for t in after if t.state == TrialState.COMPLETE}
    assert all(done[n] == v for n, v in before.items())  # every completed trial survived, unchanged
    assert len(done) >= len(before) + 10
    assert not [t for t in after if t.state == TrialState.RUNNING]  # the killed worker's trial was recovered
    assert json.loads(res.stdout)["n_trials"] == len(done)  # completed trials only: not the failed or waiting ones


def test_two_workers_share_one_study(tmp_path: Path, medium_profile: Path) -> None:
    out = run_search(
        SearchRequest(
            profile=medium_profile,
            hardware="ascend910b",
            batch_size=512,
            run="w2",
            n_trials=40,
            workers=2,
            root=tmp_path,
        )
    )
    trials = _completed(out.run_dir / "study.journal", "w2")
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) >= 40
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    sampled = [t for t in complete if "polished_from" not in t.user_attrs]  # polishing runs in the parent
    assert len(sampled) == 40
    assert len({t.user_attrs["worker"] for t in sampled}) == 2  # both processes did work


@pytest.mark.skipif(find_pg_bin() is None and not os.environ.get("CI"), reason="no PostgreSQL server installed")
def test_two_machines_share_a_postgresql_study(tmp_path: Path, medium_profile: Path) -> None:
    with postgres_server() as url:
        procs = [
            subprocess.Popen(
                _cli(
                    "search",
                    "--hw",
                    "ascend910b",
                    "--profile",
                    str(medium_profile),
                    "--run",
                    "shared",
                    "--storage",
                    url,
                    "--n-trials",
                    "15",
                    "--seed",
                    str(i),
                    "--runs-dir",
                    str(tmp_path / f"m{i}"),
                    "--json",
                ),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(2)
        ]
        outs = [p.communicate(timeout=300) for p in procs]
        for p, (_, err) in zip(procs, outs, strict=True):
            assert p.returncode == 0, err
        study = optuna.load_study(study_name="shared", storage=url)
        trials = study.get_trials(deepcopy=False)
        assert sum(t.state == TrialState.COMPLETE for t in trials) >= 30
        assert sorted(t.number for t in trials) == list(range(len(trials)))
        best = min(
            t.values[0]
            for t in trials
            if t.state == TrialState.COMPLETE and all(c <= 0 for c in t.constraints.values())
        )
        # the machine that finished last saw every trial, so it reports the study's best
        assert min(json.loads(o)["best"]["latency_s"] for o, _ in outs) == pytest.approx(best)


def _one_line_error(res, *needles: str) -> None:
    assert res.exit_code != 0
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_unknown_hardware_lists_the_known_ones(tmp_path: Path, medium_profile: Path) -> None:
    res = runner.invoke(app, ["search", "--hw", "tpu9", "--profile", str(medium_profile), "--runs-dir", str(tmp_path)])
    _one_line_error(res, "tpu9", "ascend910b", "a100-80gb")


def test_missing_profile(tmp_path: Path) -> None:
    res = runner.invoke(
        app, ["search", "--hw", "ascend", "--profile", str(tmp_path / "nope"), "--runs-dir", str(tmp_path)]
    )
    _one_line_error(res, "nope", "autotune analyze")


def test_nothing_fits_says_by_how_much(tmp_path: Path) -> None:
    # 2e9 rows x 128 floats = 1 TB: no bundled chip holds it.
    prof = write_profile(tmp_path / "huge", zipf_table("huge", rows=1000, dim=128), zipf_table("x", rows=10))
    doc = json.loads((prof / "profile.json").read_text())
    doc["tables"][0]["rows"] = 2_000_000_000
    (prof / "profile.json").write_text(json.dumps(doc))
    res = runner.invoke(app, ["search", "--hw", "a100", "--profile", str(prof), "--runs-dir", str(tmp_path)])
    _one_line_error(res, "nothing fits", "short", "huge")
    assert not list((tmp_path).glob("huge-*/run.json"))


def test_resume_without_a_study_is_an_error(tmp_path: Path, medium_profile: Path) -> None:
    res = runner.invoke(
        app,
        [
            "search",
            "--hw",
            "ascend",
            "--profile",
            str(medium_profile),
            "--run",
            "fresh",
            "--resume",
            "--runs-dir",
            str(tmp_path),
        ],
    )
    _one_line_error(res, "--resume", "no study")


def test_a_run_continues_only_with_its_own_inputs(tmp_path: Path, medium_profile: Path) -> None:
    base = [
        "search",
        "--profile",
        str(medium_profile),
        "--run",
        "same",
        "--n-trials",
        "12",
        "--runs-dir",
        str(tmp_path),
    ]
    assert runner.invoke(app, [*base, "--hw", "ascend910b"]).exit_code == 0
    res = runner.invoke(app, [*base, "--hw", "ascend910b", "--batch-size", "256"])
    _one_line_error(res, "batch size 512", "another --run")
    res = runner.invoke(app, [*base, "--hw", "a100"])
    _one_line_error(res, "ascend910b", "another --run")
    res = runner.invoke(app, [*base, "--hw", "ascend910b", "--json"])  # the same inputs continue the study
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["n_trials"] >= 24


def test_seeds_are_points_of_the_space_and_replicate_light_tables_uniformly(medium_profile: Path) -> None:
    from autotune.model.baselines import all_baselines
    from autotune.search.polish import _RecordingTrial
    from autotune.search.space import SearchSpace

    ctx = ModelContext(load_profile(medium_profile), load_hardware("ascend910b"), 256)
    space = SearchSpace(ctx, all_baselines(ctx), heavy=2)
    seeds = space.seeds()
    uniform = [p for p in seeds if p["small_bytes"] == space.thresholds[-1]]
    assert {p["small_replicas"] for p in uniform} == {1, 2, 4}
    for p in seeds:
        rec = _RecordingTrial(p)
        mapping = space.suggest(rec)  # type: ignore[arg-type]
        assert rec.used == p  # every value is one of its parameter's choices, and nothing else is asked
        if p in uniform:
            light = [tm for tm in mapping.tables if tm.name not in space.heavy]
            assert light and all((tm.replicas, tm.shards) == (p["small_replicas"], 1) for tm in light)
