"""The mapping: how every embedding table runs on the chip, in a versioned JSON format people can write by hand.

Per table: `replicas` r (each replica serves batch/r queries), `shards` k (row shards: contiguous ranges or
frequency-balanced through an id remap), the single-core `strategy` of its tasks, `hot_rows` pinned on-chip
(GM strategy), `dedup`, `chunk_bytes` (streaming strategies) and an optional explicit `placement`
(`placement[replica][shard]` = core id). The JSON Schema ships in the package
(`autotune/schemas/mapping.schema.json`); `parse_mapping` checks a file against it and `validate_mapping`
against a workload and a chip, so every mistake is one `UserError` naming the file and the field.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

from autotune import atomic
from autotune.errors import UserError
from autotune.hardware import HardwareProfile
from autotune.workload import WorkloadProfile

MAPPING_VERSION = 1
STRATEGIES: tuple[str, ...] = ("GM", "L1", "GM-UB", "L1-UB")
SHARDINGS: tuple[str, ...] = ("contiguous", "balanced")
#: Batch size when neither the command line nor the mapping gives one (TorchRec's planner default).
DEFAULT_BATCH_SIZE = 512

Placement = tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class TableMapping:
    """How one table runs: replication, sharding, strategy, and optionally the core of each task."""

    name: str
    replicas: int = 1
    shards: int = 1
    sharding: str = "contiguous"  # "contiguous" | "balanced"
    strategy: str = "GM"  # one of STRATEGIES
    hot_rows: int = 0  # GM strategy: hottest rows of each shard pinned in local memory
    dedup: bool = False
    chunk_bytes: int | None = None  # *-UB strategies; None = the model's default (a quarter of the staging memory)
    placement: Placement | None = None  # placement[replica][shard] = core id; None = the model assigns

    @property
    def knobs(self) -> tuple[int, int, str, str, int, bool, int | None]:
        """Everything that determines the cost of this table's tasks (not where they run)."""
        return (self.replicas, self.shards, self.sharding, self.strategy, self.hot_rows, self.dedup, self.chunk_bytes)

    @property
    def tasks(self) -> int:
        return self.replicas * self.shards

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "replicas": self.replicas,
            "shards": self.shards,
            "sharding": self.sharding,
            "strategy": self.strategy,
            "hot_rows": self.hot_rows,
            "dedup": self.dedup,
            "chunk_bytes": self.chunk_bytes,
        }
        if self.placement is not None:
            d["placement"] = [list(row) for row in self.placement]
        return d


@dataclass(frozen=True)
class Mapping:
    """A mapping of every table of a workload onto a chip (the native format)."""

    tables: tuple[TableMapping, ...]
    name: str | None = None
    hardware: str | None = None
    batch_size: int | None = None
    profile: dict[str, str] | None = None  # {"name": ..., "hash": ...}
    predicted_latency_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # other top-level fields, kept as written

    @property
    def has_placement(self) -> bool:
        return all(t.placement is not None for t in self.tables)

    def table(self, name: str) -> TableMapping:
        for t in self.tables:
            if t.name == name:
                return t
        raise KeyError(name)

    def with_placement(self, placements: dict[str, Placement]) -> Mapping:
        """The same mapping with explicit placements (tables not named keep theirs)."""
        return replace(
            self, tables=tuple(replace(t, placement=placements.get(t.name, t.placement)) for t in self.tables)
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"version": MAPPING_VERSION}
        if self.name is not None:
            d["name"] = self.name
        if self.hardware is not None:
            d["hardware"] = self.hardware
        if self.batch_size is not None:
            d["batch_size"] = self.batch_size
        if self.profile is not None:
            d["profile"] = dict(self.profile)
        if self.predicted_latency_s is not None:
            d["predicted_latency_s"] = self.predicted_latency_s
        d.update(self.extra)
        d["tables"] = [t.to_dict() for t in self.tables]
        return d


