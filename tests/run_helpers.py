"""A small completed search run for the `show` / `export` tests, built once per test session."""

from __future__ import annotations

import json
from pathlib import Path

from model_helpers import workload, zipf_table

from autotune.search.driver import SearchRequest, run_search

RUN = "small"
HARDWARE = "ascend910b"
# (rows, zipf alpha, pooling, hot rows contiguous): tiny to large, mild to strong skew
TABLES = [
    (10, 0.5, 1, True),
    (1000, 1.1, 2, True),
    (100_000, 1.2, 10, True),
    (2_000_000, 1.05, 20, False),
    (50, 0.8, 1, False),
    (300_000, 1.3, 5, True),
    (7000, 0.9, 3, False),
]


#: (rows, zipf alpha, pooling) of the six-table workload the search tests use
MEDIUM = [(10, 0.5, 1), (1000, 1.1, 2), (100_000, 1.2, 10), (2_000_000, 1.05, 20), (50, 0.8, 1), (300_000, 1.3, 5)]


def write_profile(folder: Path, *tables) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "profile.json").write_text(json.dumps(workload(*tables).to_dict()))
    return folder


def medium_profile_in(folder: Path) -> Path:
    """The six-table workload (dim 64, hot ids scattered) as a profile directory `folder`."""
    tables = [zipf_table(f"t{i}", rows=r, alpha=a, dim=64, pooling=p) for i, (r, a, p) in enumerate(MEDIUM)]
    return write_profile(folder, *tables)


def completed_run(base: Path) -> Path:
    """The runs root under `base` holding run `RUN` (searched on first use: 30 trials, a few seconds)."""
    root = base / "runs"
    if not (root / RUN / "run.json").exists():
        tabs = [
            zipf_table(f"t{i}", rows=r, alpha=a, dim=32, pooling=p, contiguous=c)
            for i, (r, a, p, c) in enumerate(TABLES)
        ]
        prof = write_profile(base / "profile", *tabs)
        run_search(SearchRequest(profile=prof, hardware=HARDWARE, batch_size=512, run=RUN, n_trials=30, root=root))
    return root
