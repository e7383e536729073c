"""`autotune search` refuses bad input in one line and leaves nothing behind: run names that would escape
--runs-dir, a storage other than the run's, unknown storage URLs, a negative --heavy, a bad --seed, a storage
that does not open; and it does not start more workers than trials."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from run_helpers import medium_profile_in
from typer.testing import CliRunner

from autotune.cli import app
from autotune.search import driver

runner = CliRunner()


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return medium_profile_in(tmp_path_factory.mktemp("prof") / "medium")


def search(profile: Path, runs: Path, *args: str):
    return runner.invoke(
        app, ["search", "--hw", "ascend910b", "--profile", str(profile), "--runs-dir", str(runs), *args]
    )


def one_line_error(res, *needles: str) -> str:
    assert res.exit_code != 0
    assert "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: "), lines[0]
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def files_under(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*")) if folder.exists() else []


def test_a_run_name_with_dot_dot_cannot_leave_the_runs_dir(tmp_path: Path, profile: Path, monkeypatch) -> None:
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    res = search(profile, tmp_path / "runs", "--run", "../../escaped", "--n-trials", "1")
    one_line_error(res, "--run '../../escaped'", "not a run name")
    assert not (tmp_path / "escaped").exists()
    assert files_under(tmp_path / "runs") == []


def test_a_run_name_with_a_slash_says_to_use_runs_dir(tmp_path: Path, profile: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    res = search(profile, tmp_path / "runs", "--run", "team/exp", "--n-trials", "1")
    one_line_error(res, "--run 'team/exp'", "--runs-dir team --run exp")
    assert not (tmp_path / "team").exists()


def test_an_existing_run_directory_path_continues_that_run(tmp_path: Path, profile: Path) -> None:
    runs = tmp_path / "runs"
    assert search(profile, runs, "--run", "r", "--n-trials", "2", "--no-polish").exit_code == 0
    res = search(profile, tmp_path / "elsewhere", "--run", str(runs / "r"), "--n-trials", "2", "--no-polish", "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["n_trials"] == 4  # 2 + 2 completed trials in the one study
    assert not (tmp_path / "elsewhere").exists()


def test_another_storage_for_an_existing_run_is_refused(tmp_path: Path, profile: Path) -> None:
    runs = tmp_path / "runs"
    assert search(profile, runs, "--run", "r1", "--n-trials", "2", "--no-polish").exit_code == 0
    before = (runs / "r1" / "run.json").read_bytes()
    other = tmp_path / "other.journal"
    res = search(profile, runs, "--run", "r1", "--n-trials", "2", "--storage", str(other))
    one_line_error(res, "run r1 keeps its study in", str(runs / "r1" / "study.journal"), "drop --storage", "--run")
    assert (runs / "r1" / "run.json").read_bytes() == before
    assert not other.exists()
    (runs / "r1" / "run.json").unlink()  # an interrupted run: its trials are in its journal all the same
    res = search(profile, runs, "--run", "r1", "--n-trials", "2", "--storage", str(other))
    one_line_error(res, "run r1 keeps its study in", "drop --storage")
    assert not other.exists()
    # a run started on a database continues only on that database
    db = f"sqlite:///{tmp_path / 'a.db'}"
    assert search(profile, runs, "--run", "r2", "--n-trials", "2", "--no-polish", "--storage", db).exit_code == 0
    res = search(profile, runs, "--run", "r2", "--n-trials", "2", "--storage", f"sqlite:///{tmp_path / 'b.db'}")
    one_line_error(res, f"pass --storage {db}")
    assert not (tmp_path / "b.db").exists()
    res = search(profile, runs, "--run", "r2", "--n-trials", "2", "--no-polish", "--storage", db, "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["n_trials"] == 4


def test_an_unknown_storage_scheme_is_refused(tmp_path: Path, profile: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    res = search(profile, tmp_path / "runs", "--run", "u", "--n-trials", "1", "--storage", "foo://bar")
    one_line_error(res, "--storage foo://bar", "unknown scheme 'foo'", "journal file", "sqlite://", "postgresql://")
    assert files_under(tmp_path) == []  # neither ./foo:/bar nor a run folder


def test_negative_heavy_is_refused(tmp_path: Path, profile: Path) -> None:
    res = search(profile, tmp_path / "runs", "--run", "h", "--heavy", "-1", "--n-trials", "1")
    one_line_error(res, "--heavy must be >= 0", "-1")
    assert files_under(tmp_path / "runs") == []


@pytest.mark.parametrize("seed", ["-1", str(2**32)])
def test_a_seed_out_of_range_is_refused_before_anything_is_created(tmp_path: Path, profile: Path, seed: str) -> None:
    res = search(profile, tmp_path / "runs", "--run", "sneg", "--seed", seed, "--n-trials", "1")
    line = one_line_error(res, "--seed", "4294967295", seed)
    assert "objectives" not in line
    assert files_under(tmp_path / "runs") == []


def test_a_storage_that_does_not_open_leaves_no_run_folder(tmp_path: Path, profile: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nodir' / 's.db'}"
    res = search(profile, tmp_path / "runs", "--run", "nodb", "--n-trials", "1", "--storage", url)
    one_line_error(res, f"--storage {url}", "cannot open")
    assert not (tmp_path / "runs" / "nodb").exists()


def test_workers_are_capped_at_the_trials_and_a_warning_says_when_they_exceed_the_cpus(
    tmp_path: Path, profile: Path, monkeypatch
) -> None:
    started: list[int] = []

    def fake_pool(req, workers, *_args) -> None:  # records how many processes would start; runs no trial
        started.append(workers)

    monkeypatch.setattr(driver, "_run_pool", fake_pool)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)  # the CPUs it may run on
    res = search(profile, tmp_path / "runs", "--run", "w", "--workers", "64", "--n-trials", "3", "--no-polish")
    assert res.exit_code == 0, res.stderr
    assert started == [3]
    warn = [ln for ln in res.stderr.splitlines() if ln.startswith("warning:")]
    assert warn == [
        "warning: 3 workers on 1 CPUs: they share the CPUs, so the search is no faster than with --workers 1"
    ]
    assert json.loads((tmp_path / "runs" / "w" / "run.json").read_text())["workers"] == 3
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    res = search(profile, tmp_path / "runs", "--run", "w2", "--workers", "3", "--n-trials", "8", "--no-polish")
    assert res.exit_code == 0, res.stderr
    assert started == [3, 3] and "warning" not in res.stderr


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if the search builds its model: the input must be refused before any work."""

    def build(*_a, **_k):
        raise AssertionError("work done before the input was checked")

    monkeypatch.setattr(driver.Problem, "build", build)


