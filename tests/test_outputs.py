"""Output folders: only an empty folder or a previous output of the same command is replaced; anything else is
refused with one line before any work, and a failed swap leaves the old folder and no temporary behind."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
from model_helpers import workload, zipf_table
from typer.testing import CliRunner

from autotune import atomic
from autotune.atomic import OutputKind, atomic_dir, check_output_dir
from autotune.cli import app
from autotune.errors import UserError
from autotune.model.baselines import BASELINES
from autotune.outputs import PROFILE_OUTPUT

runner = CliRunner()
KIND = OutputKind("demo", "--out", "record.json", ("record.json", "data.bin", "plots/*.png"))


def _one_line_error(res, *parts: str) -> None:
    assert res.exit_code != 0
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1, res.stderr
    assert "Traceback" not in res.stderr
    for part in parts:
        assert part in res.stderr, res.stderr


def _tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --- atomic_dir and check_output_dir on their own -----------------------------------------------------------


def test_previous_output_and_empty_folder_are_replaced(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "plots").mkdir(parents=True)
    (out / "record.json").write_text("old")
    (out / "data.bin").write_text("old")
    (out / "plots" / "a.png").write_text("old")
    with atomic_dir(out, KIND) as tmp:
        (tmp / "record.json").write_text("new")
    assert _tree(out) == {"record.json": b"new"}
    empty = tmp_path / "empty"
    empty.mkdir()
    with atomic_dir(empty, KIND) as tmp:
        (tmp / "data.bin").write_text("x")
    assert _tree(empty) == {"data.bin": b"x"}
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("files", "shown"),
    [
        ({"record.json": "r", "notes.txt": "precious"}, "it holds notes.txt"),
        ({"record.json": "r", "plots/a.png": "p", "plots/mine.txt": "precious"}, "it holds plots/mine.txt"),
        ({"record.json": "r", "sub/data.bin": "precious"}, "it holds sub/"),
        ({"data.bin": "no marker"}, "it holds no record.json"),
        ({f"n{i}.txt": "x" for i in range(6)}, "it holds n0.txt, n1.txt, n2.txt and more"),
    ],
)
def test_a_folder_holding_anything_else_is_refused_untouched(tmp_path: Path, files: dict, shown: str) -> None:
    out = tmp_path / "out"
    for rel, text in files.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text)
    before = _tree(out)
    entered = []
    with pytest.raises(UserError) as exc, atomic_dir(out, KIND):
        entered.append(True)
    assert not entered  # refused before the caller's work
    assert exc.value.message == (
        f"{out} exists and is not a previous `autotune demo` output ({shown}); choose another --out or remove it"
    )
    assert _tree(out) == before and _leftovers(tmp_path) == []


def test_a_file_a_link_and_dot_are_refused(tmp_path: Path) -> None:
    f = tmp_path / "afile"
    f.write_text("keep")
    with pytest.raises(UserError, match="afile exists and is a file, not a previous `autotune demo` output"):
        check_output_dir(f, KIND)
    assert f.read_text() == "keep"
    link = tmp_path / "link"
    link.symlink_to(tmp_path)
    with pytest.raises(UserError, match="is a symbolic link"):
        check_output_dir(link, KIND)
    for name in (".", "..", str(tmp_path / "x" / "..")):
        with pytest.raises(UserError, match="name the output folder itself"):
            check_output_dir(Path(name), KIND)
    with pytest.raises(UserError, match=r"cannot create its folder, .*afile is a file"):
        check_output_dir(f / "sub" / "out", KIND)


def test_a_folder_changed_during_the_work_is_refused_at_the_swap(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(UserError, match=r"it holds notes\.txt"), atomic_dir(out, KIND) as tmp:
        (tmp / "record.json").write_text("new")
        out.mkdir()
        (out / "notes.txt").write_text("written meanwhile")
    assert _tree(out) == {"notes.txt": b"written meanwhile"} and _leftovers(tmp_path) == []


def test_a_failed_swap_is_one_error_and_leaves_the_old_output(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "record.json").write_text("old")
    real = os.replace

    def busy(src, dst):  # the new folder cannot be moved in (as for `--name ..`: EBUSY)
        if Path(src).name.endswith(".tmp"):
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))
        return real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", busy)
    with pytest.raises(UserError) as exc, atomic_dir(out, KIND) as tmp:
        (tmp / "record.json").write_text("new")
    assert exc.value.message == (
        f"{out}: cannot put the new output in place ({os.strerror(errno.EBUSY)}); choose another --out"
    )
    assert _tree(out) == {"record.json": b"old"} and _leftovers(tmp_path) == []


def test_profile_output_names_what_profile_io_writes() -> None:
    from analytics.profile_io import COUNTS_FILE, PROFILE_FILE

    assert PROFILE_OUTPUT.marker == PROFILE_FILE
    assert PROFILE_OUTPUT.allows((COUNTS_FILE,), is_dir=False) and PROFILE_OUTPUT.allows(("plots",), is_dir=True)
    assert PROFILE_OUTPUT.allows(("plots", "coverage.png"), is_dir=False)
    assert not PROFILE_OUTPUT.allows(("plots", "holiday.png"), is_dir=False)  # a user's picture is not ours


# --- the commands ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synth output (tiny preset, long format) to analyse."""
    d = tmp_path_factory.mktemp("outputs") / "s"
    res = runner.invoke(app, ["synth", str(d), "--preset", "tiny", "--queries", "200"])
    assert res.exit_code == 0, res.stderr
    return d