@cache
def mapping_schema() -> dict[str, Any]:
    """The JSON Schema of the mapping format, as shipped in the package."""
    text = (importlib.resources.files("autotune") / "schemas" / "mapping.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def _path_str(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


#: Longest rendering of a value inside an error message: a whole `tables` object is no help on one line.
SHOWN_CHARS = 80


def _short(value: Any) -> str:
    """`repr(value)`, cut to SHOWN_CHARS with an ellipsis."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


def _schema_message(error: Any) -> str:
    """One line for a jsonschema error, in the words a person fixing the file needs."""
    where = _path_str(error.absolute_path)
    kind, value, inst = error.validator, error.validator_value, error.instance
    if kind == "enum":
        return f"{where}: {_short(inst)} is not one of {', '.join(map(str, value))}"
    if kind == "const":
        return f"{where}: is {_short(inst)}; this autotune reads mapping version {value}"
    if kind == "required":
        missing = [k for k in value if isinstance(inst, dict) and k not in inst]
        return f"{where}: missing required field {', '.join(repr(m) for m in missing)}"
    if kind == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(k for k in inst if k not in allowed) if isinstance(inst, dict) else []
        return f"{where}: unknown field {', '.join(repr(e) for e in extra)}; fields are {', '.join(allowed)}"
    if kind == "type":
        types = value if isinstance(value, list) else [value]
        return f"{where}: must be {' or '.join(types)}, got {_short(inst)}"
    if kind == "minimum":
        return f"{where}: must be >= {value}, got {_short(inst)}"
    if kind in ("minItems", "minLength"):
        return f"{where}: must not be empty"
    message = error.message.replace(repr(inst), _short(inst))  # jsonschema's messages quote the whole value
    return f"{where}: {message}"


def _refuse_export(d: Any, where: str) -> None:
    """An `autotune export` output or a workload profile given where a mapping is expected: say so, instead of
    a schema error listing a dozen unknown fields."""
    tables = d.get("tables") if isinstance(d, dict) else None
    if isinstance(tables, list) and "queries" in d and any(isinstance(t, dict) and "accesses" in t for t in tables):
        raise UserError(
            f"{where}: this is a workload profile (from `autotune analyze`), not a mapping; give a mapping.json "
            "(runs/<run>/mapping.json, or one `autotune baselines --write-dir` writes) and the profile as --profile"
        )
    fmt = d.get("format") if isinstance(d, dict) else None
    if not (isinstance(fmt, str) and fmt.startswith("autotune-")):
        return
    what = "a TorchRec plan" if "torchrec" in fmt else f"a {_short(fmt)} file"
    raise UserError(
        f"{where}: this is {what} exported by `autotune export`, not a mapping; give the run's mapping.json "
        "(runs/<run>/mapping.json) instead"
    )


def parse_mapping(d: Any, where: str = "mapping") -> Mapping:
    """Check `d` against the mapping schema and build a `Mapping`; the first problem is a `UserError`."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(mapping_schema())
    _refuse_export(d, where)
    error = jsonschema.exceptions.best_match(validator.iter_errors(d))
    if error is not None:
        raise UserError(f"{where}: {_schema_message(error)}")
    tables = []
    for t in d["tables"]:
        placement = t.get("placement")
        tables.append(
            TableMapping(
                name=t["name"],
                replicas=t.get("replicas", 1),
                shards=t.get("shards", 1),
                sharding=t.get("sharding", "contiguous"),
                strategy=t.get("strategy", "GM"),
                hot_rows=t.get("hot_rows", 0),
                dedup=t.get("dedup", False),
                chunk_bytes=t.get("chunk_bytes"),
                placement=None if placement is None else tuple(tuple(row) for row in placement),
            )
        )
    known = {"version", "name", "hardware", "batch_size", "profile", "predicted_latency_s", "tables"}
    return Mapping(
        tables=tuple(tables),
        name=d.get("name"),
        hardware=d.get("hardware"),
        batch_size=d.get("batch_size"),
        profile=d.get("profile"),
        predicted_latency_s=d.get("predicted_latency_s"),
        extra={k: v for k, v in d.items() if k not in known},
    )


def load_mapping(path: str | Path) -> Mapping:
    """Read and schema-check a mapping file."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: no such mapping file; write one (see docs/latency-model.md) or run `autotune baselines`")
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{p}: not a readable JSON mapping ({exc}); fix the JSON syntax") from None
    if not isinstance(d, dict):
        raise UserError(f"{p}: a mapping must be a JSON object with 'version' and 'tables'")
    return parse_mapping(d, where=str(p))


def save_mapping(path: str | Path, mapping: Mapping) -> None:
    """Write a mapping file atomically."""
    atomic.write_json(Path(path), mapping.to_dict())


def validate_mapping(mapping: Mapping, profile: WorkloadProfile, hw: HardwareProfile, where: str = "mapping") -> None:
    """Check a mapping against the workload and the chip: tables, shard counts, core ids. `UserError` if wrong.

    What is physically possible but does not fit (a table too big for L1) is not an error here: the model
    reports it as infeasible, with by how much memory is exceeded.
    """
    n_cores = hw.n_cores
    by_name = {t.name: t for t in profile.tables}
    seen: set[str] = set()
    for i, tm in enumerate(mapping.tables):
        at = f"{where}: tables[{i}]"
        if tm.name not in by_name:
            raise UserError(
                f"{at}.name: {tm.name!r} is not a table of profile {profile.name!r} "
                f"(tables: {', '.join(list(by_name)[:12])}{', ...' if len(by_name) > 12 else ''})"
            )
        if tm.name in seen:
            raise UserError(f"{at}.name: table {tm.name!r} is mapped twice; keep one entry")
        seen.add(tm.name)
        rows = by_name[tm.name].rows
        if tm.shards > rows:
            raise UserError(f"{at}.shards: {tm.shards} shards for a table of {rows} rows; use at most {rows}")
        if tm.tasks > n_cores:
            raise UserError(
                f"{at}: replicas x shards = {tm.replicas} x {tm.shards} = {tm.tasks} tasks, but {hw.name} has "
                f"{n_cores} look-up cores and each task of a table needs its own core"
            )
        if tm.placement is not None:
            pl = tm.placement
            if len(pl) != tm.replicas or any(len(row) != tm.shards for row in pl):
                raise UserError(
                    f"{at}.placement: must be {tm.replicas} list(s) (replicas) of {tm.shards} core id(s) (shards)"
                )
            cores = [c for row in pl for c in row]
            bad = [c for c in cores if c >= n_cores]
            if bad:
                raise UserError(f"{at}.placement: core {bad[0]} is out of range; {hw.name} has cores 0..{n_cores - 1}")
            if len(set(cores)) != len(cores):
                raise UserError(f"{at}.placement: a core appears twice; each task of a table needs its own core")
    missing = [t for t in by_name if t not in seen]
    if missing:
        raise UserError(
            f"{where}: tables: profile table(s) {', '.join(repr(m) for m in missing[:8])} have no entry; "
            "map every table of the profile"
        )


def profile_hash(profile: WorkloadProfile) -> str:
    """A content hash of a workload profile (its canonical JSON), to tie a mapping to the profile it was made for."""
    text = json.dumps(profile.to_dict(), sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()
