"""Is this machine busy? Every figure calibrate and replay measure is a time, and other jobs stretch it."""

from __future__ import annotations

#: One-minute load average from which calibrate warns that other jobs will inflate its figures.
BUSY_LOAD = 0.5


CALIBRATE_AGAIN = "stop them and run `autotune calibrate` again for a profile replay can trust"


def busy_warning(load1: float, cpus: int, remedy: str = CALIBRATE_AGAIN) -> str | None:
    """The warning to print when other jobs already run on this machine (None when it is idle enough).

    Every figure is a time: another job on the same CPUs stretches it. Measured on a 2-CPU VM with two other
    jobs running (load average about 2): streaming 3.2x slower, DRAM latency 3.3x, the effective last-level
    cache 60x too large, and replay's predictions off by 2-3x on streaming mappings.
    """
    if load1 < BUSY_LOAD:
        return None
    return (
        f"warning: the load average is {load1:.2f} on {cpus} CPUs: other jobs are running, and they inflate every "
        f"time measured here; {remedy}"
    )
