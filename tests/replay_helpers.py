"""Small real workload profiles for replay and calibrate tests: a wide CSV log of Zipf ids, profiled by analyze."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from analytics import analyze

#: (name, rows, dim, Zipf exponent, bag size) of the test tables: tiny, small, medium; one multi-hot.
TABLES = (
    ("t_tiny", 40, 8, 1.1, 1),
    ("t_small", 3000, 16, 1.2, 1),
    ("t_med", 60000, 32, 0.9, 1),
    ("t_bag", 5000, 16, 1.0, 3),
)


def make_profile(
    root: Path,
    queries: int = 4000,
    seed: int = 0,
    tables=TABLES,
    contiguous_hot: bool = True,
    row_map: str = "identity",
    missing: float = 0.0,
) -> Path:
    """Write a log of `queries` queries (root/log.csv; a `missing` share of empty cells) and its profile under
    `root`; return the profile directory."""
    rng = np.random.default_rng(seed)
    cols = {}
    spec = ["[[tables]]\n" + f'name = "{n}"\nrows = {r}\ndim = {d}\n' for n, r, d, _a, _p in tables]
    for name, rows, _dim, alpha, bag in tables:
        w = np.arange(1, rows + 1, dtype=float) ** -alpha
        ranks = rng.choice(rows, size=(queries, bag), p=w / w.sum())
        ids = ranks if contiguous_hot else (ranks * 7919 + 13) % rows
        empty = rng.random(queries) < missing
        cols[name] = ["" if e else "|".join(map(str, row)) for row, e in zip(ids.tolist(), empty, strict=True)]
    log = root / "log.csv"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w", encoding="utf-8") as fh:
        fh.write(",".join(cols) + "\n")
        for i in range(queries):
            fh.write(",".join(cols[n][i] for n in cols) + "\n")
    (root / "model.toml").write_text("\n".join(spec), encoding="utf-8")
    out = root / "profile"
    analyze([log], model=root / "model.toml", row_map=row_map, multi_sep="|", out=out, name="replaytest")
    return out
