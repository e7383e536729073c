"""PNG plots of a profile (`--plots`): the coverage curve and the reuse-frequency histogram per table.

matplotlib is imported here only, with the Agg backend, so analysing without plots never pays for it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from autotune.workload import REUSE_BINS, WorkloadProfile

BIN_LABELS = ["1", "2", *(f"≤{2**i}" for i in range(2, REUSE_BINS - 1)), ">32768"]
LEGEND_MAX = 12


def write_plots(out_dir: Path, profile: WorkloadProfile) -> list[Path]:
    """Write plots/coverage.png and plots/frequency.png under `out_dir`; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = out_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    legend = len(profile.tables) <= LEGEND_MAX
    sampled = " (sampled estimate)" if profile.sample_fraction else ""

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for t in profile.tables:
        h, share = np.asarray(t.rank_curve, dtype=float).T
        if t.distinct > 0:
            ax.plot(np.maximum(h, 1) / t.distinct * 100, share, label=t.name)
    ax.set_xscale("log")
    ax.set_xlabel("hottest ids (% of the table's distinct ids)")
    ax.set_ylabel("share of look-ups served")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"Coverage: {profile.name}{sampled}")
    ax.grid(True, which="both", alpha=0.3)
    if legend:
        ax.legend(fontsize="small")
    coverage = plots / "coverage.png"
    fig.tight_layout()
    fig.savefig(coverage, dpi=110)
    plt.close(fig)

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5), sharex=True)
    x = np.arange(REUSE_BINS)
    for t in profile.tables:
        ax1.plot(x, t.reuse_rows, marker="o", ms=3, label=t.name)
        ax2.plot(x, t.reuse_accesses, marker="o", ms=3, label=t.name)
    for ax, title in ((ax1, "share of distinct ids"), (ax2, "share of look-ups")):
        ax.set_xticks(x, BIN_LABELS, rotation=60, fontsize="small")
        ax.set_xlabel("look-ups per id (power-of-two bins)")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
    if legend:
        ax2.legend(fontsize="small")
    fig.suptitle(f"Reuse frequency: {profile.name}{sampled}")
    frequency = plots / "frequency.png"
    fig.tight_layout()
    fig.savefig(frequency, dpi=110)
    plt.close(fig)
    return [coverage, frequency]
