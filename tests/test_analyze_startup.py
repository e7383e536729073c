"""What `autotune analyze` loads and starts: one command module, no DuckDB on the Polars fast path.

`autotune.cli.main` registers only the command named on the command line; these tests check that every
command then behaves exactly as with all of them registered, and, in a fresh interpreter, that the fast
path never imports DuckDB, Optuna, matplotlib, rich or the search stack while the DuckDB path still works when
it has to import DuckDB itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autotune.cli import app, build_app, command_names

runner = CliRunner()
HEAVY = ("duckdb", "optuna", "matplotlib", "autotune.search", "autotune.model", "pandas", "rich")


def test_command_names_are_the_modules():
    names = command_names()
    assert {"analyze", "synth", "search", "hw", "export"} <= set(names)
    assert names == sorted(names)


@pytest.mark.parametrize("name", command_names())
@pytest.mark.parametrize("args", [["--help"], ["--no-such-option"]])
def test_one_command_app_behaves_like_the_full_app(name, args):
    full = runner.invoke(app, [name, *args])
    alone = runner.invoke(build_app(name), [name, *args])
    assert (alone.exit_code, alone.stdout, alone.stderr) == (full.exit_code, full.stdout, full.stderr)
    assert full.exit_code == (0 if args == ["--help"] else 2)


def test_top_level_help_lists_every_command():
    res = runner.invoke(build_app(), ["--help"])
    assert res.exit_code == 0
    for name in command_names():
        assert name in res.stdout


def _run_main(
    args: list[str], watch: tuple[str, ...] = HEAVY, env: dict[str, str] | None = None
) -> tuple[int, str, list[str], str | None]:
    """`autotune ARGS` through `main` in a fresh interpreter: (exit code, stdout, the modules of `watch` it
    imported, its OPENBLAS_NUM_THREADS at the end)."""
    code = (
        "import json, os, sys\n"
        "from autotune.cli import main\n"
        f"sys.argv = ['autotune', *{args!r}]\n"
        "try:\n    main(fast_exit=False)\n    rc = 0\nexcept SystemExit as e:\n    rc = e.code or 0\n"
        f"heavy = [m for m in {watch!r} if m in sys.modules]\n"
        "blas = os.environ.get('OPENBLAS_NUM_THREADS')\n"
        "print(json.dumps({'rc': rc, 'heavy': heavy, 'blas': blas}), file=sys.stderr)\n"
    )
    environ = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"} | (env or {})
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=environ)
    status = json.loads(proc.stderr.strip().splitlines()[-1])
    return status["rc"], proc.stdout, status["heavy"], status["blas"]


def _criteo_log(path: Path, rows: int, bad_line: int | None = None) -> None:
    lines = []
    for q in range(rows):
        cats = [f"{(q * (j + 1)) % (j + 5):x}" for j in range(26)]
        lines.append("\t".join([str(q % 2), *[str(q % 7)] * 13, *cats]))
    if bad_line is not None:
        lines[bad_line] = "1\t2\t3"
    path.write_text("\n".join(lines) + "\n")


def test_fast_path_imports_no_duckdb_and_no_search_stack(tmp_path):
    log = tmp_path / "day.tsv"
    _criteo_log(log, 200)
    rc, out, heavy, _ = _run_main(["analyze", str(log), "--format", "criteo", "--out", str(tmp_path / "p"), "--json"])
    assert rc == 0
    got = json.loads(out)
    assert got["rows_read"] == 200 and got["rows_skipped"] == 0
    assert json.loads((tmp_path / "p" / "profile.json").read_text())["source"]["parser"] == "polars"
    assert heavy == []


def test_hash_rows_need_neither_pyarrow_compute_nor_numpy_ma_and_blas_runs_one_thread(tmp_path):
    # the benchmark's case: a model gives every table's rows, so ids are hashed (no integer or sort test)
    log = tmp_path / "day.tsv"
    _criteo_log(log, 200)
    model = tmp_path / "model.toml"
    model.write_text("".join(f'[[tables]]\nname = "C{i}"\nrows = 1000\ndim = 16\n\n' for i in range(1, 27)))
    args = ["analyze", str(log), "--format", "criteo", "--model", str(model), "--out", str(tmp_path / "p"), "--json"]
    watch = (*HEAVY, "pyarrow.compute", "numpy.ma")
    rc, out, heavy, blas = _run_main(args, watch)
    assert rc == 0 and heavy == [] and blas == "1"
    got = json.loads(out)
    assert [t["row_map"] for t in got["tables"]] == ["hash"] * 26
    assert sum(t["accesses"] for t in got["tables"]) == 200 * 26  # every cell of the log is an id
    # a user's own setting stands
    rc, _, _, blas = _run_main(args, watch, env={"OPENBLAS_NUM_THREADS": "3"})
    assert rc == 0 and blas == "3"


def test_the_parse_starts_before_numpy_and_pyarrow_load(tmp_path):
    # with the background import turned off, nothing before the Polars parse may need numpy or pyarrow: their
    # import (about 0.1 s) then overlaps the parse (analytics.pipeline.STATISTICS_STACK)
    log = tmp_path / "day.tsv"
    _criteo_log(log, 100)
    args = ["analyze", str(log), "--format", "criteo", "--out", str(tmp_path / "p"), "--json"]
    code = (
        "import json, sys\n"
        "import analytics.fast_text as ft\n"
        "import analytics.pipeline as pipeline\n"
        "from autotune.cli import main\n"
        "pipeline.STATISTICS_STACK = ()\n"
        "heavy = ('numpy', 'pyarrow', 'pyarrow.parquet', 'analytics.counting', 'autotune.workload')\n"
        "seen, read_one = [], ft._read_one\n"
        "def spy(*a, **k):\n"
        "    seen.append([m for m in heavy if m in sys.modules])\n"
        "    return read_one(*a, **k)\n"
        "ft._read_one = spy\n"
        f"sys.argv = ['autotune', *{args!r}]\n"
        "try:\n    main(fast_exit=False)\nexcept SystemExit:\n    pass\n"
        "print(json.dumps(seen), file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert json.loads(proc.stdout)["rows_read"] == 100
    assert json.loads(proc.stderr.strip().splitlines()[-1]) == [[]]  # one parse, nothing heavy loaded before it


def test_duckdb_path_imports_duckdb_when_it_needs_it(tmp_path):
    log = tmp_path / "day.tsv"
    _criteo_log(log, 50, bad_line=7)  # a short line: not provably clean, so DuckDB skips and locates it
    rc, out, heavy, _ = _run_main(["analyze", str(log), "--format", "criteo", "--out", str(tmp_path / "p"), "--json"])
    assert rc == 0
    got = json.loads(out)
    assert (got["rows_read"], got["rows_skipped"]) == (49, 1)
    assert got["skipped_examples"][0].startswith(f"{log}:8: ")
    assert "duckdb" in heavy and not {"optuna", "matplotlib", "autotune.search", "autotune.model"} & set(heavy)


def _console_script(args: list[str]) -> subprocess.CompletedProcess[str]:
    """`autotune ARGS` as the console script runs it: `main()` with its fast exit."""
    code = f"import sys\nfrom autotune.cli import main\nsys.argv = ['autotune', *{args!r}]\nmain()\n"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_fast_exit_keeps_the_exit_status_and_every_byte_of_output(tmp_path):
    log = tmp_path / "day.tsv"
    _criteo_log(log, 300)
    ok = _console_script(["analyze", str(log), "--format", "criteo", "--out", str(tmp_path / "p"), "--json"])
    assert ok.returncode == 0
    got = json.loads(ok.stdout)  # the whole JSON object arrived before the process ended
    assert got["rows_read"] == 300 and len(got["tables"]) == 26
    assert json.loads((tmp_path / "p" / "profile.json").read_text())["queries"] == 300
    bad = _console_script(["analyze", str(tmp_path / "missing.tsv"), "--json"])
    assert (bad.returncode, bad.stdout) == (2, "")
    assert bad.stderr == f"error: {tmp_path / 'missing.tsv'}: no such file or folder\n"
    usage = _console_script(["analyze", "--no-such-option"])
    assert (usage.returncode, usage.stdout) == (2, "")
    assert usage.stderr == "error: no such option: --no-such-option (see autotune analyze --help)\n"


def test_no_garbage_collection_during_start_up_and_collection_during_the_work(tmp_path):
    log = tmp_path / "day.tsv"
    _criteo_log(log, 50)
    args = ["analyze", str(log), "--format", "criteo", "--out", str(tmp_path / "p"), "--json"]
    code = (
        "import functools, gc, json, sys\n"
        "import analytics\n"
        "import autotune.commands.analyze as cmd\n"
        "from autotune.cli import main\n"
        "command, work = cmd.analyze_command, analytics.analyze\n"
        "@functools.wraps(command)\n"
        "def spy_command(*a, **k):\n"
        "    print(json.dumps({'command starts, gc on': gc.isenabled()}), file=sys.stderr)\n"
        "    return command(*a, **k)\n"
        "def spy_work(*a, **k):\n"
        "    print(json.dumps({'work starts, gc on': gc.isenabled()}), file=sys.stderr)\n"
        "    return work(*a, **k)\n"
        "cmd.analyze_command, analytics.analyze = spy_command, spy_work\n"
        f"sys.argv = ['autotune', *{args!r}]\n"
        "main()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and json.loads(proc.stdout)["rows_read"] == 50
    seen = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    assert seen == [{"command starts, gc on": False}, {"work starts, gc on": True}]


def test_exit_status_follows_python():
    from autotune.cli import exit_status

    assert [exit_status(None), exit_status(0), exit_status(2), exit_status(256 + 3)] == [0, 0, 2, 3]
    assert exit_status("a message") == 1


def test_bad_memory_limit_is_one_clear_line(tmp_path):
    log = tmp_path / "day.tsv"
    _criteo_log(log, 20)
    res = runner.invoke(app, ["analyze", str(log), "--memory-limit", "lots", "--out", str(tmp_path / "p")])
    assert res.exit_code == 2
    assert res.stderr.startswith("error: --memory-limit 'lots': not a size DuckDB accepts")
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "p").exists()
