"""The trace pipeline: read query logs (Polars or DuckDB), count look-ups per table, build workload profiles.

Public API: `analyze(paths, ...) -> AnalyzeResult` writes a profile directory; `merge_profiles(a, b, out)`
adds two profiles' counts; `autotune.workload.load_profile(dir)` loads either.
"""

from typing import Any

from analytics.pipeline import AnalyzeResult, analyze

__all__ = ["AnalyzeResult", "analyze", "merge_profiles", "read_counts"]


def __getattr__(name: str) -> Any:
    # numpy and pyarrow load with profile_io: `analyze` starts parsing before them (analytics.pipeline)
    if name in ("merge_profiles", "read_counts"):
        from analytics import profile_io

        return getattr(profile_io, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
