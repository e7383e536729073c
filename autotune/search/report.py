"""`report.md` and its plots: the optimisation history and the per-core load of the best mapping beside
the default gather. Plots use matplotlib's Agg backend (no display, no browser)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from autotune import atomic
from autotune.model.context import ModelContext
from autotune.model.evaluate import Prediction
from autotune.search.summary import SLOWEST_TASK_NOTE, pareto_line

if TYPE_CHECKING:
    from autotune.search.driver import SearchOutcome

DEFAULT = "default-gather"


def _us(s: float) -> str:
    return f"{s * 1e6:,.1f} µs"


def plot_history(path: Path, history: list[tuple[int, float, bool]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=110)
    ok = [(n, v * 1e6) for n, v, f in history if f]
    bad = [(n, v * 1e6) for n, v, f in history if not f]
    if bad:
        ax.scatter(*zip(*bad, strict=True), s=8, c="tab:red", alpha=0.4, label="infeasible")
    if ok:
        ax.scatter(*zip(*ok, strict=True), s=8, c="tab:blue", alpha=0.5, label="feasible")
        best, xs, ys = float("inf"), [], []
        for n, v in ok:
            best = min(best, v)
            xs.append(n)
            ys.append(best)
        ax.step(xs, ys, where="post", c="black", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel("predicted latency (µs)")
    ax.set_yscale("log")
    from matplotlib.ticker import LogLocator, ScalarFormatter

    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(ScalarFormatter())
    ax.tick_params(axis="y", which="minor", labelsize=7)
    if ok or bad:  # a search stopped before its first trial has nothing to label
        ax.legend(loc="upper right", fontsize=8)
    ax.set_title("Optimisation history")
    fig.tight_layout()
    _save(fig, path)


def plot_cores(path: Path, best: Prediction, default: Prediction | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(8, 3.5), dpi=110)
    cores = np.arange(len(best.per_core))
    width = 0.42 if default is not None else 0.8
    if default is not None:
        ax.bar(cores - width / 2, [c.time_s * 1e6 for c in default.per_core], width, label=DEFAULT, color="tab:gray")
        ax.bar(cores + width / 2, [c.time_s * 1e6 for c in best.per_core], width, label="tuned", color="tab:blue")
    else:
        ax.bar(cores, [c.time_s * 1e6 for c in best.per_core], width, label="tuned", color="tab:blue")
    ax.set_xlabel("core")
    ax.set_ylabel("busy time per batch (µs)")
    ax.legend(fontsize=8)
    ax.set_title("Per-core load: tuned mapping vs default gather")
    fig.tight_layout()
    _save(fig, path)


def _save(fig: object, path: Path) -> None:
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png")  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
    atomic.write_bytes(path, buf.getvalue())


def write_report(
    run_dir: Path,
    outcome: SearchOutcome,
    base_preds: dict[str, Prediction],
    history: list[tuple[int, float, bool]],
    ctx: ModelContext,
    name: str | None = None,
) -> None:
    """Write report.md and its plots into `run_dir` (a staging folder: `name` is then the run's name)."""
    name = name or run_dir.name
    best = outcome.best
    plot_history(run_dir / "history.png", history)
    plot_cores(run_dir / "cores.png", best, base_preds.get(DEFAULT))
    lines = [
        f"# autotune run `{name}`",
        "",
        f"Workload `{ctx.profile.name}` ({len(ctx.tables)} tables) on `{ctx.hw.name}` "
        f"({ctx.n_cores} look-up cores), batch {ctx.batch_size}; {outcome.n_trials} trials completed "
        f"({outcome.sampler}); best from {outcome.best_from}.",
        "",
        f"- best predicted latency: **{_us(best.latency_s)}** per batch",
        f"- lower bound: {_us(outcome.lower_bound_s)} (gap {best.latency_s / outcome.lower_bound_s - 1:.1%})"
        if outcome.lower_bound_s > 0
        else "- lower bound: n/a",
        f"- bound by: {best.breakdown.get('bound')}; core imbalance (busiest / mean) "
        f"{best.breakdown.get('imbalance', 1.0):.2f}",
    ]
    if outcome.pareto:
        lines.append(f"- {pareto_line(len(outcome.pareto), 'pareto.json')}")
    lines += [
        "",
        "## Baselines (same model)",
        "",
        "| baseline | latency | speed-up of the tuned mapping |",
        "|---|---:|---:|",
    ]
    for name, p in sorted(base_preds.items(), key=lambda kv: kv[1].latency_s):
        sp = f"{p.latency_s / best.latency_s:.2f}x" if p.feasible else f"infeasible: {p.reason}"
        lines.append(f"| {name} | {_us(p.latency_s)} | {sp} |")
    lines += [
        "",
        "## Plots",
        "",
        "![history](history.png)",
        "",
        "![per-core load](cores.png)",
        "",
        "## Tables of the best mapping",
        "",
        "| table | strategy | replicas | shards | sharding | hot rows | dedup | time | slowest task / latency |",
        "|---|---|---:|---:|---|---:|---|---:|---:|",
    ]
    for t in sorted(best.tables, key=lambda t: -t.time_s):
        lines.append(
            f"| {t.name} | {t.strategy} | {t.replicas} | {t.shards} | {t.sharding} | {t.hot_rows} | "
            f"{'yes' if t.dedup else 'no'} | {_us(t.time_s)} | {t.share:.1%} |"
        )
    lines += [
        "",
        f"*{SLOWEST_TASK_NOTE}.*",
        "",
        "`autotune show " + name + "` prints the per-core and per-table tables; "
        "`autotune export " + name + " --format torchrec` writes a TorchRec-style plan.",
        "",
    ]
    atomic.write_text(run_dir / "report.md", "\n".join(lines))
