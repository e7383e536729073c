"""Ctrl-C in synth, analyze, calibrate and replay: one line saying what was kept, exit 130, nothing half-written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autotune.cli import app

runner = CliRunner()


def _ctrl_c(*_args, **_kwargs):
    raise KeyboardInterrupt


def test_synth_interrupted_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import autotune.synth_writers as writers

    monkeypatch.setattr(writers, "write_log", _ctrl_c)
    out = tmp_path / "logs"
    res = runner.invoke(app, ["synth", str(out), "--tables", "2", "--queries", "10"])
    assert res.exit_code == 130
    assert res.stderr.splitlines()[-1] == f"interrupted; nothing was written ({out} is as it was)"
    assert "Traceback" not in res.stderr and list(tmp_path.iterdir()) == []  # no folder, no temporary


def test_analyze_interrupted_keeps_the_previous_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import analytics.profile_io as profile_io

    log = tmp_path / "q.csv"
    log.write_text("user,item\nu1,a\nu2,b\n")
    out = tmp_path / "p"
    assert runner.invoke(app, ["analyze", str(log), "--out", str(out)]).exit_code == 0
    before = (out / "profile.json").read_bytes()
    monkeypatch.setattr(profile_io, "write_json", _ctrl_c)  # Ctrl-C while the new profile is being written
    res = runner.invoke(app, ["analyze", str(log), "--out", str(out)])
    assert res.exit_code == 130
    assert res.stderr.splitlines()[-1] == f"interrupted; nothing was written ({out} is as it was)"
    assert "Traceback" not in res.stderr and (out / "profile.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p", "q.csv"]  # no temporary or scratch folder left


def test_calibrate_interrupted_keeps_the_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import autotune.calibrate as cal

    hw_dir = tmp_path / "hw"
    hw_dir.mkdir()
    before = '# the profile written before\nname = "cpu"\nfamily = "cpu"\n'
    (hw_dir / "cpu.toml").write_text(before)
    monkeypatch.setenv("AUTOTUNE_HW_DIR", str(hw_dir))
    monkeypatch.setattr(cal, "measure", _ctrl_c)
    res = runner.invoke(app, ["calibrate", "--quick"])
    assert res.exit_code == 130
    assert res.stderr.splitlines()[-1] == f"interrupted; nothing was written ({hw_dir / 'cpu.toml'} is as it was)"
    assert (hw_dir / "cpu.toml").read_text() == before
    assert sorted(p.name for p in hw_dir.iterdir()) == ["cpu.toml"]  # nothing kept in previous/ either


def test_replay_interrupted_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import autotune.replay as rp
    from tests.model_helpers import workload, zipf_table

    prof = tmp_path / "profile"
    prof.mkdir()
    (prof / "profile.json").write_text(json.dumps(workload(zipf_table("C1", rows=100)).to_dict()))
    mfile = tmp_path / "m.json"
    mfile.write_text(json.dumps({"version": 1, "tables": [{"name": "C1", "strategy": "GM"}]}))
    monkeypatch.setattr(rp, "replay", _ctrl_c)
    hw = Path(__file__).resolve().parents[1] / "hwprofiles" / "cpu-generic.toml"
    res = runner.invoke(app, ["replay", "--mapping", str(mfile), "--profile", str(prof), "--hw", str(hw)])
    assert res.exit_code == 130
    assert res.stderr == "interrupted; nothing was written (replay only measures)\n"
