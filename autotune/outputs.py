"""The output folders commands replace, described for `autotune.atomic.atomic_dir`.

Kept apart from the writers (analytics.profile_io) so that `autotune analyze` can check its --out before it
imports the statistics stack (numpy, pyarrow) and reads the logs. tests/test_outputs.py checks the names
against the writers' constants.
"""

from __future__ import annotations

from autotune.atomic import OutputKind

#: A workload profile folder (analytics.profile_io: PROFILE_FILE, COUNTS_FILE; analytics.plots: plots/).
PROFILE_OUTPUT = OutputKind(
    command="analyze",
    option="--out",
    marker="profile.json",
    files=("profile.json", "counts.parquet", "plots/coverage.png", "plots/frequency.png"),
)