def analyze(logs: Path, *extra: str):
    return runner.invoke(
        app,
        ["analyze", str(logs / "lookups.parquet"), "--format", "long", "--model", str(logs / "model.toml"),
         "--row-map", "identity", *extra],
    )  # fmt: skip


def test_analyze_refuses_a_user_folder_the_input_folder_and_a_file(logs: Path, tmp_path: Path, monkeypatch) -> None:
    import analytics.pipeline as pipeline

    def no_work(*_a, **_k):
        raise AssertionError("the logs were read before the output was checked")

    user = tmp_path / "userdir"
    user.mkdir()
    (user / "notes.txt").write_text("precious")
    afile = tmp_path / "afile"
    afile.write_text("keep")
    inputs = _tree(logs)
    with monkeypatch.context() as mp:
        mp.setattr(pipeline.sources, "expand", no_work)
        _one_line_error(analyze(logs, "--out", str(user)), f"{user} exists", "(it holds notes.txt)", "another --out")
        _one_line_error(
            analyze(logs, "--out", str(logs)), "not a previous `autotune analyze` output", "lookups.parquet"
        )
        _one_line_error(analyze(logs, "--out", str(afile)), "exists and is a file")
    assert _tree(user) == {"notes.txt": b"precious"} and _tree(logs) == inputs and afile.read_text() == "keep"
    # a previous profile, with its plots, is replaced
    out = tmp_path / "p"
    assert analyze(logs, "--out", str(out), "--plots").exit_code == 0
    assert analyze(logs, "--out", str(out)).exit_code == 0
    assert sorted(_tree(out)) == ["counts.parquet", "profile.json"]


@pytest.mark.parametrize("name", ["../important", "..", ".", "a/b", "x y", ""])
def test_analyze_name_must_be_a_plain_name(logs: Path, tmp_path: Path, monkeypatch, name: str) -> None:
    monkeypatch.chdir(tmp_path)
    important = tmp_path / "runs" / "important"
    important.mkdir(parents=True)
    (important / "keep.txt").write_text("keep")
    _one_line_error(analyze(logs, "--name", name), f"--name {name!r}: give a plain name")
    assert _tree(tmp_path / "runs") == {"important/keep.txt": b"keep"}  # nothing written, nothing left behind


