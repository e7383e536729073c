"""The trace pipeline: read query logs (DuckDB/Polars), count look-ups per table, build workload profiles."""
