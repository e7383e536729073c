"""The trace pipeline: read query logs (Polars or DuckDB), count look-ups per table, build workload profiles.

Public API: `analyze(paths, ...) -> AnalyzeResult` writes a profile directory; `merge_profiles(a, b, out)`
adds two profiles' counts; `autotune.workload.load_profile(dir)` loads either.
"""

from analytics.pipeline import AnalyzeResult, analyze
from analytics.profile_io import merge_profiles, read_counts

__all__ = ["AnalyzeResult", "analyze", "merge_profiles", "read_counts"]