def test_a_storage_file_that_is_not_a_journal_is_one_line(tmp_path: Path, profile: Path, no_work) -> None:
    before = (profile / "profile.json").read_bytes()
    target = profile / "profile.json"
    res = search(profile, tmp_path / "runs", "--run", "st1", "--n-trials", "1", "--storage", str(target))
    one_line_error(res, f"--storage {target}: exists and is not an Optuna journal file", "a new file name")
    assert (profile / "profile.json").read_bytes() == before
    res = search(profile, tmp_path / "runs", "--run", "st1", "--n-trials", "1", "--storage", str(tmp_path))
    one_line_error(res, f"--storage {tmp_path}: is a folder, not a journal file")
    afile = tmp_path / "afile"
    afile.write_text("keep")
    res = search(profile, tmp_path / "runs", "--run", "st1", "--n-trials", "1", "--storage", str(afile / "j"))
    one_line_error(res, f"--storage {afile / 'j'}: cannot create its folder, {afile} is a file")
    assert files_under(tmp_path / "runs") == [] and afile.read_text() == "keep"


def test_a_runs_dir_that_is_a_file_or_under_one_is_one_line(tmp_path: Path, profile: Path, no_work) -> None:
    afile = tmp_path / "afile"
    afile.write_text("keep")
    for runs in (afile, afile / "sub"):
        res = search(profile, runs, "--run", "st1", "--n-trials", "1")
        one_line_error(res, f"--runs-dir {runs / 'st1'}: cannot create its folder, {afile} is a file", "--runs-dir")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "st1").write_text("keep")
    res = search(profile, tmp_path / "runs", "--run", "st1", "--n-trials", "1")
    one_line_error(res, f"--run st1: {tmp_path / 'runs' / 'st1'} is a file, not a run folder", "another --run")
    assert afile.read_text() == "keep" and (tmp_path / "runs" / "st1").read_text() == "keep"


def test_duplicate_objectives_are_refused(tmp_path: Path, profile: Path, no_work) -> None:
    res = search(profile, tmp_path / "runs", "--run", "d", "--n-trials", "1", "--objectives", "latency,latency")
    one_line_error(res, "--objectives latency,latency: 'latency' given twice", "'latency,memory'")
    assert files_under(tmp_path / "runs") == []


