"""`--format torchrec`: a TorchRec-style sharding plan, plus what TorchRec cannot express in its own section.

The `plan` section has TorchRec's shape (module path -> table -> `sharding_type`, `compute_kernel`, `ranks`,
`shards` of `shard_offsets` / `shard_sizes` / `placement`), one rank per look-up core of the chip. Shards
tile each table exactly. Everything TorchRec's `ParameterSharding` has no field for (the single-core
strategy, pinned hot rows, de-duplication, a frequency-balanced id remap, replicas on a subset of the
cores) goes into the `autotune` section, table by table, with a list of what the plan alone leaves out.
docs/export.md describes every field and every choice made here.
"""

from __future__ import annotations

import itertools
from importlib import metadata
from typing import Any

from autotune.errors import UserError
from autotune.export.base import ExportOptions, field_path, load_schema, schema_errors
from autotune.hardware import HardwareProfile
from autotune.model.context import REMAP_BYTES, ModelContext
from autotune.model.evaluate import TableResult
from autotune.model.mapping import TableMapping
from autotune.search.loaded import LoadedRun
from autotune.workload import TableProfile

FORMAT = "autotune-torchrec-plan"
PLAN_VERSION = 1
SCHEMA_FILE = "torchrec_plan.schema.json"

#: torch device type of a chip family: what the `placement` strings name.
DEVICE_TYPES: dict[str, str] = {"gpu": "cuda", "ascend": "npu", "cpu": "cpu"}
#: TorchRec `DataType` names of our embedding dtypes.
DATA_TYPES: dict[str, str] = {
    "float32": "FP32",
    "float16": "FP16",
    "bfloat16": "BF16",
    "int8": "INT8",
    "uint8": "UINT8",
}
#: What the plan section cannot say, per table (the codes of `autotune.tables.<t>.not_expressed`).
NOT_EXPRESSED: dict[str, str] = {
    "replicas": "replicas on a subset of the ranks: the plan holds replica 0 only",
    "strategy": "a single-core strategy other than GM (FBGEMM's fused kernel gathers rows from global memory)",
    "hot_rows": "hot rows pinned in on-chip memory",
    "dedup": "de-duplication of the ids of each batch slice",
    "id_remap": "frequency-balanced shards: ids must go through the remap before the plan's row ranges apply",
}


