"""Hardware profiles: the bundled chips load with the figures the brief states, aliases and paths resolve,
user (calibrated) profiles are found, and the TOML writer round-trips."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from autotune.errors import UserError
from autotune.hardware import CONFIDENCES, HardwareProfile
from autotune.hwformat import figure_paths
from autotune.hwload import (
    USER_DIR_ENV,
    bundled_dir,
    dump_hardware_toml,
    hardware_to_dict,
    list_hardware,
    load_hardware,
    resolve_hardware,
    write_hardware,
)

REPO = Path(__file__).resolve().parents[1]
BUNDLED = ("a100-80gb", "ascend910a", "ascend910b", "cpu-generic", "h100-sxm")
KiB, MiB, GiB = 2**10, 2**20, 2**30


@pytest.fixture(autouse=True)
def _no_user_profiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep a developer's own runs/hw or $AUTOTUNE_HW_DIR out of the tests."""
    monkeypatch.setenv(USER_DIR_ENV, str(tmp_path / "no-user-profiles"))


def test_every_bundled_profile_loads_with_full_provenance() -> None:
    assert sorted(p.stem for p in bundled_dir().glob("*.toml")) == list(BUNDLED)
    for name in BUNDLED:
        hw = load_hardware(name)
        assert hw.name == name
        paths = [p for p, _ in figure_paths(hw)]
        assert sorted(hw.provenance) == sorted(paths), name  # every figure has a source, nothing extra
        for source, confidence in hw.provenance.values():
            assert confidence in CONFIDENCES
            assert source.strip()


def test_ascend910b_is_split_vector_cores_have_no_l1() -> None:
    hw = load_hardware("ascend910b")
    assert hw.family == "ascend"
    assert hw.clock_hz == 1.8e9
    assert hw.l2_capacity_bytes == 192 * MiB
    vector = hw.lookup_cores
    assert (vector.name, vector.count, hw.n_cores) == ("vector", 48, 48)
    assert [m.name for m in vector.memories] == ["UB"]
    ub = vector.memory("UB")
    assert ub is not None and (ub.capacity_bytes, ub.block_bytes, ub.fill_from) == (192 * KiB, 32, "GM")
    assert vector.memory("L1") is None  # the point of the split architecture
    assert (vector.gm_read_bytes_per_cycle, vector.l2_read_bytes_per_cycle, vector.gm_block_bytes) == (32, 110, 32)
    (cube,) = [c for c in hw.core_types if c.name == "cube"]
    assert cube.count == 24 and not cube.runs_lookups
    l1 = cube.memory("L1")
    assert l1 is not None and l1.capacity_bytes == 512 * KiB


def test_ascend910a_is_coupled_l1_feeds_ub() -> None:
    hw = load_hardware("ascend910a")
    core = hw.lookup_cores
    assert core.count == 32 and len(hw.core_types) == 1
    l1, ub = core.memory("L1"), core.memory("UB")
    assert l1 is not None and ub is not None
    assert (l1.capacity_bytes, ub.capacity_bytes) == (1 * MiB, 256 * KiB)
    assert (l1.fill_from, ub.fill_from, ub.fill_bytes_per_cycle) == ("GM", "L1", 128)
    assert hw.l2_capacity_bytes == 32 * MiB


def test_gpus_and_cpu_figures() -> None:
    a100 = load_hardware("a100-80gb")
    assert a100.n_cores == 108 and a100.l2_capacity_bytes == 40 * MiB
    assert a100.gm_bandwidth_bytes_per_s == pytest.approx(2.04e12, rel=1e-3)
    smem = a100.lookup_cores.memory("SMEM")
    assert smem is not None and smem.capacity_bytes == 164 * KiB and not smem.resident
    assert a100.lookup_cores.gm_block_bytes == 32  # one DRAM sector
    h100 = load_hardware("h100-sxm")
    assert h100.n_cores == 132 and h100.l2_capacity_bytes == 50 * MiB
    cpu = load_hardware("cpu-generic")
    assert cpu.n_cores == 16 and cpu.gm_bandwidth_bytes_per_s == 51 * GiB  # TorchRec's DDR default
    l2 = cpu.lookup_cores.memory("L2")
    assert l2 is not None and l2.capacity_bytes == 2 * MiB and cpu.lookup_cores.gm_block_bytes == 64


