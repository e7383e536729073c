"""The hardware-profile TOML format: parse and validate it into `autotune.hardware` types, and write it back.

Every figure is an inline table `{ value = ..., source = "...", confidence = "..." }` so that no number
enters the latency model without saying where it came from; the unit is in the field name. A profile is
checked on load (missing, wrong type, impossible value, unknown key, inconsistency) and every problem is
one `UserError` naming the file and the dotted path of the field, e.g.
`core_types.vector.memories.UB.block_bytes`. The same dotted paths key `HardwareProfile.provenance`.

This module is pure (text in, dataclasses out, and back); finding files is `autotune.hwload`'s job.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autotune.errors import UserError
from autotune.hardware import CONFIDENCES, CoreType, HardwareProfile, LocalMemory, Overheads

#: The memory every fill chain ends in (HBM / DRAM); a local memory's `fill_from` names it or a sibling memory.
GM = "GM"

_FIGURE_KEYS = ("value", "source", "confidence")
#: Profile, core-type and memory names appear in dotted figure paths and file names.
_IDENTIFIER = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class FieldSpec:
    """One figure of the format: its key, Python type, lower bound rule, unit and meaning (for docs and `hw show`)."""

    key: str
    kind: type  # int, float or bool
    rule: str  # "positive", "nonnegative" or "" (bools)
    unit: str
    meaning: str
    power_of_two: bool = False


TOP_FIGURES = (FieldSpec("clock_hz", float, "positive", "Hz", "core clock the per-cycle rates are counted in"),)
CHIP_FIGURES = (
    FieldSpec("gm_capacity_bytes", int, "positive", "B", "global memory (HBM / DRAM) capacity"),
    FieldSpec("gm_bandwidth_bytes_per_s", float, "positive", "B/s", "chip-wide global-memory bandwidth"),
    FieldSpec("l2_capacity_bytes", int, "nonnegative", "B", "shared last-level cache capacity (L3 on CPUs)"),
    FieldSpec("l2_bandwidth_bytes_per_s", float, "positive", "B/s", "chip-wide last-level-cache bandwidth"),
    FieldSpec("l2_slices", int, "positive", "slices", "L2 slices that global-memory addresses are interleaved over"),
    FieldSpec(
        "interleave_bytes", int, "positive", "B", "address interleave granule over the L2 slices", power_of_two=True
    ),
)
OVERHEAD_FIGURES = (
    FieldSpec("launch_s", float, "nonnegative", "s", "kernel launch / dispatch of one batch"),
    FieldSpec("per_task_s", float, "nonnegative", "s", "set-up of one table or shard task on a core"),
    FieldSpec("merge_sync_s", float, "nonnegative", "s", "one cross-core synchronisation before a merge"),
    FieldSpec("per_chunk_s", float, "nonnegative", "s", "set-up of one streamed chunk of a *-UB task"),
    FieldSpec("per_route_s", float, "nonnegative", "s", "set-up of one sharded task's routing pass"),
)
CORE_FIGURES = (
    FieldSpec("count", int, "positive", "cores", "cores of this type"),
    FieldSpec("runs_lookups", bool, "", "bool", "whether embedding look-up tasks may be placed on this type"),
    FieldSpec("gm_read_bytes_per_cycle", float, "positive", "B/cycle", "per-core GM read rate of scattered rows"),
    FieldSpec("gm_stream_bytes_per_cycle", float, "positive", "B/cycle", "per-core sequential global-memory read rate"),
    FieldSpec("l2_read_bytes_per_cycle", float, "positive", "B/cycle", "sustained per-core read rate on L2 hits"),
    FieldSpec("gm_latency_cycles", float, "positive", "cycles", "issue-to-data latency of one global-memory read"),
    FieldSpec("l2_latency_cycles", float, "positive", "cycles", "issue-to-data latency of one L2 hit"),
    FieldSpec("outstanding_requests", int, "positive", "requests", "reads one core keeps in flight"),
    FieldSpec("gm_block_bytes", int, "positive", "B", "minimum global-memory transfer", power_of_two=True),
    FieldSpec("gather_bytes_per_cycle", float, "nonnegative", "B/cycle", "gather of rows already in local memory"),
    FieldSpec("pool_bytes_per_cycle", float, "nonnegative", "B/cycle", "vector accumulate (sum pooling) rate"),
    FieldSpec("pool_row_cycles", float, "nonnegative", "cycles/row", "fixed cost of accumulating one row"),
    FieldSpec(
        "block_pool_bytes_per_cycle", float, "nonnegative", "B/cycle", "sum pooling rate when all bags have one length"
    ),
    FieldSpec(
        "block_pool_row_cycles", float, "nonnegative", "cycles/row", "per-row pooling cost, all bags of one length"
    ),
    FieldSpec("route_cycles_per_id", float, "nonnegative", "cycles/id", "routing one look-up id to its shard"),
    FieldSpec(
        "route_cycles_per_query", float, "nonnegative", "cycles/query", "routing: count and lay out one query's bag"
    ),
    FieldSpec("scan_cycles_per_id", float, "nonnegative", "cycles/id", "scanning one id against one streamed chunk"),
    FieldSpec("sort_cycles_per_id", float, "nonnegative", "cycles/id", "one sort pass over one id (de-duplication)"),
    FieldSpec("pin_cycles_per_id", float, "nonnegative", "cycles/id", "one search step of one id in the pinned set"),
    FieldSpec("overlaps_fetch_compute", bool, "", "bool", "whether row fetches run under compute (double buffering)"),
    FieldSpec("caches_gm_reads", bool, "", "bool", "whether a private cache keeps the lines a core read from GM"),
)
MEMORY_FIGURES = (
    FieldSpec("capacity_bytes", int, "positive", "B", "capacity usable by one core"),
    FieldSpec("resident", bool, "", "bool", "whether data may stay here across batches (preloaded once)"),
    FieldSpec("block_bytes", int, "positive", "B", "transfer granularity into this memory", power_of_two=True),
    FieldSpec("read_bytes_per_cycle", float, "positive", "B/cycle", "read rate of this memory to the compute unit"),
    FieldSpec("fill_bytes_per_cycle", float, "positive", "B/cycle", "per-core fill rate from `fill_from`"),
)
TOP_STRINGS = ("name", "description", "family")
TOP_KEYS = (*TOP_STRINGS, "clock_hz", "chip", "overheads", "core_types")
CORE_KEYS = ("name", *(f.key for f in CORE_FIGURES), "memories")
MEMORY_KEYS = ("name", "fill_from", *(f.key for f in MEMORY_FIGURES))

#: Unit of every figure by field name (the unit is also spelled in the name itself).
UNITS: dict[str, str] = {
    f.key: f.unit for f in (*TOP_FIGURES, *CHIP_FIGURES, *OVERHEAD_FIGURES, *CORE_FIGURES, *MEMORY_FIGURES)
}
_FIGURE_HINT = '{ value = ..., source = "where it comes from", confidence = "published|derived|guessed|measured" }'


def parse_hardware(text: str, where: str, path: Path | None = None) -> HardwareProfile:
    """Parse and validate the text of a profile; `where` (the file) starts every error message."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        if msg.endswith("(at end of document)"):  # tomllib gives no line there: the file's last line (truncated?)
            last = len(text.splitlines()) or 1
            msg = msg.replace("(at end of document)", f"(at end of document, line {last})")
        raise UserError(f"{where}: not valid TOML ({msg}); fix the syntax at that line") from None
    hw = _Parser(where).profile(doc, path)
    validate_hardware(hw, where)
    return hw