def row_splits(rows: int, shards: int) -> list[int]:
    """Rows of each contiguous shard: the model's equal row ranges (j * rows / k) rounded down to whole rows.

    Sizes differ by at most one row and none is empty when shards <= rows; each is at most ceil(rows / k),
    the shard size the model charges memory for.
    """
    if shards < 1 or rows < shards:
        raise ValueError(f"cannot split {rows} rows into {shards} non-empty shards")
    edges = [j * rows // shards for j in range(shards + 1)]
    return [b - a for a, b in itertools.pairwise(edges)]


def placement(rank: int, device_type: str) -> str:
    """TorchRec's placement string of a shard: 'rank:3/cuda:3' ('rank:3/cpu' on a CPU, which has no index)."""
    return f"rank:{rank}/cpu" if device_type == "cpu" else f"rank:{rank}/{device_type}:{rank}"


def sharding_type(tm: TableMapping, world_size: int) -> str:
    """data_parallel (a copy on every rank), table_wise (one shard) or row_wise (k > 1 row shards)."""
    if tm.shards == 1 and tm.replicas == world_size and world_size > 1:
        return "data_parallel"
    return "table_wise" if tm.shards == 1 else "row_wise"


def compute_kernel(kind: str, dtype: str) -> str:
    """quant for 8-bit tables (TorchRec's inference kernel), dense for data-parallel copies, fused otherwise."""
    if dtype in ("int8", "uint8"):
        return "quant"
    return "dense" if kind == "data_parallel" else "fused"


def not_expressed(tm: TableMapping, kind: str) -> list[str]:
    """Codes of what the plan entry of `tm` leaves out (empty: the plan says everything)."""
    out = []
    if tm.replicas > 1 and kind != "data_parallel":
        out.append("replicas")
    if tm.strategy != "GM":
        out.append("strategy")
    elif tm.hot_rows > 0:
        out.append("hot_rows")
    if tm.dedup:
        out.append("dedup")
    if tm.sharding == "balanced" and tm.shards > 1:
        out.append("id_remap")
    return out


def plan_entry(tm: TableMapping, tp: TableProfile, world_size: int, device_type: str) -> dict[str, Any]:
    """The TorchRec `ParameterSharding` of one table (replica 0 when replicas sit on a subset of ranks)."""
    kind = sharding_type(tm, world_size)
    entry: dict[str, Any] = {"sharding_type": kind, "compute_kernel": compute_kernel(kind, tp.dtype)}
    if kind == "data_parallel":
        entry["ranks"] = list(range(world_size))
        entry["shards"] = None
        return entry
    if tm.placement is None:
        raise ValueError(f"table {tm.name!r} has no placement; evaluate the mapping first")
    cores = [int(c) for c in tm.placement[0]]
    sizes = row_splits(tp.rows, tm.shards)
    shards, offset = [], 0
    for core, size in zip(cores, sizes, strict=True):
        shards.append(
            {
                "shard_offsets": [offset, 0],
                "shard_sizes": [size, tp.dim],
                "placement": placement(core, device_type),
            }
        )
        offset += size
    entry["ranks"] = cores
    entry["shards"] = shards
    return entry


def extension_entry(
    tm: TableMapping, tp: TableProfile, result: TableResult, kind: str, load_share: list[float]
) -> dict[str, Any]:
    """What autotune decided for one table beyond the plan: strategy, hot rows, remap, every replica's cores."""
    sizes = row_splits(tp.rows, tm.shards)
    missing = not_expressed(tm, kind)
    hot = None
    if tm.strategy == "GM" and tm.hot_rows > 0:
        hot = {
            "rows_per_shard": tm.hot_rows,
            "cache_params": {"algorithm": "LFU", "load_factor": min(1.0, tm.hot_rows / max(sizes))},
        }
    remap = None
    if "id_remap" in missing:
        remap = {
            "kind": "frequency_balanced",
            "shard_rows": sizes,
            "remap_bytes": tp.rows * REMAP_BYTES,
            "algorithm": (
                "sort the ids by look-up count, hottest first (ties: lower id first); give each in turn to the "
                "shard with the fewest look-ups so far among those with rows left (shard j holds shard_rows[j]); "
                "an id's new row is the shard's row offset plus its position in the shard; look up remap[id] "
                "(int32) before the sharded table"
            ),
        }
    return {
        "strategy": tm.strategy,
        "hot_rows": tm.hot_rows,
        "dedup": tm.dedup,
        "chunk_bytes": tm.chunk_bytes,
        "replicas": tm.replicas,
        "shards": tm.shards,
        "sharding": tm.sharding,
        "placement": [list(row) for row in tm.placement or ()],
        "exported_replica": None if kind == "data_parallel" else 0,
        "shard_rows": sizes,
        "shard_load_share": load_share,
        "predicted_time_s": result.time_s,
        "share_of_latency": result.share,
        "torchrec_exact": not missing,
        "not_expressed": missing,
        "hot_row_cache": hot,
        "id_remap": remap,
    }


def device_type(hw: HardwareProfile) -> str:
    return DEVICE_TYPES.get(hw.family, hw.family)


def build_plan(run: LoadedRun, module: str) -> dict[str, Any]:
    """The TorchRec-style document of a loaded run (a pure function of the run's mapping, profile and chip)."""
    if not module or any(not part for part in module.split(".")):
        raise UserError(f"--module {module!r}: give the module path of the embedding module, e.g. 'sparse_arch.ebc'")
    hw, mapping, pred = run.hw, run.mapping, run.prediction
    world = hw.n_cores
    dev = device_type(hw)
    ctx = ModelContext(run.profile, hw, run.batch_size)
    results = {r.name: r for r in pred.tables}
    tables: dict[str, Any] = {}
    plan: dict[str, Any] = {}
    ext: dict[str, Any] = {}
    for tm in mapping.tables:
        tp = run.profile.table(tm.name)
        kind = sharding_type(tm, world)
        tables[tm.name] = {
            "num_embeddings": tp.rows,
            "embedding_dim": tp.dim,
            "data_type": DATA_TYPES[tp.dtype],
        }
        plan[tm.name] = plan_entry(tm, tp, world, dev)
        mass = ctx.shard_mass(ctx.index[tm.name], tm.shards, tm.sharding)
        ext[tm.name] = extension_entry(tm, tp, results[tm.name], kind, [float(x) for x in mass])
    try:
        version = metadata.version("autotune")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return {
        "format": FORMAT,
        "version": PLAN_VERSION,
        "generator": f"autotune {version}",
        "run": run.name,
        "hardware": {
            "name": hw.name,
            "family": hw.family,
            "device_type": dev,
            "core_type": hw.lookup_cores.name,
            "world_size": world,
        },
        "batch_size": run.batch_size,
        "predicted_latency_s": pred.latency_s,
        "profile": dict(mapping.profile) if mapping.profile else {"name": run.profile.name},
        "tables": tables,
        "plan": {module: plan},
        "autotune": {"module": module, "tables": ext},
    }


class TorchRecExporter:
    name = "torchrec"
    suffix = ".torchrec.json"
    description = "a TorchRec-style sharding plan (one rank per look-up core), extras in an 'autotune' section"
    schema_file = SCHEMA_FILE

    def export(self, run: LoadedRun, options: ExportOptions) -> dict[str, Any]:
        doc = build_plan(run, options.module)
        check_plan(doc, where=f"export of run {run.name}")
        return doc

    def caveats(self, doc: dict[str, Any]) -> list[str]:
        return caveats(doc)


def caveats(doc: dict[str, Any]) -> list[str]:
    """Per `not_expressed` code, the tables whose plan entry leaves it out and what that means for a serving
    stack that reads the plan section only (the `autotune` section holds the rest: docs/export.md)."""
    tables: dict[str, list[str]] = {}
    for name, ext in doc["autotune"]["tables"].items():
        for code in ext["not_expressed"]:
            tables.setdefault(code, []).append(name)
    lines = []
    for code, what in NOT_EXPRESSED.items():
        names = tables.get(code, [])
        if names:
            shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            lines.append(f"{len(names)} table(s) ({shown}): {what}; the 'autotune' section has the details")
    return lines


EXPORTER = TorchRecExporter()


def check_plan(doc: Any, where: str = "plan") -> None:
    """Check a TorchRec-style document: its schema, then the rules a schema cannot state. `UserError` if broken.

    Rules: every planned table has a `tables` entry; data_parallel tables have null shards and every rank;
    otherwise `len(ranks) == len(shards)`, a table_wise table has one shard, shards are listed in row order,
    start at row 0, follow each other without gap or overlap, cover every row and every column, sit on
    distinct ranks below `world_size`, and each `placement` is `rank:R/<device_type>:R` for its shard's rank R.
    """
    problems = schema_errors(doc, load_schema(SCHEMA_FILE))
    if problems:
        raise UserError(f"{where}: {problems[0]}")
    world, dev = doc["hardware"]["world_size"], doc["hardware"]["device_type"]
    configs = doc["tables"]
    for module, tables in doc["plan"].items():
        for name, entry in tables.items():
            at = field_path(["plan", module, name])
            if name not in configs:
                raise UserError(f"{where}: {at}: table {name!r} has no entry in 'tables' (num_embeddings, dim)")
            _check_entry(entry, configs[name], world, dev, f"{where}: {at}")


def _check_entry(entry: dict[str, Any], config: dict[str, Any], world: int, dev: str, at: str) -> None:
    rows, dim = config["num_embeddings"], config["embedding_dim"]
    ranks, shards, kind = entry["ranks"], entry["shards"], entry["sharding_type"]
    bad = [r for r in ranks if r >= world]
    if bad:
        raise UserError(f"{at}.ranks: rank {bad[0]} is out of range; world_size is {world}")
    if len(set(ranks)) != len(ranks):
        raise UserError(f"{at}.ranks: a rank appears twice; each shard needs its own rank")
    if kind == "data_parallel":
        if shards is not None:
            raise UserError(f"{at}.shards: must be null for data_parallel (every rank holds the whole table)")
        if sorted(ranks) != list(range(world)):
            raise UserError(f"{at}.ranks: data_parallel must list every rank 0..{world - 1}")
        return
    if shards is None:
        raise UserError(f"{at}.shards: {kind} needs its list of shards")
    if len(ranks) != len(shards):
        raise UserError(f"{at}: {len(ranks)} ranks for {len(shards)} shards; give one rank per shard")
    if kind == "table_wise" and len(shards) != 1:
        raise UserError(f"{at}.shards: table_wise has exactly one shard, got {len(shards)}")
    next_row = 0
    for i, (rank, shard) in enumerate(zip(ranks, shards, strict=True)):
        (row, col), (n_rows, n_cols) = shard["shard_offsets"], shard["shard_sizes"]
        s_at = f"{at}.shards[{i}]"
        if row != next_row:
            what = "leaves a gap" if row > next_row else "overlaps the previous shard"
            raise UserError(
                f"{s_at}.shard_offsets: starts at row {row}, expected {next_row} ({what}); "
                "list shards in row order, each starting where the previous one ends"
            )
        if col != 0 or n_cols != dim:
            raise UserError(
                f"{s_at}: covers columns {col}..{col + n_cols - 1}, a row shard must cover all {dim} columns "
                f"(shard_offsets[1] = 0, shard_sizes[1] = {dim})"
            )
        next_row = row + n_rows
        if next_row > rows:
            raise UserError(f"{s_at}.shard_sizes: ends at row {next_row}, the table has {rows} rows")
        if shard["placement"] != placement(rank, dev):
            raise UserError(
                f"{s_at}.placement: {shard['placement']!r} should be {placement(rank, dev)!r} "
                f"(rank {rank} = ranks[{i}], device type {dev!r})"
            )
    if next_row != rows:
        raise UserError(
            f"{at}.shards: cover rows 0..{next_row - 1}, the table has {rows} rows; the shards must tile it exactly"
        )