def test_id_work_and_streaming_figures() -> None:
    """The per-id figures follow the arithmetic in their sources: vector instructions over int32 lanes."""
    vec = load_hardware("ascend910b").lookup_cores
    lanes = 128 * 2 // 4  # vec_calc_size=128 fp16 elements = 256 B per repeat = 64 int32 ids
    assert vec.scan_cycles_per_id == 4 / lanes  # 2 compares, and, gather-mask
    assert vec.route_cycles_per_id == pytest.approx(6 / lanes, abs=0.01)
    assert vec.gm_stream_bytes_per_cycle == 32.0 and vec.overlaps_fetch_compute  # MTE2 burst rate; double buffering
    (cube,) = [c for c in load_hardware("ascend910b").core_types if c.name == "cube"]
    assert (cube.route_cycles_per_id, cube.scan_cycles_per_id, cube.sort_cycles_per_id) == (0.0, 0.0, 0.0)
    for name in ("a100-80gb", "h100-sxm"):
        sm = load_hardware(name).lookup_cores
        assert (sm.route_cycles_per_id, sm.scan_cycles_per_id) == (8 / 64, 4 / 64)  # 64 INT32 lanes per SM
    for name in BUNDLED:  # compiled kernels overlap fetches with compute; only numpy (calibrated cpu) does not
        core = load_hardware(name).lookup_cores
        assert core.overlaps_fetch_compute and core.gm_stream_bytes_per_cycle >= core.gm_read_bytes_per_cycle


def test_aliases_and_case() -> None:
    for alias, name in (("ascend", "ascend910b"), ("a100", "a100-80gb"), ("h100", "h100-sxm"), ("cpu", "cpu-generic")):
        assert load_hardware(alias).name == name
    assert load_hardware("ASCEND910A").name == "ascend910a"


