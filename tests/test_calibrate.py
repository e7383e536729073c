"""Calibrate writes a `cpu` profile that loads and validates; the fit reproduces its measurements."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from autotune.calibrate import bag_offsets, fit, fit_rate
from autotune.cli import app
from autotune.hwload import list_hardware, load_hardware

runner = CliRunner()

# Measurements as `measure` returns them (seconds, bytes), round numbers so the fit can be checked by hand.
MEASURED = {
    "cpus": [0, 1],
    "l2_bytes": 2 << 20,
    "l3_bytes": 32 << 20,
    "line_bytes": 64,
    "clock_hz": 2.0e9,
    "cpu_model": "Test CPU",
    "mem_total": 16 << 30,
    "gather_by_size_64B": {512 << 10: 20e-9, 8 << 20: 30e-9, 32 << 20: 32e-9, 1 << 30: 50e-9},
    "gather_dram": {64: 50e-9, 128: 64e-9, 256: 128e-9, 512: 256e-9, 1024: 512e-9},
    "gather_l2": {64: 16e-9, 128: 32e-9, 256: 64e-9, 512: 128e-9, 1024: 256e-9},
    "gather_pool_dram_64B": 90e-9,
    "take_cached_s_per_byte": 0.05e-9,
    # 48 cycles + row bytes / 2 B/cycle at 2 GHz, whatever the bag
    "pool_s_per_row": {rb: {bag: (48 + rb / 2) / 2e9 for bag in (1, 2, 4, 8)} for rb in (64, 128, 256, 512)},
    # one-length bags: 20 cycles + row bytes / 4 B/cycle
    "block_pool_s_per_row": {rb: {bag: (20 + rb / 4) / 2e9 for bag in (1, 2, 4, 8)} for rb in (64, 128, 256, 512)},
    # routing: 12 us + 10 ns per id + 5 ns per query, at bags of 1 and 4 ids
    "route_points": [
        [n, n // bag, 12e-6 + n * 10e-9 + (n // bag) * 5e-9] for bag in (1, 4) for n in (256, 4096, 65536)
    ],
    "scan_s_per_id": 1e-9,
    "sort_s_per_id_pass": 2e-9,
    "pin_s_per_id_step": 5e-9,
    "chunk_bytes": 512 << 10,
    "stream_s_per_byte": 0.1e-9,
    "one_task_s": 5e-6,
    "chunk_s": 2e-6,
    "barrier_s": 30e-6,
    # batch latency = 60 us + N x 8 us + N x q x 50 ns on pinned workers
    "task_grid": [[n, q, 60e-6 + n * 8e-6 + n * q * 50e-9] for n in (2, 8) for q in (64, 512, 2048)],
    "chase_near_s": 50e-9,
    "chase_far_s": 250e-9,
    "chip_stream_bps": 15e9,
}


def test_fit_by_hand() -> None:
    hw = fit(MEASURED, when="2026-01-01")
    core = hw.lookup_cores
    assert hw.name == "cpu" and hw.n_cores == 2 and hw.clock_hz == 2.0e9
    # 64 B row from DRAM: 50 ns = 100 cycles; chase 200 ns = 400 cycles -> 4 outstanding, latency 4 x 100
    assert core.outstanding_requests == 4 and abs(core.gm_latency_cycles - 400.0) < 1e-9
    # 128 B to 1 KiB rows cost 1 cycle per byte -> 1 B/cycle; L3 (32 MiB: 32 ns <= halfway 35 ns) is 64/100 of DRAM
    assert abs(core.gm_read_bytes_per_cycle - 1.0) < 1e-12
    assert hw.l2_capacity_bytes == 32 << 20
    assert abs(core.l2_latency_cycles - 4 * 64.0) < 1e-9
    assert abs(core.l2_read_bytes_per_cycle - 100 / 64) < 1e-12
    l2 = core.memory("L2")
    assert l2 is not None and l2.capacity_bytes == 2 << 20
    assert abs(l2.read_bytes_per_cycle - 2.0) < 1e-12  # 16 ns per 64 B row = 32 cycles, ... 256 ns per 1 KiB
    assert abs(l2.fill_bytes_per_cycle - 5.0) < 1e-12  # 0.1 ns per byte = 0.2 cycles
    assert abs(core.gather_bytes_per_cycle - 10.0) < 1e-12
    # pooling: 48 cycles + bytes / 2 at every row size and bag
    assert abs(core.pool_bytes_per_cycle - 2.0) < 1e-12 and abs(core.pool_row_cycles - 48.0) < 1e-9
    assert abs(core.block_pool_bytes_per_cycle - 4.0) < 1e-9 and abs(core.block_pool_row_cycles - 20.0) < 1e-9
    # id work at 2 GHz: 10 ns = 20 cycles per routed id, 1 ns = 2 per scanned id, 2 ns = 4 per id per sort pass
    assert abs(core.route_cycles_per_id - 20.0) < 1e-6 and abs(core.route_cycles_per_query - 10.0) < 1e-6
    assert abs(core.scan_cycles_per_id - 2.0) < 1e-9 and abs(core.sort_cycles_per_id - 4.0) < 1e-9
    assert abs(core.pin_cycles_per_id - 10.0) < 1e-9  # 5 ns per id per search step
    assert abs(core.gm_stream_bytes_per_cycle - 5.0) < 1e-12  # the chunked copy, not the random-row rate
    assert core.overlaps_fetch_compute is False  # numpy gathers, then pools
    o = hw.overheads
    assert o.per_task_s == pytest.approx(8e-6, rel=1e-9) and o.launch_s == pytest.approx(60e-6, rel=1e-9)
    assert o.merge_sync_s == 30e-6 and o.per_chunk_s == 2e-6
    assert o.per_route_s == pytest.approx(12e-6, rel=1e-6)
    assert hw.gm_bandwidth_bytes_per_s == 15e9
    assert all(conf in ("measured", "published", "derived") for _, conf in hw.provenance.values())
    assert hw.provenance["core_types.core.gm_read_bytes_per_cycle"][1] == "measured"


def test_fit_rate_is_least_squares_on_the_log() -> None:
    # floor 100 cycles; 256 B rows cost 256 cycles (1 B/cycle), 1 KiB rows 2048 (0.5 B/cycle): with both
    # bandwidth-bound the best rate is their geometric mean sqrt(0.5), errors +-ln(sqrt 2) each (64 B rows stay at
    # the floor: 64 / 0.707 = 90.5 < 100); taking all three as bandwidth-bound, or only 1 KiB, fits worse
    assert fit_rate({64: 100.0, 256: 256.0, 1024: 2048.0}, 100.0) == pytest.approx(0.5**0.5, rel=1e-12)
    assert fit_rate({64: 32.0, 1024: 512.0}, 0.0) == pytest.approx(2.0, rel=1e-12)  # no floor: all bandwidth


def test_calibrate_writes_a_loadable_profile(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("AUTOTUNE_HW_DIR", str(tmp_path / "hw"))
    res = runner.invoke(app, ["calibrate", "--quick", "--json"])
    assert res.exit_code == 0, res.stderr
    d = json.loads(res.stdout)
    path = Path(d["path"])
    assert path == tmp_path / "hw" / "cpu.toml"
    hw = load_hardware("cpu")  # resolves to the calibrated file, validated on load
    assert hw.path == path and hw.family == "cpu"
    assert hw.provenance["overheads.per_task_s"][1] == "measured"
    assert hw.n_cores == len(d["measurements"]["cpus"])
    out = tmp_path / "elsewhere.toml"
    res = runner.invoke(app, ["calibrate", "--quick", "--out", str(out)])
    assert res.exit_code == 0 and load_hardware(out).name == "cpu"
    assert not list(out.parent.glob(".*.tmp"))  # written atomically: no temporary left behind


@pytest.mark.parametrize("bag", [1, 4, 8])
def test_bag_offsets_mix_two_lengths_as_replay_batches_do(bag: int) -> None:
    offsets = bag_offsets(4096, bag, np.random.default_rng(3))
    lengths = np.diff(offsets)
    assert offsets[0] == 0 and offsets[-1] == 4096  # every id in exactly one bag
    assert set(lengths[:-1].tolist()) == {bag, bag + 1}  # both lengths occur, nothing else (the last is trimmed)
    assert 1 <= lengths[-1] <= bag + 1


def _exit_on_second(c: int) -> dict:
    if c == 1:
        os._exit(9)  # a worker killed (e.g. out of memory) after the barrier
    return {"core": c}


def test_a_dead_micro_benchmark_worker_is_an_error_not_a_hang() -> None:
    from autotune.calibrate import on_every_core

    with pytest.raises(RuntimeError, match="worker died"):
        on_every_core([0, 0], _exit_on_second)


def test_busy_machine_warning() -> None:
    from autotune.loadcheck import BUSY_LOAD, busy_warning

    assert busy_warning(0.0, 2) is None and busy_warning(BUSY_LOAD - 0.01, 2) is None
    w = busy_warning(2.0, 2)
    assert w is not None and w.startswith("warning: the load average is 2.00 on 2 CPUs")
    assert "autotune calibrate" in w


def test_calibrate_warns_on_a_busy_machine(tmp_path: Path, monkeypatch) -> None:
    import autotune.calibrate as cal

    monkeypatch.setenv("AUTOTUNE_HW_DIR", str(tmp_path / "hw"))
    monkeypatch.setattr(os, "getloadavg", lambda: (3.0, 3.0, 3.0))
    monkeypatch.setattr(cal, "measure", lambda quick, progress: MEASURED)
    res = runner.invoke(app, ["calibrate"])
    assert res.exit_code == 0, res.stderr
    assert "warning: the load average is 3.00" in res.stderr
    assert (tmp_path / "hw" / "cpu.toml").is_file()


def test_recalibrating_keeps_the_profile_earlier_runs_were_searched_with(tmp_path: Path, monkeypatch) -> None:
    import hashlib

    import autotune.calibrate as cal
    from autotune.search.driver import SearchRequest, run_search
    from tests.model_helpers import workload, zipf_table

    hw_dir = tmp_path / "hw"
    monkeypatch.setenv("AUTOTUNE_HW_DIR", str(hw_dir))
    monkeypatch.setattr(cal, "measure", lambda quick, progress: MEASURED)
    res = runner.invoke(app, ["calibrate"])
    assert res.exit_code == 0 and "kept" not in res.stderr  # nothing to keep the first time
    first = (hw_dir / "cpu.toml").read_bytes()
    os.utime(hw_dir / "cpu.toml", (1_700_000_000, 1_700_000_000))  # written 2023-11-14 22:13:20 UTC
    prof = tmp_path / "profile"
    prof.mkdir()
    (prof / "profile.json").write_text(
        json.dumps(workload(zipf_table("C1", rows=500), zipf_table("C2", rows=3000)).to_dict())
    )
    root = tmp_path / "runs"
    run_search(SearchRequest(profile=prof, hardware="cpu", batch_size=64, run="r", n_trials=4, polish=False, root=root))
    assert runner.invoke(app, ["show", "r", "--runs-dir", str(root), "--json"]).exit_code == 0

    # calibrate again on a machine that streams twice as fast: cpu.toml changes, the old one is kept
    monkeypatch.setattr(cal, "measure", lambda quick, progress: {**MEASURED, "chip_stream_bps": 30e9})
    res = runner.invoke(app, ["calibrate", "--json"])
    assert res.exit_code == 0, res.stderr
    kept = hw_dir / "previous" / "cpu.20231114T221320Z.toml"
    assert json.loads(res.stdout)["kept_previous"] == str(kept)
    assert kept.read_bytes() == first and (hw_dir / "cpu.toml").read_bytes() != first
    assert f"as {kept}" in res.stderr
    assert [i.name for i in list_hardware() if i.origin == "user"] == ["cpu"]  # no stray profile

    run_doc = json.loads((root / "r" / "run.json").read_text())
    assert run_doc["inputs"]["hardware"]["sha256"] == hashlib.sha256(first).hexdigest()
    for cmd in (["show", "r", "--runs-dir", str(root)], ["export", "r", "--runs-dir", str(root), "-f", "json"]):
        res = runner.invoke(app, cmd)
        assert res.exit_code == 2 and res.stderr.count("\n") == 1
        assert "changed since run r was searched" in res.stderr and f"pass --hw {kept} (the original" in res.stderr
        res = runner.invoke(app, [*cmd, "--hw", str(kept)])
        assert res.exit_code == 0, res.stderr

    # a third calibration keeps the second profile too; the first copy stays
    os.utime(hw_dir / "cpu.toml", (1_700_000_060, 1_700_000_060))
    assert runner.invoke(app, ["calibrate"]).exit_code == 0
    assert sorted(p.name for p in (hw_dir / "previous").iterdir()) == [
        "cpu.20231114T221320Z.toml",
        "cpu.20231114T221420Z.toml",
    ]


def test_a_quick_calibration_says_so_in_the_profile_and_on_stderr(tmp_path: Path, monkeypatch) -> None:
    import autotune.calibrate as cal

    hw_dir = tmp_path / "hw"
    monkeypatch.setenv("AUTOTUNE_HW_DIR", str(hw_dir))
    monkeypatch.setattr(cal, "measure", lambda quick, progress: {**MEASURED, "quick": quick})
    res = runner.invoke(app, ["calibrate", "--quick"])
    assert res.exit_code == 0, res.stderr
    hw = load_hardware("cpu")
    assert hw.path == hw_dir / "cpu.toml" and "--quick" in hw.description and "rough figures" in hw.description
    named = [src for src, _ in hw.provenance.values() if "autotune calibrate" in src]
    assert len(named) >= 20 and all("autotune calibrate --quick " in src for src in named)
    notes = [line for line in res.stderr.splitlines() if line.startswith("note: ")]
    assert notes == [
        "note: --quick figures are rough (small tables, few repeats); `--hw cpu` now uses them: run `autotune "
        "calibrate` without --quick for figures to judge by"
    ]
    assert res.stderr.splitlines()[-1] == "see `autotune hw show cpu`"
    full = runner.invoke(app, ["calibrate"])
    assert full.exit_code == 0, full.stderr
    hw = load_hardware("cpu")
    assert "--quick" not in hw.description and "note: " not in full.stderr
    assert not any("--quick" in src for src, _ in hw.provenance.values())
    elsewhere = tmp_path / "other.toml"
    res = runner.invoke(app, ["calibrate", "--quick", "--out", str(elsewhere)])
    assert res.exit_code == 0 and "`--hw cpu` now uses them" not in res.stderr
    assert res.stderr.splitlines()[-1] == f"see `autotune hw show {elsewhere}`"
    help_text = " ".join(runner.invoke(app, ["calibrate", "--help"], env={"COLUMNS": "200"}).stdout.split())
    assert "rough" in help_text and "`--hw cpu` finds them" in help_text


def test_a_bad_user_folder_is_named_by_its_variable(tmp_path: Path, monkeypatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("AUTOTUNE_HW_DIR", str(blocker / "hw"))
    res = runner.invoke(app, ["calibrate", "--quick"])
    assert res.exit_code == 2
    assert res.stderr == (
        f"error: $AUTOTUNE_HW_DIR {blocker / 'hw' / 'cpu.toml'}: cannot create its folder, {blocker} is a file; "
        "choose another $AUTOTUNE_HW_DIR\n"
    )


def test_out_refuses_a_run_folder_and_files_that_are_not_profiles(tmp_path: Path, monkeypatch) -> None:
    # checked before measuring: `measure` must never run
    import autotune.calibrate as calibrate_mod

    def no_measuring(**_kw):
        raise AssertionError("measured before refusing the output")

    monkeypatch.setattr(calibrate_mod, "measure", no_measuring)
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    (run / "run.json").write_text("{}")
    (run / "mapping.json").write_text("{}")
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me\n")
    cases = [
        (run / "run.json", "inside the run"),
        (run / "cpu.toml", "inside the run"),
        (notes, "is not a hardware profile"),
    ]
    for out, message in cases:
        res = runner.invoke(app, ["calibrate", "--quick", "--out", str(out)])
        assert res.exit_code == 2 and message in res.stderr and res.stderr.count("\n") == 1, res.stderr
    assert notes.read_text() == "keep me\n" and (run / "run.json").read_text() == "{}"
