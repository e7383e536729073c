"""Replay fidelity on a variable-length bag table: an actual log's batches vs batches drawn from its profile.

Drawn batches (`autotune.replay.batches`) give every bag floor or ceil of the table's mean pooling factor: the
profile keeps only the mean and the largest bag, not the distribution of bag lengths. A real log has many
lengths, and replay's pooling kernel (`autotune.replay.kernels.segment_sum`) sums the bags of one length at a
time, so the same mapping on the same table runs slower on the log than on the drawn batches. This script
measures that: one table, `--pooling` ids per query on average drawn from 1 + Poisson(pooling - 1) (synth's
"poisson" bag law), profiled by `analyze`, and the same GM mapping on one core replayed both ways, in
alternating rounds. It prints the distinct bag lengths per batch, the two medians and their ratio.

    .venv/bin/python benchmarks/replay_bag_lengths.py [--queries 40000] [--batch-size 512] [--rounds 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from autotune.hwload import load_hardware
from autotune.model.mapping import Mapping, TableMapping
from autotune.replay import prepare, replay
from autotune.workload import load_profile


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--queries", type=int, default=40_000, help="queries in the log")
    ap.add_argument("--rows", type=int, default=200_000, help="rows of the table")
    ap.add_argument("--dim", type=int, default=64, help="embedding dim")
    ap.add_argument("--pooling", type=float, default=8.0, help="mean bag length (1 + Poisson(pooling - 1))")
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--batches", type=int, default=20, help="timed batches per replay")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (drawn, log) per figure")
    ap.add_argument("--hw", default="cpu", help="hardware profile of the prediction (default: calibrated cpu; 1 core)")
    a = ap.parse_args()

    hw = load_hardware(a.hw)
    hw = dataclasses.replace(hw, core_types=(dataclasses.replace(hw.lookup_cores, count=1),))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        spec = root / "spec.toml"
        spec.write_text(
            f'[[tables]]\nname = "C1"\nrows = {a.rows}\ndim = {a.dim}\npooling = {a.pooling}\nbag = "poisson"\n'
        )
        cli = [sys.executable, "-m", "autotune"]
        made = json.loads(
            subprocess.run(
                [*cli, "synth", str(root / "logs"), "--spec", str(spec), "-n", str(a.queries), "--json"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        log = Path(made["log"])
        how = ["--format", made["format"], "--model", made["model"], "--row-map", made["row_map"]]
        subprocess.run(
            [*cli, "analyze", str(log), *how, "--out", str(root / "profile")], check=True, capture_output=True
        )
        prof = load_profile(root / "profile")
        m = Mapping(tables=(TableMapping("C1", placement=((0,),)),))
        n = a.batches + 1
        drawn = prepare(prof, a.batch_size, n, seed=0)
        logged = prepare(prof, a.batch_size, n, logs=[log])
        for name, data in (("drawn", drawn), ("log", logged)):
            kinds = [np.unique(np.diff(b[0].offsets)).size for b in data.batches]
            print(f"{name}: {np.median(kinds):.0f} distinct bag lengths per batch (median over batches)")
        meas: dict[str, list[float]] = {"drawn": [], "log": []}
        pred = 0.0
        for _ in range(a.rounds):
            for name, data in (("drawn", drawn), ("log", logged)):
                logs = [log] if name == "log" else None
                r = replay(prof, hw, m, a.batch_size, a.batches, 1, data=data, logs=logs)
                meas[name].append(r.measured_latency_s)
                pred = r.prediction.latency_s
        d, g = float(np.median(meas["drawn"])), float(np.median(meas["log"]))
        print(f"measured median per batch of {a.batch_size}: drawn {d * 1e6:,.1f} µs, log {g * 1e6:,.1f} µs")
        print(f"predicted (the same for both: the model reads the mean pooling) {pred * 1e6:,.1f} µs on {hw.name}")
        print(f"log / drawn = {g / d:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