def test_an_empty_run_name_is_refused(tmp_path: Path, profile: Path, no_work) -> None:
    for name in ("", "  "):
        res = search(profile, tmp_path / "runs", "--run", name, "--n-trials", "1")
        one_line_error(res, "--run '': the run name is empty", "leave --run out")
    assert files_under(tmp_path / "runs") == []


def test_a_new_search_without_hw_or_profile_is_one_line(tmp_path: Path) -> None:
    res = runner.invoke(app, ["search", "--run", "x", "--runs-dir", str(tmp_path), "--n-trials", "1"])
    one_line_error(res, "missing option '--hw' and '--profile': a new search needs", "--resume")
    assert files_under(tmp_path) == []


def test_resume_reads_the_storage_hw_and_profile_from_run_json(tmp_path: Path, profile: Path) -> None:
    runs, db = tmp_path / "runs", f"sqlite:///{tmp_path / 'a.db'}"
    assert search(profile, runs, "--run", "r3", "--n-trials", "2", "--no-polish", "--storage", db).exit_code == 0
    before = json.loads((runs / "r3" / "run.json").read_text())["n_trials"]
    res = runner.invoke(
        app, ["search", "--run", "r3", "--runs-dir", str(runs), "--resume", "--n-trials", "2", "--no-polish", "--json"]
    )
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["n_trials"] == before + 2 and out["storage"] == db
    assert not (runs / "r3" / "study.journal").exists()  # the database study continued, no journal was started


def test_resume_without_hw_of_a_run_without_run_json_asks_for_them(tmp_path: Path) -> None:
    (tmp_path / "r5").mkdir()
    (tmp_path / "r5" / "study.journal").write_text("")  # interrupted before its run.json was written
    res = runner.invoke(app, ["search", "--run", "r5", "--runs-dir", str(tmp_path), "--resume", "--n-trials", "1"])
    one_line_error(res, f"missing option '--hw' and '--profile': {tmp_path / 'r5'} has no run.json recording them")


def test_resume_of_a_folder_without_a_study_points_at_storage(tmp_path: Path, profile: Path) -> None:
    (tmp_path / "runs" / "r4").mkdir(parents=True)  # what a database run interrupted before run.json leaves
    res = search(profile, tmp_path / "runs", "--run", "r4", "--resume", "--n-trials", "1")
    one_line_error(res, "--resume", "pass that --storage", "drop --resume")


def test_search_counts_the_cpus_it_may_run_on(monkeypatch) -> None:
    """A container or `taskset` gives the process fewer CPUs than the machine has: the warning counts those."""
    from autotune.commands import search as search_cmd

    monkeypatch.setattr(search_cmd.os, "sched_getaffinity", lambda pid: {0, 3}, raising=False)
    monkeypatch.setattr(search_cmd.os, "cpu_count", lambda: 64)
    assert search_cmd._usable_cpus() == 2


def test_resume_refuses_a_hardware_file_whose_figures_changed(tmp_path: Path, profile: Path) -> None:
    """Same chip name, other figures: the trials were scored with the recorded ones (run.json sha256)."""
    import shutil

    from autotune.hwkeep import keep_previous

    chip = tmp_path / "hw" / "chip.toml"
    chip.parent.mkdir()
    shutil.copy(Path("hwprofiles/ascend910b.toml"), chip)
    runs = tmp_path / "runs"
    base = ["search", "--profile", str(profile), "--runs-dir", str(runs), "--run", "c", "--no-polish"]
    assert runner.invoke(app, [*base, "--hw", str(chip), "--n-trials", "2"]).exit_code == 0
    text = chip.read_text()
    assert "launch_s = { value = 1.0e-5" in text
    chip.write_text(text.replace("launch_s = { value = 1.0e-5", "launch_s = { value = 3.0e-5"))
    res = runner.invoke(app, [*base, "--hw", str(chip), "--resume", "--n-trials", "1"])
    one_line_error(res, f"{chip}: hardware profile", "sha256 differs", "pass --hw with the original file")
    # what `autotune calibrate` does: keep the original in previous/ and write a new file: the line names the copy
    new = chip.read_text()
    chip.write_text(text)
    kept = keep_previous(chip)
    chip.write_text(new)
    res = runner.invoke(app, ["search", "--run", "c", "--runs-dir", str(runs), "--resume", "--n-trials", "1"])
    one_line_error(res, f"pass --hw {kept} (the original, kept by `autotune calibrate`)")
    res = runner.invoke(app, [*base, "--hw", str(kept), "--resume", "--n-trials", "1", "--json"])
    assert res.exit_code == 0, res.stderr
