"""Write generated look-ups as query logs the analyzer reads, plus the model spec and the record of the law.

Formats (`FORMATS`), one log file each (`LOG_FILES`):
- `criteo`: Criteo TSV without header: label, I1..I13, C1..C26. Needs exactly 26 one-hot tables (refused
  otherwise: use parquet or long). A row id becomes an 8-hex-digit id like the real data's, through a
  bijection of 32-bit integers salted per table (`criteo_ids`), so distinct rows give distinct ids and
  per-id counts equal per-row counts; the analyzer maps ids to rows with `--row-map hash`, which scatters
  them again (hot rows do not stay contiguous, even with `--contiguous-hot`). The label (Bernoulli 0.25)
  and I1..I13 (Geometric(0.1) - 1, 10% empty) are filler so the file has Criteo's shape; autotune reads
  only C1..C26. Empty cell = missing value.
- `parquet`: wide, one row per query, one column per table named after it: int64 row ids for one-hot
  tables, list<int64> for multi-hot ones; null = missing. Analyse with `--row-map identity`.
- `long`: Parquet with columns query_id (int64), table (string), id (int64 row id): one row per look-up,
  ordered by query. Analyse with `--row-map identity`.

Files are streamed chunk by chunk (`autotune.synth.CHUNK_QUERIES` queries), so memory stays flat whatever
the number of queries.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from autotune.errors import UserError
from autotune.synth import Bags, SynthSpec, TableSpec, chunk_sizes, generate

FORMATS: tuple[str, ...] = ("criteo", "parquet", "long")
LOG_FILES: dict[str, str] = {"criteo": "criteo.tsv", "parquet": "queries.parquet", "long": "lookups.parquet"}
#: The analyzer's `--row-map` that reproduces what the generator meant for each format.
ROW_MAPS: dict[str, str] = {"criteo": "hash", "parquet": "identity", "long": "identity"}
CRITEO_TABLES = 26
CRITEO_DENSE = 13
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


@dataclass(frozen=True)
class TableStats:
    """What was written for one table: checkable against the analyzer's figures."""

    name: str
    accesses: int  # ids written
    present: int  # queries with at least one id
    missing: int  # queries with none
    short_bags: int  # bags left short by the de-duplication cap


def criteo_compatible(spec: SynthSpec) -> bool:
    """26 one-hot tables: what a Criteo TSV can hold."""
    return len(spec.tables) == CRITEO_TABLES and not any(t.multi_hot for t in spec.tables)


def resolve_format(spec: SynthSpec, fmt: str) -> str:
    """`auto` -> criteo for a Criteo-shaped spec, else parquet; refuse criteo for any other spec."""
    if fmt == "auto":
        return "criteo" if criteo_compatible(spec) else "parquet"
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r} is unknown; use auto, {', '.join(FORMATS)}")
    if fmt == "criteo" and not criteo_compatible(spec):
        multi = [t.name for t in spec.tables if t.multi_hot]
        why = (
            f"has {len(spec.tables)} tables (Criteo has {CRITEO_TABLES})"
            if len(spec.tables) != CRITEO_TABLES
            else f"has multi-hot tables ({', '.join(multi[:5])}); Criteo cells hold one id"
        )
        raise UserError(f"--format criteo: spec {spec.name!r} {why}; use --format parquet or --format long")
    return fmt


def criteo_ids(rows: np.ndarray, table: str) -> np.ndarray:
    """32-bit ids of `rows` for `table`: murmur3's fmix32 of (row + salt), a bijection on 32-bit integers."""
    x = (rows.astype(np.uint64) + np.uint64(zlib.crc32(table.encode("utf-8")))) & np.uint64(0xFFFFFFFF)
    x = x.astype(np.uint32)
    x ^= x >> np.uint32(16)
    x *= np.uint32(0x85EBCA6B)
    x ^= x >> np.uint32(13)
    x *= np.uint32(0xC2B2AE35)
    x ^= x >> np.uint32(16)
    return x


def hex8(ids: np.ndarray) -> np.ndarray:
    """Lower-case 8-hex-digit byte strings of 32-bit ids (vectorised)."""
    ids = ids.astype(np.uint32)
    shifts = np.arange(28, -1, -4, dtype=np.uint32)
    nibbles = ((ids[:, None] >> shifts[None, :]) & np.uint32(0xF)).astype(np.uint8)
    return np.ascontiguousarray(_HEX[nibbles]).view("S8").ravel()


def model_toml(spec: SynthSpec) -> str:
    """The model spec the analyzer reads: one [[tables]] entry (name, rows, dim, dtype) per table."""
    lines = [f"# Model spec of the synthetic workload {json.dumps(spec.name)}, written by `autotune synth`.", ""]
    for t in spec.tables:
        lines += ["[[tables]]", f"name = {json.dumps(t.name)}", f"rows = {t.rows}", f"dim = {t.dim}"]
        lines += [f"dtype = {json.dumps(t.dtype)}", ""]
    return "\n".join(lines)


