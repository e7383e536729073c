"""The trace pipeline: read query logs (Polars or DuckDB), count look-ups per table, build workload profiles.

Public API: `analyze(paths, ...) -> AnalyzeResult` writes a profile directory; `merge_profiles(a, b, out)`
adds two profiles' counts; `load_profile(dir)` (from `autotune.workload`) loads either; `read_counts(dir)`
gives a profile's per-id counts. Bad input raises `UserError` (its message is the one line the CLI prints).
"""

from typing import Any

from analytics.pipeline import AnalyzeResult, analyze
from autotune.errors import UserError

__all__ = ["AnalyzeResult", "UserError", "analyze", "load_profile", "merge_profiles", "read_counts"]


def __getattr__(name: str) -> Any:
    # numpy and pyarrow load with profile_io and workload: `analyze` starts parsing before them (analytics.pipeline)
    if name in ("merge_profiles", "read_counts"):
        from analytics import profile_io

        return getattr(profile_io, name)
    if name == "load_profile":
        from autotune.workload import load_profile

        return load_profile
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
