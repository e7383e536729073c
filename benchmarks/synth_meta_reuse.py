"""Compare the reuse histogram of one synthetic `meta84` batch with Meta's 2021 production-like traces.

Meta's dlrm_datasets statistics (shared/data/meta-dlrm-datasets-stats/locality_stats_2021.txt, first block:
856 tables, one batch of 65,536 queries) bin every unique (table, row) of a batch by how often the batch
reads it, in power-of-two bins (0,1], (1,2], (2,4], ... (32768, inf), as a share of unique rows and as a
share of look-ups. This script generates one batch of the `meta84` preset (optionally with another
exponent, `--alpha`) and prints both histograms side by side with the largest absolute difference.

    .venv/bin/python benchmarks/synth_meta_reuse.py [--alpha 1.1] [--seed 0]
"""

from __future__ import annotations

import argparse
import re
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from autotune.synth import CHUNK_QUERIES, SynthSpec, generate
from autotune.synth_presets import PRESETS

STATS = Path(__file__).resolve().parents[2] / "shared" / "data" / "meta-dlrm-datasets-stats" / "locality_stats_2021.txt"
LABELS = [f"({0 if i == 0 else 2 ** (i - 1)}, {2**i}]" for i in range(16)] + ["(32768+"]


def meta_histograms(path: Path = STATS) -> tuple[list[float], list[float]]:
    """(share of unique rows, share of look-ups) per bin from the first block of a locality_stats file."""
    text = path.read_text()
    block = text.split("\n\n")[0]
    rows_part, acc_part = block.split("Ratio of index distribution")
    pat = re.compile(r"^\((?:\d+, \d+\]|32768\+): ([0-9.]+)$", re.M)
    rows = [float(x) for x in pat.findall(rows_part)]
    acc = [float(x) for x in pat.findall(acc_part)]
    if len(rows) != 17 or len(acc) != 17:
        raise SystemExit(f"{path}: expected 17 bins in each histogram, got {len(rows)} and {len(acc)}")
    return rows, acc


def reuse_histograms(spec: SynthSpec, seed: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(share of unique rows, share of look-ups, mean reads per unique row) of one batch of `spec`."""
    bags = next(generate(spec, CHUNK_QUERIES, seed))
    counts = np.concatenate([np.bincount(b.rows)[np.bincount(b.rows) > 0] for b in bags])
    # Bin i holds counts in (2^(i-1), 2^i]; bin 0 holds count 1; bin 16 everything above 32768.
    bins = np.minimum(np.ceil(np.log2(counts)).astype(int), 16)
    rows = np.bincount(bins, minlength=17) / len(counts)
    acc = np.bincount(bins, weights=counts, minlength=17) / counts.sum()
    return rows, acc, float(counts.mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--alpha", type=float, default=None, help="Zipf exponent for every table (default: the preset's)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    spec = PRESETS["meta84"]
    if args.alpha is not None:
        spec = SynthSpec(spec.name, tuple(replace(t, alpha=args.alpha) for t in spec.tables))
    t0 = time.perf_counter()
    rows, acc, mean = reuse_histograms(spec, args.seed)
    took = time.perf_counter() - t0
    m_rows, m_acc = meta_histograms()
    print(f"meta84, one batch of {CHUNK_QUERIES} queries, alpha {spec.tables[0].alpha}, generated in {took:.1f} s")
    print(f"mean reads per unique row: {mean:.1f} (Meta 2021: 6.9)")
    print(f"{'reads':>16} {'rows ours':>10} {'rows Meta':>10} {'look-ups ours':>14} {'look-ups Meta':>14}")
    for i, label in enumerate(LABELS):
        print(f"{label:>16} {rows[i]:10.3f} {m_rows[i]:10.3f} {acc[i]:14.3f} {m_acc[i]:14.3f}")
    print(f"largest difference: rows {np.abs(rows - m_rows).max():.3f}, look-ups {np.abs(acc - m_acc).max():.3f}")


if __name__ == "__main__":
    main()
