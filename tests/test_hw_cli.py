"""`autotune hw list|show`: the tables, the JSON, and one clear error line for every malformed profile."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autotune.cli import app
from autotune.hwload import USER_DIR_ENV, bundled_dir

runner = CliRunner()
B = (bundled_dir() / "ascend910b.toml").read_text()  # split: vector (UB only) and cube (L1) core types
A = (bundled_dir() / "ascend910a.toml").read_text()  # coupled: one core type with L1 -> UB


@pytest.fixture(autouse=True)
def _no_user_profiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(USER_DIR_ENV, str(tmp_path / "no-user-profiles"))


def test_hw_help() -> None:
    res = runner.invoke(app, ["hw", "--help"])
    assert res.exit_code == 0
    assert "list" in res.stdout and "show" in res.stdout


def test_hw_list_table_and_json() -> None:
    res = runner.invoke(app, ["hw", "list"])
    assert res.exit_code == 0, res.stderr
    for name in ("ascend910b", "ascend910a", "a100-80gb", "h100-sxm", "cpu-generic"):
        assert name in res.stdout
    res = runner.invoke(app, ["hw", "list", "--json"])
    assert res.exit_code == 0
    doc = json.loads(res.stdout)
    rows = {p["name"]: p for p in doc["profiles"]}
    assert set(rows) == {"ascend910b", "ascend910a", "a100-80gb", "h100-sxm", "cpu-generic"}
    assert rows["ascend910b"]["lookup_cores"] == 48 and rows["ascend910b"]["l2_capacity_bytes"] == 192 * 2**20
    assert rows["a100-80gb"]["lookup_cores"] == 108 and rows["a100-80gb"]["origin"] == "bundled"
    assert doc["aliases"]["ascend"] == "ascend910b"


def test_hw_show_table_and_json() -> None:
    res = runner.invoke(app, ["hw", "show", "ascend"])
    assert res.exit_code == 0, res.stderr
    for text in ("ascend910b", "vector cores: memory UB", "192 KiB", "1.8 GHz", "published", "guessed"):
        assert text in res.stdout
    res = runner.invoke(app, ["hw", "show", "ascend", "--json"])
    assert res.exit_code == 0
    doc = json.loads(res.stdout)
    assert doc["name"] == "ascend910b"
    assert doc["core_types"][1]["runs_lookups"]["value"] is False  # the cube cores own L1 but run no look-ups
    assert doc["core_types"][1]["memories"][0]["capacity_bytes"]["value"] == 512 * 1024


def sub(text: str, pattern: str, repl: str) -> str:
    """Replace the first match of `pattern`; fail loudly if the fixture no longer contains it."""
    new, n = re.subn(pattern, repl, text, count=1, flags=re.MULTILINE)
    assert n == 1, f"pattern {pattern!r} not found"
    return new


V = "core_types.vector"
# (case id, valid source text, regex to replace (first match), replacement, dotted field the error names, words)
CASES = [
    ("missing-figure", B, r"^gm_read_bytes_per_cycle = .*\n", "", V + ".gm_read_bytes_per_cycle", "is missing"),
    ("negative-count", B, r"count = \{ value = 48", "count = { value = -48", V + ".count", "must be > 0"),
    ("zero-clock", B, r"clock_hz = \{ value = 1.8e9", "clock_hz = { value = 0", "clock_hz", "> 0"),
    ("negative-overhead", B, r"launch_s = \{ value = 1.0e-5", "launch_s = { value = -1.0e-5", "overheads.launch_s",
     ">= 0"),
    ("string-value", B, r"value = 201_326_592", 'value = "lots"', "chip.l2_capacity_bytes", "numeric value"),
    ("float-for-int", B, r"value = 196_608", "value = 196608.5", V + ".memories.UB.capacity_bytes", "integer"),
    ("bool-for-number", B, r"count = \{ value = 48", "count = { value = true", V + ".count", "numeric value"),
    ("number-for-bool", B, r"runs_lookups = \{ value = true", "runs_lookups = { value = 1",
     V + ".runs_lookups", "true or false"),
    ("nan", B, r"value = 600.0", "value = nan", V + ".gm_latency_cycles", "finite"),
    ("unknown-confidence", B, r'confidence = "published"', 'confidence = "certain"',
     "clock_hz", "use one of published, derived, guessed, measured"),
    ("empty-source", B, r'source = "Ascend910B2.ini \[SoCInfo\] vector_core_cnt=48"', 'source = " "',
     V + ".count", "empty 'source'"),
    ("plain-number", B, r"^gm_block_bytes = \{[^\n]*\}", "gm_block_bytes = 32", V + ".gm_block_bytes",
     "inline table"),
    ("no-confidence", B, r'(per_task_s = \{[^\n]*), confidence = "guessed" \}', r"\1 }", "overheads.per_task_s",
     "has no 'confidence'"),
    ("extra-figure-key", B, r'(merge_sync_s = \{[^\n]*) \}', r'\1, note = "x" }', "overheads.merge_sync_s",
     "unknown key 'note'"),
    ("typo-field", B, r"^l2_read_bytes_per_cycle", "l2_read_byte_per_cycle", V + ".l2_read_byte_per_cycle",
     "not a known field"),
    ("unknown-top-key", B, r'^family = "ascend"', 'family = "ascend"\nvendor = "huawei"', "vendor",
     "not a known field"),
    ("misspelt-table", B, r"^\[chip\]\n", "[chip_]\n", "chip_", "not a known field"),
    ("missing-table", B, r"^\[overheads\]\n(.*\n){5}", "", "overheads", "add a [overheads] table"),
    ("missing-name", B, r'^name = "ascend910b"\n', "", "name", "is missing"),
    ("bad-core-name", B, r'^name = "cube"', 'name = "cube.v2"', "core_types[1].name", "only letters, digits"),
    ("missing-core-name", B, r'^name = "cube"\n', "", "core_types[1].name", "is missing"),
    ("no-core-types", B, r"^# The 48 AI vector cores(.*\n)*", "", "core_types", "is missing"),
    ("l2-not-below-gm", B, r"value = 201_326_592", "value = 68_719_476_736", "chip.l2_capacity_bytes",
     "not below chip.gm_capacity_bytes"),
    ("fill-from-unknown", B, r'(name = "UB"\n)fill_from = "GM"', r'\1fill_from = "L1"',
     V + ".memories.UB.fill_from", "neither 'GM' nor a memory of core type 'vector'"),
    ("fill-from-self", B, r'(name = "UB"\n)fill_from = "GM"', r'\1fill_from = "UB"',
     V + ".memories.UB.fill_from", "names the memory itself"),
    ("fill-cycle", A, r'(name = "L1"\n)fill_from = "GM"', r'\1fill_from = "UB"',
     "core_types.aicore.memories.L1.fill_from", "cycle (L1 -> UB -> L1)"),
    ("block-not-pow2", B, r"^block_bytes = \{ value = 32", "block_bytes = { value = 48",
     V + ".memories.UB.block_bytes", "power of two"),
    ("gm-block-zero", B, r"gm_block_bytes = \{ value = 32", "gm_block_bytes = { value = 0",
     V + ".gm_block_bytes", "must be > 0"),
    ("block-above-capacity", B, r"value = 196_608", "value = 16", V + ".memories.UB.block_bytes",
     "larger than capacity_bytes"),
    ("no-lookup-cores", B, r"runs_lookups = \{ value = true", "runs_lookups = { value = false", "core_types",
     "no core type with runs_lookups = true"),
    ("lookup-core-cannot-pool", B, r"pool_bytes_per_cycle = \{ value = 256.0", "pool_bytes_per_cycle = { value = 0",
     V + ".pool_bytes_per_cycle", "runs_lookups = true"),
    ("lookup-core-free-routing", B, r"route_cycles_per_id = \{ value = 0.1,", "route_cycles_per_id = { value = 0,",
     V + ".route_cycles_per_id", "never free"),
    ("negative-pool-row", B, r"pool_row_cycles = \{ value = 1.0,", "pool_row_cycles = { value = -1.0,",
     V + ".pool_row_cycles", "must be >= 0"),
    ("stream-faster-than-chip", B, r"gm_stream_bytes_per_cycle = \{ value = 32.0,",
     "gm_stream_bytes_per_cycle = { value = 1000.0,", V + ".gm_stream_bytes_per_cycle",
     "one core cannot read faster than the whole chip"),
    ("number-for-overlap", B, r"overlaps_fetch_compute = \{ value = true", "overlaps_fetch_compute = { value = 1",
     V + ".overlaps_fetch_compute", "true or false"),
    ("duplicate-core", B, r'^name = "cube"', 'name = "vector"', "core_types.vector", "two core types"),
    ("duplicate-memory", A, r'^name = "UB"', 'name = "L1"', "core_types.aicore.memories.L1", "names two memories"),
    ("memory-named-gm", B, r'^name = "UB"', 'name = "GM"', V + ".memories.GM", "reserved name"),
    ("core-faster-than-chip", B, r"value = 32.0, source = \"Ascend910B2.ini \[AICoreMemoryRates\] ddr_read_rate=32\"",
     r'value = 1000.0, source = "x"', V + ".gm_read_bytes_per_cycle",
     "one core cannot read faster than the whole chip"),
    ("l2-slower-than-gm", B, r"value = 250.0", "value = 900.0", V + ".l2_latency_cycles",
     "an L2 hit cannot be slower"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "text", "pattern", "repl", "field", "words"), CASES, ids=[c[0] for c in CASES])
def test_malformed_profile_is_one_clear_line(
    tmp_path: Path, case: str, text: str, pattern: str, repl: str, field: str, words: str
) -> None:
    bad = tmp_path / f"{case}.toml"
    bad.write_text(sub(text, pattern, repl))
    res = runner.invoke(app, ["hw", "show", str(bad)])
    assert res.exit_code != 0
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(f"error: {bad}: field '{field}' ")
    assert words in lines[0]
    assert "Traceback" not in res.stderr
    assert res.exception is None or isinstance(res.exception, SystemExit)


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "syntax.toml"
    bad.write_text(sub(B, r"(clock_hz = \{[^\n]*) \}", r"\1"))  # unclosed inline table on line 8
    res = runner.invoke(app, ["hw", "show", str(bad)])
    assert res.exit_code != 0
    (line,) = res.stderr.splitlines()
    assert line.startswith(f"error: {bad}: not valid TOML (")
    assert "line 8" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["hw", "show", "/nonexistent/x.toml"], "error: /nonexistent/x.toml: no such hardware profile file"),
        (["hw", "show", "tpu-v9"], "error: unknown hardware 'tpu-v9': use one of a100-80gb, ascend910a, ascend910b"),
    ],
)
def test_unknown_spec_is_one_clear_line(args: list[str], message: str) -> None:
    res = runner.invoke(app, args)
    assert res.exit_code != 0
    (line,) = res.stderr.splitlines()
    assert line.startswith(message)


def test_unreadable_bytes_are_one_clear_line(tmp_path: Path) -> None:
    bad = tmp_path / "binary.toml"
    bad.write_bytes(b"\xff\xfe\x00name")
    res = runner.invoke(app, ["hw", "show", str(bad)])
    assert res.exit_code != 0
    (line,) = res.stderr.splitlines()
    assert line.startswith(f"error: {bad}: cannot read hardware profile")


def test_malformed_user_profile_is_skipped_by_list_with_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = tmp_path / "hw"
    user.mkdir()
    (user / "cpu.toml").write_text(sub(B, r'^name = "ascend910b"', 'name = "cpu"').replace("value = 48", "value = 0"))
    (user / "mychip.toml").write_text(sub(B, r'^name = "ascend910b"', 'name = "mychip"'))
    monkeypatch.setenv(USER_DIR_ENV, str(user))
    res = runner.invoke(app, ["hw", "list", "--json"])
    assert res.exit_code == 0
    (line,) = res.stderr.splitlines()
    assert line.startswith(f"warning: skipped {user / 'cpu.toml'}: field 'core_types.vector.count' must be > 0")
    assert line.endswith("or re-create it with `autotune calibrate`")
    listed = json.loads(res.stdout)
    names = [(p["name"], p["origin"]) for p in listed["profiles"]]
    assert ("mychip", "user") in names and ("cpu", "user") not in names
    assert ("ascend910b", "bundled") in names
    assert len(listed["skipped"]) == 1
    # Naming the broken profile directly is still an error, not a silent fallback.
    res = runner.invoke(app, ["hw", "show", "cpu"])
    assert res.exit_code != 0
    (line,) = res.stderr.splitlines()
    assert line.startswith(f"error: {user / 'cpu.toml'}: field 'core_types.vector.count' must be > 0")


CPU_GENERIC = (bundled_dir() / "cpu-generic.toml").read_text()


def _aliases_line(stdout: str) -> str:
    (line,) = [x for x in stdout.splitlines() if x.startswith("aliases: ")]
    return line


def test_hw_list_shows_what_cpu_resolves_to(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user = tmp_path / "hw"
    monkeypatch.setenv(USER_DIR_ENV, str(user))
    fresh = "aliases: ascend -> ascend910b, a100 -> a100-80gb, h100 -> h100-sxm, cpu -> cpu-generic"
    res = runner.invoke(app, ["hw", "list"])
    assert res.exit_code == 0, res.stderr
    assert _aliases_line(res.stdout) == f"{fresh}; user profiles: {user}"
    assert json.loads(runner.invoke(app, ["hw", "list", "--json"]).stdout)["aliases"]["cpu"] == "cpu-generic"
    # a calibrated profile (as `autotune calibrate` writes it: name "cpu" in <user folder>/cpu.toml)
    user.mkdir()
    (user / "cpu.toml").write_text(sub(CPU_GENERIC, r'^name = "cpu-generic"', 'name = "cpu"'))
    res = runner.invoke(app, ["hw", "list"])
    assert res.exit_code == 0, res.stderr
    calibrated = fresh.replace("cpu -> cpu-generic", f"cpu -> cpu ({user / 'cpu.toml'})")
    assert _aliases_line(res.stdout) == f"{calibrated}; user profiles: {user}"
    doc = json.loads(runner.invoke(app, ["hw", "list", "--json"]).stdout)
    assert doc["aliases"] == {"ascend": "ascend910b", "a100": "a100-80gb", "h100": "h100-sxm", "cpu": "cpu"}
    assert ("cpu", "user") in [(p["name"], p["origin"]) for p in doc["profiles"]]
    # ... which is what `--hw cpu` loads
    assert json.loads(runner.invoke(app, ["hw", "show", "cpu", "--json"]).stdout)["name"] == "cpu"


def test_broken_user_profiles_get_their_own_remedy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user = tmp_path / "hw"
    user.mkdir()
    (user / "cpu.toml").write_text(
        sub(CPU_GENERIC, r'^name = "cpu-generic"', 'name = "cpu"').replace("value = 16,", "value = 0,", 1)
    )
    (user / "mychip.toml").write_text(
        sub(B, r'^name = "ascend910b"', 'name = "mychip"').replace("value = 48", "value = 0")
    )
    monkeypatch.setenv(USER_DIR_ENV, str(user))
    res = runner.invoke(app, ["hw", "list"])
    assert res.exit_code == 0
    cpu, mychip = res.stderr.splitlines()
    assert cpu.startswith(f"warning: skipped {user / 'cpu.toml'}: field ")
    assert cpu.endswith("; fix the file, or re-create it with `autotune calibrate`")
    assert mychip.startswith(f"warning: skipped {user / 'mychip.toml'}: field 'core_types.vector.count' must be > 0")
    assert mychip.endswith(f"; fix the file (`autotune hw show {user / 'mychip.toml'}` checks it) or remove it")
    assert "calibrate" not in mychip  # calibrate writes cpu.toml only: it cannot mend mychip.toml
    # `--hw cpu` still means the broken cpu.toml (an error, not a silent fall-back), and the list says so
    assert f"cpu -> cpu ({user / 'cpu.toml'})" in _aliases_line(res.stdout)


def test_a_truncated_profile_names_its_last_line(tmp_path: Path) -> None:
    bad = tmp_path / "cut.toml"
    lines = B.splitlines(keepends=True)
    cut = "".join(lines[:7]) + lines[7][: lines[7].index("source")]  # line 8 stops inside clock_hz's table
    bad.write_text(cut)
    res = runner.invoke(app, ["hw", "show", str(bad)])
    assert res.exit_code != 0
    (line,) = res.stderr.splitlines()
    assert line.startswith(f"error: {bad}: not valid TOML (") and "line 8)" in line


def test_hw_show_a_folder_says_it_is_a_folder(tmp_path: Path) -> None:
    res = runner.invoke(app, ["hw", "show", str(tmp_path)])
    assert res.exit_code != 0
    want = f"error: {tmp_path}: a folder, not a hardware profile file; give a .toml file in it or a name\n"
    assert res.stderr == want


def test_a_user_profile_may_not_take_a_bundled_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user = tmp_path / "hw"
    user.mkdir()
    mine = user / "ascend910b.toml"
    mine.write_text(B.replace('description = "', 'description = "my edit of '))
    monkeypatch.setenv(USER_DIR_ENV, str(user))
    why = (
        f"{mine}: a user hardware profile may not take the bundled name 'ascend910b' (`--hw ascend910b` would be "
        "ambiguous): rename the file and its field 'name' (e.g. ascend910b-custom), or remove it"
    )
    res = runner.invoke(app, ["hw", "list", "--json"])
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert [p["origin"] for p in doc["profiles"] if p["name"] == "ascend910b"] == ["bundled"]  # listed once
    assert doc["skipped"] == [why] and res.stderr == f"warning: skipped {why}\n"
    assert doc["aliases"]["ascend"] is None
    table = runner.invoke(app, ["hw", "list"], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "ascend -> refused (see the warning above)" in table.stdout
    for args in (["hw", "show", "ascend910b"], ["hw", "show", "ascend"]):
        res = runner.invoke(app, args)
        assert res.exit_code == 2 and res.stderr == f"error: {why}\n"
    # renamed as the message says: listed and found under its own name; the bundled name works again
    (user / "ascend910b-custom.toml").write_text(
        mine.read_text().replace('name = "ascend910b"', 'name = "ascend910b-custom"')
    )
    mine.unlink()
    res = runner.invoke(app, ["hw", "show", "ascend910b-custom", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["description"].startswith("my edit of ")
    assert runner.invoke(app, ["hw", "show", "ascend910b"]).exit_code == 0


def test_unknown_hardware_lists_the_aliases_as_they_resolve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user = tmp_path / "hw"
    user.mkdir()
    monkeypatch.setenv(USER_DIR_ENV, str(user))
    (user / "cpu.toml").write_text(sub(CPU_GENERIC, r'^name = "cpu-generic"', 'name = "cpu"'))
    res = runner.invoke(app, ["hw", "show", "tpu-v9"])
    assert res.exit_code == 2
    assert res.stderr == (
        "error: unknown hardware 'tpu-v9': use one of a100-80gb, ascend910a, ascend910b, cpu, cpu-generic, "
        "h100-sxm (aliases: ascend -> ascend910b, a100 -> a100-80gb, h100 -> h100-sxm, "
        f"cpu -> cpu ({user / 'cpu.toml'})) "
        "or a path to a .toml profile\n"
    )
