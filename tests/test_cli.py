"""The command line's own behaviour: one-line usage errors (CliRunner and the console entry point alike),
`--version`, and help that reads as flowing paragraphs without a `<bool>` type on flags."""

from __future__ import annotations

import itertools
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autotune.cli import app, build_app, command_names, flowing

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent
BOX = "╭╰│─"  # rich's panel borders: a usage error must show none of them

# (arguments, the one line on stderr: written out by hand from click's message and the command path)
USAGE_ERRORS = [
    (
        ["synth", "o", "--preset", "tiny", "--queries", "0"],
        "error: invalid value for '--queries' / '-n': Input should be greater than or equal to 1 "
        "(see autotune synth --help)",
    ),
    (
        ["synth", "o", "--preset", "tiny", "--queries", "abc"],
        "error: invalid value for '--queries' / '-n': Input should be a valid integer, unable to parse string "
        "as an integer (see autotune synth --help)",
    ),
    (
        ["synth", "o", "--preset", "tiny", "--seed", "-1"],
        "error: invalid value for '--seed': Input should be greater than or equal to 0 (see autotune synth --help)",
    ),
    (["export", "r2"], "error: missing option '--format' / '-f' (see autotune export --help)"),
    (
        ["search", "--hw", "x", "--n-trials", "abc"],
        "error: invalid value for '--n-trials': Input should be a valid integer, unable to parse string as an "
        "integer (see autotune search --help)",
    ),
    (["show"], "error: missing argument 'run' (see autotune show --help)"),
    (["foo"], "error: no such command 'foo' (see autotune --help)"),
    (["--bogus"], "error: no such option: --bogus (see autotune --help)"),
    (["hw", "show"], "error: missing argument 'name' (see autotune hw show --help)"),
    (["hw", "list", "--bogus"], "error: no such option: --bogus (see autotune hw list --help)"),
]


@pytest.mark.parametrize(("args", "line"), USAGE_ERRORS, ids=[" ".join(a) for a, _ in USAGE_ERRORS])
def test_usage_error_is_one_line_with_exit_status_2(args: list[str], line: str, tmp_path: Path) -> None:
    res = runner.invoke(app, [a if a != "o" else str(tmp_path / "o") for a in args])
    assert res.exit_code == 2
    assert res.stdout == ""
    assert res.stderr.replace(str(tmp_path / "o"), "o") == line + "\n"
    assert not any(c in res.stderr for c in BOX)
    assert not (tmp_path / "o").exists()  # refused before the command ran


def test_one_command_app_gives_the_same_line() -> None:
    """`main` builds an app with only the command named (build_app(name)); its errors match the full app's."""
    for args, line in USAGE_ERRORS:
        if args[0] in command_names():
            res = runner.invoke(build_app(args[0]), args)
            assert (res.exit_code, res.stderr) == (2, line + "\n"), args


def test_a_suggestion_stays_on_the_line() -> None:
    res = runner.invoke(app, ["shwo"])
    assert res.exit_code == 2
    assert res.stderr == "error: no such command 'shwo'. Did you mean 'show', 'hw'? (see autotune --help)\n"


def test_no_arguments_still_prints_the_help() -> None:
    res = runner.invoke(app, [])
    assert "Usage: autotune [OPTIONS] COMMAND [ARGS]..." in res.stdout
    assert "error:" not in res.stdout + res.stderr
    res = runner.invoke(app, ["hw"])
    assert "Usage: autotune hw [OPTIONS] COMMAND [ARGS]..." in res.stdout and "list" in res.stdout


def _main(args: list[str]) -> subprocess.CompletedProcess[str]:
    """`autotune ARGS` through the console entry point `main` (with its fast exit) in a fresh interpreter."""
    code = f"import sys\nfrom autotune.cli import main\nsys.argv = ['autotune', *{args!r}]\nmain()\n"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)


@pytest.mark.parametrize(
    ("args", "line"),
    [
        USAGE_ERRORS[3],  # export: one command registered
        USAGE_ERRORS[6],  # an unknown command: every command registered
        (["analyze"], "error: missing argument 'logs' (see autotune analyze --help)"),  # the os._exit path
    ],
)
def test_console_entry_point_prints_the_same_line(args: list[str], line: str) -> None:
    proc = _main(args)
    assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", line + "\n")


def test_version() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    res = runner.invoke(app, ["--version"])
    assert (res.exit_code, res.stdout, res.stderr) == (0, f"autotune {version}\n", "")
    proc = _main(["--version"])
    assert (proc.returncode, proc.stdout) == (0, f"autotune {version}\n")
    assert "--version" in runner.invoke(app, ["--help"]).stdout


HELP_PATHS = [[name] for name in command_names() if name != "hw"] + [["hw"], ["hw", "list"], ["hw", "show"]]


def _description(stdout: str) -> list[str]:
    """The help's text between the usage line and the first panel, one stripped line each."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if "Usage:" in line) + 1
    end = next(i for i, line in enumerate(lines) if line.startswith("╭"))
    return [line.strip() for line in lines[start:end]]


@pytest.mark.parametrize("width", [80, 100])
@pytest.mark.parametrize("path", HELP_PATHS, ids=[" ".join(p) for p in HELP_PATHS])
def test_help_paragraphs_flow(path: list[str], width: int) -> None:
    """Greedy wrapping: a line of a paragraph ends only where the next word would not fit (rich pads the text
    one column each side), so no hard newline of a docstring breaks a sentence early."""
    res = runner.invoke(app, [*path, "--help"], env={"COLUMNS": str(width)})
    assert res.exit_code == 0
    text = _description(res.stdout)
    assert any(text)
    room = width - 2
    for line, after in itertools.pairwise(text):
        if line and after:
            assert len(line) + 1 + len(after.split()[0]) > room, (line, after)


@pytest.mark.parametrize("path", HELP_PATHS, ids=[" ".join(p) for p in HELP_PATHS])
def test_flags_show_no_bool_type(path: list[str]) -> None:
    res = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "120"})
    assert res.exit_code == 0
    assert "<bool>" not in res.stdout
    assert "--help" in res.stdout


def test_options_with_values_keep_their_type() -> None:
    res = runner.invoke(app, ["search", "--help"], env={"COLUMNS": "120"})
    row = next(line for line in res.stdout.splitlines() if "--n-trials" in line)
    assert "<int>" in row
    row = next(line for line in res.stdout.splitlines() if "--json" in line)
    assert "<" not in row


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, None),
        ("", ""),
        ("One line.", "One line."),
        (
            "First\nparagraph.\n\nSecond one\nhard-wrapped\nthrice.",
            "First paragraph.\n\nSecond one hard-wrapped thrice.",
        ),
        ("A\n  \nB", "A\n\nB"),  # a blank line holding spaces still separates paragraphs
        ("Shown\ntext.\n\fHidden\nnotes.", "Shown text.\fHidden\nnotes."),  # after \f: kept as written
    ],
)
def test_flowing(text: str | None, expected: str | None) -> None:
    assert flowing(text) == expected