def test_analyze_plain_name(logs: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    res = analyze(logs, "--name", "tiny-v1.2_a")
    assert res.exit_code == 0, res.stderr
    assert (tmp_path / "runs" / "profiles" / "tiny-v1.2_a" / "profile.json").is_file()


def test_synth_rerun_refuses_a_folder_with_user_files(tmp_path: Path) -> None:
    out = tmp_path / "s"
    args = ["synth", str(out), "--tables", "1", "--rows", "9", "--queries", "10", "--format", "long"]
    assert runner.invoke(app, args).exit_code == 0
    (out / "mine.txt").write_text("precious")
    _one_line_error(runner.invoke(app, args), "not a previous `autotune synth` output (it holds mine.txt)", "OUT")
    assert (out / "mine.txt").read_text() == "precious"
    afile = tmp_path / "afile"
    afile.write_text("keep")
    _one_line_error(runner.invoke(app, ["synth", str(afile), *args[2:]]), "exists and is a file")
    assert afile.read_text() == "keep"


def test_baselines_write_dir(tmp_path: Path) -> None:
    prof = tmp_path / "profile"
    prof.mkdir()
    (prof / "profile.json").write_text(json.dumps(workload(zipf_table("C1", rows=50), name="one").to_dict()))
    base = ["baselines", "--profile", str(prof), "--hw", "ascend910b", "--json", "--write-dir"]
    user = tmp_path / "userdir"
    user.mkdir()
    (user / "notes.txt").write_text("precious")
    _one_line_error(runner.invoke(app, [*base, str(user)]), "(it holds notes.txt)", "choose another --write-dir")
    afile = tmp_path / "afile"
    afile.write_text("keep")
    _one_line_error(runner.invoke(app, [*base, str(afile)]), "exists and is a file")
    assert _tree(user) == {"notes.txt": b"precious"} and afile.read_text() == "keep"
    out = tmp_path / "b"
    for _ in range(2):  # a previous --write-dir is replaced
        res = runner.invoke(app, [*base, str(out)])
        assert res.exit_code == 0, res.stderr
    assert sorted(_tree(out)) == sorted(f"{name}.json" for name in BASELINES)


def test_baselines_help_names_no_mapping() -> None:
    res = runner.invoke(app, ["baselines", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    assert "mapping's batch_size" not in res.stdout and "Queries per batch (default 512)" in res.stdout


@pytest.mark.parametrize(
    ("argv", "module", "work", "example"),
    [
        (["evaluate", "-p", "prof", "--hw", "ascend910b", "-m", "m.json", "--write"], "autotune.commands.evaluate",
         "load_inputs", "mapping.json"),
        (["calibrate", "--out"], "autotune.calibrate", "measure", "cpu.toml"),
    ],
)  # fmt: skip
def test_an_output_file_that_is_a_folder_or_under_a_file_is_refused_before_any_work(
    tmp_path: Path, monkeypatch, argv: list[str], module: str, work: str, example: str
) -> None:
    import importlib

    def no_work(*_a, **_k):
        raise AssertionError("work done before the output path was checked")

    monkeypatch.setattr(importlib.import_module(module), work, no_work)
    option = argv[-1]
    folder = tmp_path / "b"
    folder.mkdir()
    afile = tmp_path / "afile"
    afile.write_text("keep")
    for target, message in (
        (folder, f"{option} {folder}: is a folder; give a file name (e.g. {folder / example})"),
        (afile / "x", f"{option} {afile / 'x'}: cannot create its folder, {afile} is a file"),
    ):
        res = runner.invoke(app, [*argv, str(target)])
        _one_line_error(res, f"error: {message}")
        assert res.exit_code == 2
    assert list(folder.iterdir()) == [] and afile.read_text() == "keep"


def test_a_folder_that_cannot_be_made_beside_the_output_is_one_line(tmp_path, monkeypatch):
    import tempfile

    out = tmp_path / "out"
    out.mkdir()  # an existing empty folder: replaceable, but its new contents are built beside it

    def denied(*_args, **_kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkdtemp", denied)
    refused = pytest.raises(UserError, match=r"--out .*out: cannot create a folder beside it \(Permission denied\)")
    with refused, atomic_dir(out, KIND):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
