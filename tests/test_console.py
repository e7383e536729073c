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


def test_ticker_prints_at_most_once_per_period_and_not_in_the_first(monkeypatch):
    clock = iter([0.0, 4.0, 10.5, 12.0, 21.0, 30.0])  # made at 0, then five ticks
    monkeypatch.setattr(console.time, "monotonic", lambda: next(clock))
    pipe = _Pipe()
    monkeypatch.setattr(console.sys, "stderr", pipe)
    tick = console.ticker("search", every_s=10.0)
    for n in range(1, 6):
        tick(f"{n} trials")
    # 4.0: too early; 10.5: printed; 12.0: 1.5 s after it; 21.0: 10.5 s after it; 30.0: 9 s after that
    assert pipe.getvalue() == "search: 2 trials\nsearch: 4 trials\n"