def test_paths_load_as_str_path_and_relative(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = bundled_dir() / "h100-sxm.toml"
    copy = tmp_path / "mine.toml"
    shutil.copy(src, copy)
    assert load_hardware(copy).path == copy
    assert load_hardware(str(copy)).name == "h100-sxm"  # a file's name need not match its stem
    monkeypatch.chdir(tmp_path)
    assert load_hardware("mine.toml").name == "h100-sxm"
    with pytest.raises(UserError, match=r"nothere\.toml: no such hardware profile file"):
        load_hardware("nothere.toml")


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(UserError) as err:
        load_hardware("tpu-v9")
    msg = err.value.message
    assert "unknown hardware 'tpu-v9'" in msg
    for name in BUNDLED:
        assert name in msg


def _calibrated_cpu() -> HardwareProfile:
    """What `autotune calibrate` will write: the cpu profile with a measured figure."""
    hw = load_hardware("cpu-generic")
    core = dataclasses.replace(hw.lookup_cores, count=2)
    prov = dict(hw.provenance)
    prov["core_types.core.count"] = ("os.cpu_count() on this machine", "measured")
    return dataclasses.replace(hw, name="cpu", core_types=(core,), provenance=prov, path=None)


def test_cpu_alias_prefers_a_calibrated_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user = tmp_path / "hw"
    monkeypatch.setenv(USER_DIR_ENV, str(user))
    assert load_hardware("cpu").name == "cpu-generic"  # nothing calibrated yet
    written = write_hardware(_calibrated_cpu())
    assert written == user / "cpu.toml"
    hw = load_hardware("cpu")
    assert (hw.name, hw.n_cores, hw.path) == ("cpu", 2, written)
    assert hw.provenance["core_types.core.count"] == ("os.cpu_count() on this machine", "measured")
    assert load_hardware("cpu-generic").n_cores == 16  # the bundled one is still reachable
    origins = {(i.name, i.origin) for i in list_hardware()}
    assert ("cpu", "user") in origins and ("cpu-generic", "bundled") in origins


def test_default_user_dir_is_runs_hw(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(USER_DIR_ENV)
    monkeypatch.chdir(tmp_path)
    write_hardware(_calibrated_cpu(), tmp_path / "runs" / "hw" / "cpu.toml")
    assert resolve_hardware("cpu") == Path("runs") / "hw" / "cpu.toml"
    assert load_hardware("cpu").n_cores == 2


def test_user_profile_name_must_match_its_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user = tmp_path / "hw"
    monkeypatch.setenv(USER_DIR_ENV, str(user))
    write_hardware(_calibrated_cpu(), user / "box.toml")
    with pytest.raises(UserError, match=r"box\.toml: field 'name' is 'cpu' but the file is box\.toml"):
        load_hardware("box")


def test_dump_round_trips_every_bundled_profile(tmp_path: Path) -> None:
    for name in BUNDLED:
        hw = load_hardware(name)
        text = dump_hardware_toml(hw)
        tomllib.loads(text)  # valid TOML
        out = tmp_path / f"{name}.toml"
        out.write_text(text)
        back = load_hardware(out)
        assert dataclasses.replace(back, path=hw.path) == hw
        assert dump_hardware_toml(back) == text  # stable


def test_dump_refuses_missing_provenance_and_invalid_profiles() -> None:
    hw = load_hardware("ascend910b")
    prov = {k: v for k, v in hw.provenance.items() if k != "clock_hz"}
    with pytest.raises(ValueError, match="clock_hz"):
        dump_hardware_toml(dataclasses.replace(hw, provenance=prov))
    with pytest.raises(UserError, match=r"chip\.l2_capacity_bytes"):
        dump_hardware_toml(dataclasses.replace(hw, l2_capacity_bytes=hw.gm_capacity_bytes))


def test_hardware_to_dict_has_unit_source_confidence() -> None:
    hw = load_hardware("ascend910b")
    d = json.loads(json.dumps(hardware_to_dict(hw)))
    assert d["name"] == "ascend910b" and d["lookup_cores"] == "vector" and d["n_cores"] == 48
    assert d["clock_hz"] == {
        "value": 1.8e9,
        "unit": "Hz",
        "source": hw.provenance["clock_hz"][0],
        "confidence": "published",
    }
    vector = d["core_types"][0]
    assert vector["gm_latency_cycles"]["unit"] == "cycles"
    assert vector["gm_read_bytes_per_cycle"]["unit"] == "B/cycle"
    ub = vector["memories"][0]
    assert ub["name"] == "UB" and ub["fill_from"] == "GM"
    assert ub["capacity_bytes"]["value"] == 196608 and ub["capacity_bytes"]["unit"] == "B"
    assert d["overheads"]["launch_s"]["unit"] == "s"
    assert d["chip"]["gm_bandwidth_bytes_per_s"]["unit"] == "B/s"


def test_the_wheel_bundles_the_profiles(tmp_path: Path) -> None:
    """Build the wheel, import autotune from it alone, and find the profiles under autotune/_hwprofiles."""
    pytest.importorskip("hatchling")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("autotune-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    assert sorted(p.stem for p in (site / "autotune" / "_hwprofiles").glob("*.toml")) == list(BUNDLED)
    code = (
        "import autotune, autotune.hwload as h; "
        "print(autotune.__file__); print(h.bundled_dir()); print(len(h.list_hardware()))"
    )
    env = {**os.environ, "PYTHONPATH": str(site), USER_DIR_ENV: str(tmp_path / "none")}
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    module, folder, count = res.stdout.split("\n")[:3]
    assert module.startswith(str(site))
    assert folder == str(site / "autotune" / "_hwprofiles")
    assert count == str(len(BUNDLED))


def test_docs_describe_every_field() -> None:
    """docs/hardware-profiles.md documents every key the loader accepts (so the format and its docs agree)."""
    from autotune.hwformat import CORE_KEYS, MEMORY_KEYS, TOP_KEYS, UNITS

    doc = (REPO / "docs" / "hardware-profiles.md").read_text()
    for key in (*TOP_KEYS, *CORE_KEYS, *MEMORY_KEYS, *UNITS):
        assert re.search(rf"[`\[.]{key}[`\]]", doc), key  # `key`, `chip.key`, [key] or [[core_types.key]]
