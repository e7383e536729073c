"""`autotune replay RUN`: the run's inputs load as `show` loads them (sha256 checks), and the output's wording."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autotune.cli import app
from autotune.search.driver import SearchRequest, run_search
from tests.replay_helpers import make_profile

runner = CliRunner()
GENERIC = Path(__file__).resolve().parents[1] / "hwprofiles" / "cpu-generic.toml"


def _two_core_toml(name: str, launch_s: str = "1.0e-5") -> str:
    text = GENERIC.read_text().replace('name = "cpu-generic"', f'name = "{name}"')
    text = text.replace("count = { value = 16,", "count = { value = 2,")
    assert "launch_s = { value = " in text
    head, _, tail = text.partition("launch_s = { value = ")
    return head + "launch_s = { value = " + launch_s + tail[tail.index(",") :]


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(runs root, profile dir, hardware file) of a 3-trial search of a small replayable profile on 2 cores."""
    base = tmp_path_factory.mktemp("replayrun")
    prof = make_profile(base, queries=800)
    hw = base / "hw" / "chipA.toml"
    hw.parent.mkdir()
    hw.write_text(_two_core_toml("chipA"))
    root = base / "runs"
    req = SearchRequest(profile=prof, hardware=str(hw), batch_size=32, run="r", n_trials=3, polish=False, root=root)
    run_search(req)
    return root, prof, hw


def _copy(searched, tmp_path: Path) -> tuple[Path, Path, Path]:
    """A copy of the run whose run.json points at copies of its inputs (so a test may change them)."""
    root, prof, hw = searched
    run = tmp_path / "r"
    shutil.copytree(root / "r", run)
    prof2 = tmp_path / "profile"
    shutil.copytree(prof, prof2)
    hw2 = tmp_path / "chipA.toml"
    shutil.copy(hw, hw2)
    doc = json.loads((run / "run.json").read_text())
    doc["inputs"]["profile"]["path"] = str(prof2)
    doc["inputs"]["hardware"]["path"] = str(hw2)
    (run / "run.json").write_text(json.dumps(doc))
    return run, prof2, hw2


def _replay(run: Path, *extra: str):
    return runner.invoke(app, ["replay", str(run), "--batches", "1", "--warmup", "0", *extra])


def test_replay_run_refuses_a_changed_hardware_profile_as_show_does(searched, tmp_path: Path) -> None:
    run, _prof, hw = _copy(searched, tmp_path)
    ok = _replay(run, "--json")
    assert ok.exit_code == 0, ok.stderr
    original = hw.read_text()
    hw.write_text(_two_core_toml("chipA", launch_s="3.0e-5"))  # a second calibration rewrote the file
    res = _replay(run, "--json")
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr.startswith(f"error: {hw}: hardware profile 'chipA' changed since run r was searched")
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    show = runner.invoke(app, ["show", str(run)])
    assert show.exit_code == 2 and show.stderr == res.stderr  # the same check, the same words
    kept = tmp_path / "kept.toml"
    kept.write_text(original)
    again = _replay(run, "--json", "--hw", str(kept))  # the original file, moved: accepted
    assert again.exit_code == 0, again.stderr


def test_replay_run_refuses_a_rewritten_workload_profile(searched, tmp_path: Path) -> None:
    run, prof, _hw = _copy(searched, tmp_path)
    f = prof / "profile.json"
    f.write_text(f.read_text() + "\n")
    res = _replay(run)
    assert res.exit_code == 2
    assert res.stderr.startswith(f"error: {f}: this workload profile changed since run r was searched")
    assert len(res.stderr.strip().splitlines()) == 1


def test_a_moved_custom_hardware_file_is_named_as_missing(searched, tmp_path: Path) -> None:
    run, _prof, hw = _copy(searched, tmp_path)
    hw.rename(tmp_path / "elsewhere.toml")
    for cmd in (["show", str(run)], ["replay", str(run)]):
        res = runner.invoke(app, cmd)
        assert res.exit_code == 2
        assert res.stderr == (
            f"error: {hw}: the hardware profile file of run r ('chipA', run.json inputs.hardware.path) is gone; "
            "pass --hw PATH with the file the search used\n"
        )


def test_replay_output_says_what_the_sign_means(searched, tmp_path: Path) -> None:
    run, _prof, _hw = _copy(searched, tmp_path)
    res = runner.invoke(app, ["replay", str(run), "--batches", "2", "--warmup", "0"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.stderr
    js = _replay(run, "--json")
    assert js.exit_code == 0, js.stderr
    text = " ".join(res.stdout.split())
    assert " us" not in text and "µs" in text
    assert "above measured)" in text or "below measured)" in text
    assert "the batches are drawn from the profile's row counts" in text
    assert "measured busy: " in text and "predicted: " in text


def test_a_dtype_note_does_not_precede_an_input_error(searched, tmp_path: Path) -> None:
    _root, prof, hw = searched
    half = tmp_path / "half"
    shutil.copytree(prof, half)
    doc = json.loads((half / "profile.json").read_text())
    doc["tables"][0]["dtype"] = "float16"
    (half / "profile.json").write_text(json.dumps(doc))
    mfile = tmp_path / "m.json"
    names = [t["name"] for t in doc["tables"]]
    mfile.write_text(json.dumps({"version": 1, "tables": [{"name": n, "strategy": "GM"} for n in names]}))
    bad_log = tmp_path / "empty.csv"
    bad_log.write_text("")
    args = ["replay", "--mapping", str(mfile), "--profile", str(half), "--hw", str(hw), "-b", "8"]
    res = runner.invoke(app, [*args, "--batches", "1", "--warmup", "0", "--logs", str(bad_log)])
    assert res.exit_code != 0 and "error: " in res.stderr
    assert "note: " not in res.stderr and "Traceback" not in res.stderr