class _Parser:
    """Reads the TOML document into dataclasses, checking presence, type and sign of every field."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.provenance: dict[str, tuple[str, str]] = {}

    def fail(self, field: str, problem: str) -> UserError:
        return UserError(f"{self.where}: field '{field}' {problem}")

    def table(self, parent: dict[str, Any], key: str, at: str) -> dict[str, Any]:
        if key not in parent:
            raise self.fail(at, f"is missing: add a [{at}] table")
        value = parent[key]
        if not isinstance(value, dict):
            raise self.fail(at, f"must be a table, got {_show(value)}: write it as [{at}]")
        return value

    def known_keys(self, table: dict[str, Any], allowed: tuple[str, ...], at: str) -> None:
        for key in table:
            if key not in allowed:
                field = f"{at}.{key}" if at else key
                raise self.fail(field, f"is not a known field: use one of {', '.join(allowed)} (see docs)")

    def string(self, table: dict[str, Any], key: str, at: str, identifier: bool = False) -> str:
        field = f"{at}.{key}" if at else key
        if key not in table:
            raise self.fail(field, "is missing: add it as a quoted string")
        value = table[key]
        if not isinstance(value, str) or not value.strip():
            raise self.fail(field, f"must be a non-empty string, got {_show(value)}")
        if identifier and not _IDENTIFIER.fullmatch(value):
            raise self.fail(field, f"is {_show(value)}: use only letters, digits, '_' and '-' (it names figure paths)")
        return value

    def figure(self, table: dict[str, Any], spec: FieldSpec, at: str) -> Any:
        field = f"{at}.{spec.key}" if at else spec.key
        if spec.key not in table:
            raise self.fail(field, f"is missing: add it as {_FIGURE_HINT}")
        fig = table[spec.key]
        if not isinstance(fig, dict):
            raise self.fail(field, f"must be an inline table {_FIGURE_HINT}, got {_show(fig)}")
        for key in fig:
            if key not in _FIGURE_KEYS:
                raise self.fail(field, f"has unknown key '{key}': a figure holds only value, source, confidence")
        for key in _FIGURE_KEYS:
            if key not in fig:
                raise self.fail(field, f"has no '{key}': write it as {_FIGURE_HINT}")
        source, confidence = fig["source"], fig["confidence"]
        if not isinstance(source, str) or not source.strip():
            raise self.fail(field, "has an empty 'source': say where the figure comes from (document, arithmetic)")
        if confidence not in CONFIDENCES:
            raise self.fail(field, f"has confidence {_show(confidence)}: use one of {', '.join(CONFIDENCES)}")
        value = _check_value(fig["value"], spec, lambda problem: self.fail(field, problem))
        self.provenance[field] = (source, confidence)
        return value

    def profile(self, doc: dict[str, Any], path: Path | None) -> HardwareProfile:
        self.known_keys(doc, TOP_KEYS, "")
        name = self.string(doc, "name", "", identifier=True)
        description, family = (self.string(doc, key, "") for key in TOP_STRINGS[1:])
        clock_hz = self.figure(doc, TOP_FIGURES[0], "")
        chip = self.table(doc, "chip", "chip")
        self.known_keys(chip, tuple(f.key for f in CHIP_FIGURES), "chip")
        chip_values = {f.key: self.figure(chip, f, "chip") for f in CHIP_FIGURES}
        over = self.table(doc, "overheads", "overheads")
        self.known_keys(over, tuple(f.key for f in OVERHEAD_FIGURES), "overheads")
        overheads = Overheads(**{f.key: self.figure(over, f, "overheads") for f in OVERHEAD_FIGURES})
        if "core_types" not in doc:
            raise self.fail("core_types", "is missing: add at least one [[core_types]] table")
        cores_raw = doc["core_types"]
        if not isinstance(cores_raw, list) or not cores_raw or not all(isinstance(c, dict) for c in cores_raw):
            raise self.fail("core_types", "must be a non-empty array of [[core_types]] tables")
        core_types = tuple(self.core(c, i) for i, c in enumerate(cores_raw))
        return HardwareProfile(
            name=name,
            description=description,
            family=family,
            clock_hz=clock_hz,
            core_types=core_types,
            overheads=overheads,
            provenance=dict(self.provenance),
            path=path,
            **chip_values,
        )

    def core(self, raw: dict[str, Any], index: int) -> CoreType:
        name = self.string(raw, "name", f"core_types[{index}]", identifier=True)
        at = f"core_types.{name}"
        self.known_keys(raw, CORE_KEYS, at)
        values = {f.key: self.figure(raw, f, at) for f in CORE_FIGURES}
        mems_raw = raw.get("memories", [])
        if not isinstance(mems_raw, list) or not all(isinstance(m, dict) for m in mems_raw):
            raise self.fail(f"{at}.memories", "must be an array of [[core_types.memories]] tables")
        memories = tuple(self.memory(m, i, at) for i, m in enumerate(mems_raw))
        return CoreType(name=name, memories=memories, **values)

    def memory(self, raw: dict[str, Any], index: int, core_at: str) -> LocalMemory:
        name = self.string(raw, "name", f"{core_at}.memories[{index}]", identifier=True)
        at = f"{core_at}.memories.{name}"
        self.known_keys(raw, MEMORY_KEYS, at)
        fill_from = self.string(raw, "fill_from", at)
        values = {f.key: self.figure(raw, f, at) for f in MEMORY_FIGURES}
        return LocalMemory(name=name, fill_from=fill_from, **values)


def _check_value(value: Any, spec: FieldSpec, fail: Callable[[str], UserError]) -> Any:
    """Type, finiteness, sign and power-of-two checks of one figure's value; returns it as `spec.kind`."""
    if spec.kind is bool:
        if not isinstance(value, bool):
            raise fail(f"must have value true or false, got {_show(value)}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise fail(f"must have a numeric value in {spec.unit}, got {_show(value)}")
    if spec.kind is int and not isinstance(value, int):
        raise fail(f"must have an integer value in {spec.unit}, got {_show(value)}")
    if not math.isfinite(value):
        raise fail(f"must have a finite value, got {_show(value)}")
    if spec.rule == "positive" and value <= 0:
        raise fail(f"must be > 0 {spec.unit}, got {_show(value)}: {spec.meaning} cannot be zero or negative")
    if spec.rule == "nonnegative" and value < 0:
        raise fail(f"must be >= 0 {spec.unit}, got {_show(value)}: {spec.meaning} cannot be negative")
    if spec.power_of_two and value & (value - 1):
        raise fail(f"must be a power of two {spec.unit}, got {value}: hardware moves aligned power-of-two blocks")
    return spec.kind(value)


def _show(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str | int | float | bool) else type(value).__name__


def validate_hardware(hw: HardwareProfile, where: str) -> None:
    """Cross-field physics checks of a parsed (or programmatically built) profile; raises `UserError`."""

    def fail(field: str, problem: str) -> UserError:
        return UserError(f"{where}: field '{field}' {problem}")

    if hw.l2_capacity_bytes >= hw.gm_capacity_bytes:
        raise fail(
            "chip.l2_capacity_bytes",
            f"is {hw.l2_capacity_bytes} B, not below chip.gm_capacity_bytes ({hw.gm_capacity_bytes} B): "
            "a cache is smaller than the memory it caches; check the units (bytes)",
        )
    names = [c.name for c in hw.core_types]
    for name in names:
        if names.count(name) > 1:
            raise fail(f"core_types.{name}", "names two core types: give each [[core_types]] a distinct name")
    if not any(c.runs_lookups for c in hw.core_types):
        raise fail(
            "core_types",
            "has no core type with runs_lookups = true: mark the cores that run embedding look-ups",
        )
    for core in hw.core_types:
        _validate_core(hw, core, fail)


def _validate_core(hw: HardwareProfile, core: CoreType, fail: Callable[[str, str], UserError]) -> None:
    at = f"core_types.{core.name}"
    # One core cannot move more than the whole chip: per-core rate x clock <= chip-wide bandwidth.
    for key, chip_key, chip_bw in (
        ("gm_read_bytes_per_cycle", "chip.gm_bandwidth_bytes_per_s", hw.gm_bandwidth_bytes_per_s),
        ("gm_stream_bytes_per_cycle", "chip.gm_bandwidth_bytes_per_s", hw.gm_bandwidth_bytes_per_s),
        ("l2_read_bytes_per_cycle", "chip.l2_bandwidth_bytes_per_s", hw.l2_bandwidth_bytes_per_s),
    ):
        rate = getattr(core, key)
        if rate * hw.clock_hz > chip_bw * (1 + 1e-9):
            raise fail(
                f"{at}.{key}",
                f"is {rate:g} B/cycle = {rate * hw.clock_hz:.4g} B/s at clock_hz, above {chip_key} "
                f"({chip_bw:.4g} B/s): one core cannot read faster than the whole chip; check both figures",
            )
    if core.l2_latency_cycles > core.gm_latency_cycles:
        raise fail(
            f"{at}.l2_latency_cycles",
            f"is {core.l2_latency_cycles:g} cycles, above gm_latency_cycles ({core.gm_latency_cycles:g}): "
            "a global-memory read passes the L2, so an L2 hit cannot be slower; check both figures",
        )
    if core.runs_lookups:
        for key in ("gather_bytes_per_cycle", "pool_bytes_per_cycle", "block_pool_bytes_per_cycle"):
            if getattr(core, key) <= 0:
                raise fail(
                    f"{at}.{key}",
                    "must be > 0 B/cycle on a core type with runs_lookups = true: a core that pools "
                    "embedding rows needs a gather and an accumulate rate",
                )
        for key in ("route_cycles_per_id", "scan_cycles_per_id", "sort_cycles_per_id", "pin_cycles_per_id"):
            if getattr(core, key) <= 0:
                raise fail(
                    f"{at}.{key}",
                    "must be > 0 cycles/id on a core type with runs_lookups = true: handling a look-up id "
                    "(compare, compact, sort, search) is never free; derive it from the vector width or measure it",
                )
    mem_names = [m.name for m in core.memories]
    for mem in core.memories:
        mat = f"{at}.memories.{mem.name}"
        if mem.name == GM:
            raise fail(mat, f"uses the reserved name {GM!r} (global memory): rename the local memory")
        if mem_names.count(mem.name) > 1:
            raise fail(mat, f"names two memories of core type {core.name!r}: give each a distinct name")
        if mem.fill_from != GM and mem.fill_from not in mem_names:
            raise fail(
                f"{mat}.fill_from",
                f"is {mem.fill_from!r}, which is neither {GM!r} nor a memory of core type {core.name!r} "
                f"({', '.join(mem_names)}): name where this memory is filled from",
            )
        if mem.fill_from == mem.name:
            raise fail(f"{mat}.fill_from", f"names the memory itself: fill {mem.name} from {GM!r} or another memory")
        if mem.block_bytes > mem.capacity_bytes:
            raise fail(
                f"{mat}.block_bytes",
                f"is {mem.block_bytes} B, larger than capacity_bytes ({mem.capacity_bytes} B): check the units",
            )
        if mem.capacity_bytes > hw.gm_capacity_bytes:
            raise fail(f"{mat}.capacity_bytes", "exceeds chip.gm_capacity_bytes: check the units (bytes)")
        if mem.fill_from == GM and mem.fill_bytes_per_cycle * hw.clock_hz > hw.gm_bandwidth_bytes_per_s * (1 + 1e-9):
            raise fail(
                f"{mat}.fill_bytes_per_cycle",
                f"is {mem.fill_bytes_per_cycle:g} B/cycle from {GM}, above chip.gm_bandwidth_bytes_per_s at "
                "clock_hz: one core cannot fill faster than the whole chip reads; check both figures",
            )
    # Every fill chain must end in GM: follow fill_from links; revisiting a memory is a cycle.
    by_name = {m.name: m for m in core.memories}
    for mem in core.memories:
        seen = [mem.name]
        cur = mem
        while cur.fill_from != GM:
            nxt = by_name[cur.fill_from]
            if nxt.name in seen:
                chain = " -> ".join([*seen, nxt.name])
                raise fail(
                    f"{at}.memories.{mem.name}.fill_from",
                    f"forms a cycle ({chain}): every chain of fill_from must end in {GM!r}",
                )
            seen.append(nxt.name)
            cur = nxt


def figure_paths(hw: HardwareProfile) -> list[tuple[str, Any]]:
    """(dotted path, value) of every figure of `hw`, in file order: the keys of `provenance`."""
    out: list[tuple[str, Any]] = [("clock_hz", hw.clock_hz)]
    out += [(f"chip.{f.key}", getattr(hw, f.key)) for f in CHIP_FIGURES]
    out += [(f"overheads.{f.key}", getattr(hw.overheads, f.key)) for f in OVERHEAD_FIGURES]
    for core in hw.core_types:
        at = f"core_types.{core.name}"
        out += [(f"{at}.{f.key}", getattr(core, f.key)) for f in CORE_FIGURES]
        for mem in core.memories:
            out += [(f"{at}.memories.{mem.name}.{f.key}", getattr(mem, f.key)) for f in MEMORY_FIGURES]
    return out


def _provenance(hw: HardwareProfile, field: str) -> tuple[str, str]:
    if field not in hw.provenance:
        raise ValueError(f"hardware profile {hw.name!r}: no provenance (source, confidence) for {field!r}")
    return hw.provenance[field]


def _figure_dict(hw: HardwareProfile, field: str, value: Any) -> dict[str, Any]:
    source, confidence = _provenance(hw, field)
    return {"value": value, "unit": UNITS[field.rsplit(".", 1)[-1]], "source": source, "confidence": confidence}


def hardware_to_dict(hw: HardwareProfile) -> dict[str, Any]:
    """Every figure with its value, unit, source and confidence (for `hw show --json` and for run records)."""

    def figs(obj: Any, specs: tuple[FieldSpec, ...], at: str) -> dict[str, Any]:
        return {f.key: _figure_dict(hw, f"{at}{f.key}", getattr(obj, f.key)) for f in specs}

    cores = []
    for core in hw.core_types:
        at = f"core_types.{core.name}."
        memories = [
            {"name": m.name, "fill_from": m.fill_from, **figs(m, MEMORY_FIGURES, f"{at}memories.{m.name}.")}
            for m in core.memories
        ]
        cores.append({"name": core.name, **figs(core, CORE_FIGURES, at), "memories": memories})
    return {
        "name": hw.name,
        "description": hw.description,
        "family": hw.family,
        "path": str(hw.path) if hw.path is not None else None,
        "lookup_cores": hw.lookup_cores.name,
        "n_cores": hw.n_cores,
        **figs(hw, TOP_FIGURES, ""),
        "chip": figs(hw, CHIP_FIGURES, "chip."),
        "overheads": figs(hw.overheads, OVERHEAD_FIGURES, "overheads."),
        "core_types": cores,
    }


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # shortest text that reads back to the same float
    return json.dumps(value, ensure_ascii=False)  # a TOML basic string: JSON's escapes are a subset


def _toml_figure(hw: HardwareProfile, key: str, field: str, value: Any) -> str:
    source, confidence = _provenance(hw, field)
    return (
        f"{key} = {{ value = {_toml_value(value)}, source = {_toml_value(source)}, "
        f"confidence = {_toml_value(confidence)} }}"
    )


def dump_hardware_toml(hw: HardwareProfile) -> str:
    """A valid profile file for `hw` (every figure with its provenance); `parse_hardware` reads it back equal."""
    validate_hardware(hw, f"hardware profile {hw.name!r}")
    lines = [
        f"# Hardware profile {hw.name}: written by autotune. Format: docs/hardware-profiles.md",
        f"name = {_toml_value(hw.name)}",
        f"description = {_toml_value(hw.description)}",
        f"family = {_toml_value(hw.family)}",
        _toml_figure(hw, "clock_hz", "clock_hz", hw.clock_hz),
        "",
        "[chip]",
        *(_toml_figure(hw, f.key, f"chip.{f.key}", getattr(hw, f.key)) for f in CHIP_FIGURES),
        "",
        "[overheads]",
        *(_toml_figure(hw, f.key, f"overheads.{f.key}", getattr(hw.overheads, f.key)) for f in OVERHEAD_FIGURES),
    ]
    for core in hw.core_types:
        at = f"core_types.{core.name}"
        lines += ["", "[[core_types]]", f"name = {_toml_value(core.name)}"]
        lines += [_toml_figure(hw, f.key, f"{at}.{f.key}", getattr(core, f.key)) for f in CORE_FIGURES]
        for mem in core.memories:
            mat = f"{at}.memories.{mem.name}"
            lines += ["", "[[core_types.memories]]", f"name = {_toml_value(mem.name)}"]
            lines.append(f"fill_from = {_toml_value(mem.fill_from)}")
            lines += [_toml_figure(hw, f.key, f"{mat}.{f.key}", getattr(mem, f.key)) for f in MEMORY_FIGURES]
    return "\n".join(lines) + "\n"