def write_log(
    path: Path,
    spec: SynthSpec,
    queries: int,
    seed: int,
    fmt: str,
    contiguous_hot: bool = False,
    progress: Callable[[int], None] | None = None,
) -> list[TableStats]:
    """Generate `queries` queries of `spec` and stream them to `path` in `fmt`; returns per-table stats.

    `progress(n)` is called after each chunk with the number of queries it held.
    """
    fmt = resolve_format(spec, fmt)
    acc = {t.name: [0, 0, 0] for t in spec.tables}  # accesses, present, short
    writer = _WRITERS[fmt](path, spec, seed)
    try:
        first = 0
        for c, bags in enumerate(generate(spec, queries, seed, contiguous_hot)):
            n = len(bags[0].lengths)
            for t, b in zip(spec.tables, bags, strict=True):
                s = acc[t.name]
                s[0] += len(b.rows)
                s[1] += int(np.count_nonzero(b.lengths))
                s[2] += b.short
            writer.write(c, first, bags)
            first += n
            if progress is not None:
                progress(n)
    finally:
        writer.close()
    assert first == sum(chunk_sizes(queries))
    return [TableStats(name, a, p, queries - p, s) for name, (a, p, s) in acc.items()]


class _CriteoWriter:
    def __init__(self, path: Path, spec: SynthSpec, seed: int) -> None:
        self.spec = spec
        self.seed = seed
        fields = [pa.field("label", pa.int8())]
        fields += [pa.field(f"I{i + 1}", pa.int64()) for i in range(CRITEO_DENSE)]
        fields += [pa.field(f"C{i + 1}", pa.string()) for i in range(CRITEO_TABLES)]
        self.schema = pa.schema(fields)
        opts = pacsv.WriteOptions(include_header=False, delimiter="\t", quoting_style="none")
        self.writer = pacsv.CSVWriter(str(path), self.schema, write_options=opts)

    def write(self, chunk: int, first: int, bags: list[Bags]) -> None:
        n = len(bags[0].lengths)
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(3, chunk)))
        cols: list[pa.Array] = [pa.array((rng.random(n) < 0.25).astype(np.int8))]
        for _ in range(CRITEO_DENSE):
            cols.append(pa.array(rng.geometric(0.1, size=n) - 1, mask=rng.random(n) < 0.1))
        for t, b in zip(self.spec.tables, bags, strict=True):
            present = b.lengths > 0
            cells = np.zeros(n, dtype="S8")
            cells[present] = hex8(criteo_ids(b.rows, t.name))
            cols.append(pa.array(cells, type=pa.string(), mask=~present))
        self.writer.write_table(pa.Table.from_arrays(cols, schema=self.schema))

    def close(self) -> None:
        self.writer.close()


class _ParquetWriter:
    def __init__(self, path: Path, spec: SynthSpec, seed: int) -> None:
        self.spec = spec
        self.schema = pa.schema([pa.field(t.name, _column_type(t)) for t in spec.tables])
        self.writer = pq.ParquetWriter(str(path), self.schema)

    def write(self, chunk: int, first: int, bags: list[Bags]) -> None:
        cols = []
        for t, b in zip(self.spec.tables, bags, strict=True):
            present = b.lengths > 0
            if t.multi_hot:
                offsets = pa.array(b.offsets.astype(np.int32))
                cols.append(pa.ListArray.from_arrays(offsets, pa.array(b.rows), mask=pa.array(~present)))
            else:
                values = np.zeros(len(b.lengths), dtype=np.int64)
                values[present] = b.rows
                cols.append(pa.array(values, mask=~present))
        self.writer.write_table(pa.Table.from_arrays(cols, schema=self.schema))

    def close(self) -> None:
        self.writer.close()


class _LongWriter:
    def __init__(self, path: Path, spec: SynthSpec, seed: int) -> None:
        self.spec = spec
        self.names = pa.array([t.name for t in spec.tables], pa.string())
        self.schema = pa.schema([("query_id", pa.int64()), ("table", pa.string()), ("id", pa.int64())])
        self.writer = pq.ParquetWriter(str(path), self.schema)

    def write(self, chunk: int, first: int, bags: list[Bags]) -> None:
        n = len(bags[0].lengths)
        q = np.concatenate([np.repeat(np.arange(first, first + n, dtype=np.int64), b.lengths) for b in bags])
        table = np.concatenate([np.full(len(b.rows), i, dtype=np.int32) for i, b in enumerate(bags)])
        ids = np.concatenate([b.rows for b in bags])
        order = np.argsort(q, kind="stable")
        names = self.names.take(pa.array(table[order]))
        self.writer.write_table(
            pa.Table.from_arrays([pa.array(q[order]), names, pa.array(ids[order])], schema=self.schema)
        )

    def close(self) -> None:
        self.writer.close()


_WRITERS = {"criteo": _CriteoWriter, "parquet": _ParquetWriter, "long": _LongWriter}


def _column_type(t: TableSpec) -> pa.DataType:
    return pa.list_(pa.int64()) if t.multi_hot else pa.int64()
