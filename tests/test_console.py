"""`autotune.console.status` off a terminal: silent for quick steps, one plain line per later update."""

from __future__ import annotations

import io

import autotune.console as console


class _Pipe(io.StringIO):
    def isatty(self) -> bool:
        return False


def test_status_off_a_terminal_prints_only_updates_of_a_step_that_has_run_a_while(monkeypatch):
    clock = iter([100.0, 100.2, 101.5, 103.0])  # step begins, then three updates
    monkeypatch.setattr(console.time, "monotonic", lambda: next(clock))
    pipe = _Pipe()
    monkeypatch.setattr(console.sys, "stderr", pipe)
    with console.status("analysing logs") as update:
        update("parsing")  # 0.2 s in: bad input is found this early, and its error stays the only line
        update("counting")  # 1.5 s in
        update("writing")  # 3.0 s in
    assert pipe.getvalue() == "analysing logs: counting\nanalysing logs: writing\n"


def test_consoles_are_made_on_first_use_and_kept():
    err = console.err
    assert err is console.err and err.stderr
    assert not console.out.stderr
