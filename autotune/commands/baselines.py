"""`autotune baselines`: the mappings to beat and a lower bound, all from the same latency model."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import typer
from rich.table import Table

from autotune import atomic
from autotune.commands.evaluate import HW_HELP, PROFILE_HELP, check_batch, load_inputs, us
from autotune.console import emit_json, err, out
from autotune.errors import handle_errors
from autotune.model.baselines import BASELINES, all_baselines
from autotune.model.bounds import LowerBound, lower_bound
from autotune.model.context import ModelContext
from autotune.model.evaluate import predict
from autotune.model.mapping import DEFAULT_BATCH_SIZE, save_mapping

#: What --write-dir holds: one mapping file per baseline (default-gather is always among them).
WRITE_DIR_OUTPUT = atomic.OutputKind(
    "baselines", "--write-dir", f"{BASELINES[0]}.json", tuple(f"{name}.json" for name in BASELINES)
)
#: baselines takes no mapping, so unlike evaluate's --batch-size there is none to take a batch size from.
BATCH_HELP = f"Queries per batch (default {DEFAULT_BATCH_SIZE})."


def register(app: typer.Typer) -> None:
    @app.command("baselines")
    @handle_errors
    def baselines_command(
        profile: Path = typer.Option(..., "--profile", "-p", help=PROFILE_HELP),
        hw: str = typer.Option(..., "--hw", help=HW_HELP),
        batch_size: int | None = typer.Option(None, "--batch-size", "-b", help=BATCH_HELP),
        write_dir: Path | None = typer.Option(
            None,
            "--write-dir",
            help="Write each baseline as a mapping file <name>.json (with its placement) into this folder. A previous "
            "--write-dir (holding only those files) is replaced; any other non-empty folder is refused.",
        ),
        json_out: bool = typer.Option(False, "--json", help="Print lower bound and baselines as JSON on stdout."),
    ) -> None:
        """Predict the latency of the standard mappings and a lower bound no mapping can beat.

        Baselines: default-gather (every table GM, batch split over all cores), table-wise (round-robin),
        row-wise (every table split by rows over all cores), greedy packers keyed by size, look-ups and
        dim x pooling x log10(rows), and HugeCTR's frequency threshold. The lower bound spreads the
        cheapest feasible work of every table perfectly over the cores (see docs/latency-model.md).
        """
        b = check_batch(batch_size)
        if write_dir is not None:
            atomic.check_output_dir(write_dir, WRITE_DIR_OUTPUT)
        prof, hwp = load_inputs(profile, hw)
        ctx = ModelContext(prof, hwp, b)
        err.print(f"evaluating baselines for {len(prof.tables)} tables on {hwp.name} ({hwp.n_cores} cores), batch {b}")
        preds = {name: predict(prof, hwp, m, b, ctx=ctx) for name, m in all_baselines(ctx).items()}
        lb = lower_bound(ctx)
        if write_dir is not None:
            with atomic.atomic_dir(write_dir, WRITE_DIR_OUTPUT) as tmp:
                for name, p in preds.items():
                    save_mapping(tmp / f"{name}.json", replace(p.mapping, predicted_latency_s=p.latency_s))
            err.print(f"wrote {len(preds)} mapping files to {write_dir}")
        rows = [
            {
                "name": name,
                "latency_s": p.latency_s,
                "feasible": p.feasible,
                "reason": p.reason,
                "busiest_core_s": p.breakdown["busiest_core_s"],
                "imbalance": p.breakdown["imbalance"],
                "bound": p.breakdown["bound"],
                "vs_lower_bound": p.latency_s / lb.latency_s,
            }
            for name, p in preds.items()
        ]
        if json_out:
            emit_json(
                {
                    "hardware": hwp.name,
                    "batch_size": b,
                    "profile": prof.name,
                    "lower_bound_s": lb.latency_s,
                    "lower_bound": {
                        "average_work_s": lb.average_work_s,
                        "largest_task_s": lb.largest_task_s,
                        "gm_bound_s": lb.gm_bound_s,
                        "l2_bound_s": lb.l2_bound_s,
                        "span_work_s": lb.span_work_s,
                        "combined_s": lb.combined_s,
                        "launch_s": hwp.overheads.launch_s,  # added to the largest of the others
                    },
                    "baselines": rows,
                }
            )
            return
        table = Table(title=f"baselines on {hwp.name}, batch {b}")
        for col in ("baseline", "latency", "x bound", "imbalance", "bound by", "feasible"):
            left = col in ("baseline", "bound by", "feasible")
            table.add_column(col, justify="left" if left else "right", no_wrap=True)
        for r in sorted(rows, key=lambda r: r["latency_s"]):
            table.add_row(
                r["name"],
                us(r["latency_s"]),
                f"{r['vs_lower_bound']:.2f}",
                f"{r['imbalance']:.2f}",
                r["bound"],
                "yes" if r["feasible"] else "no",
            )
        out.print(table)
        for r in rows:
            if not r["feasible"]:
                out.print(f"{r['name']} is infeasible: {r['reason']}")
        out.print(lower_bound_text(lb, hwp.overheads.launch_s), soft_wrap=True, highlight=False)


def lower_bound_text(lb: LowerBound, launch_s: float) -> str:
    """Every term of the bound with its name: the launch plus the largest of the six (docs/latency-model.md)."""
    terms = (
        ("work spread over all cores", lb.average_work_s),
        ("largest task", lb.largest_task_s),
        ("work of configurations no slower than the busiest core", lb.span_work_s),
        ("chip GM", lb.gm_bound_s),
        ("chip L2", lb.l2_bound_s),
        ("work, GM and L2 time weighed together with the merge", lb.combined_s),
    )
    return f"lower bound {us(lb.latency_s)} = launch {us(launch_s)} + the largest of: " + ", ".join(
        f"{name} {us(v)}" for name, v in terms
    )
