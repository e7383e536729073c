"""The model spec: each embedding table's real size (rows), dim and dtype, from a TOML or JSON file.

Accepted shapes (the first is what `autotune synth` writes; its extra per-table fields such as `pooling`
or `alpha` are ignored here):

    name = "criteo"                  # optional
    [defaults]                       # optional: dim / dtype for every table
    dim = 128
    [[tables]]
    name = "C1"
    rows = 39884406

or a mapping `[tables.C1] rows = 39884406`. JSON files use the same structure.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autotune.docfile import load_doc
from autotune.dtypes import DTYPE_BYTES
from autotune.errors import UserError


@dataclass(frozen=True)
class TableSpec:
    """One table of the model: name, rows, embedding dim, element dtype."""

    name: str
    rows: int
    dim: int
    dtype: str


@dataclass(frozen=True)
class ModelSpec:
    """The tables of a model by name, and the file they came from (for messages)."""

    path: Path
    tables: dict[str, TableSpec]

    def get(self, name: str) -> TableSpec | None:
        return self.tables.get(name)


def load_model_spec(path: str | Path, default_dim: int = 64, default_dtype: str = "float32") -> ModelSpec:
    """Read and validate a model spec; every problem is a `UserError` naming the file and the field."""
    p = Path(path)
    doc = load_doc(p, "model spec (per-table rows, dim, dtype)")
    return spec_from_doc(doc, p, default_dim, default_dtype)


def spec_from_doc(doc: Any, path: Path, default_dim: int = 64, default_dtype: str = "float32") -> ModelSpec:
    """Validate a parsed spec document (see the module docstring for its shapes)."""
    if not isinstance(doc, dict) or "tables" not in doc:
        raise UserError(f"{path}: model spec needs a 'tables' list (or mapping) of tables with name and rows")
    defaults = doc.get("defaults", {})
    if not isinstance(defaults, dict):
        raise UserError(f"{path}: field 'defaults' must be a table of field = value")
    raw = doc["tables"]
    if isinstance(raw, dict):
        entries = [{"name": k, **v} if isinstance(v, dict) else v for k, v in raw.items()]
    elif isinstance(raw, list):
        entries = raw
    else:
        raise UserError(f"{path}: field 'tables' must be a list of [[tables]] or a mapping name -> table")
    if not entries:
        raise UserError(f"{path}: field 'tables' is empty")
    tables: dict[str, TableSpec] = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise UserError(f"{path}: tables[{i}] must be an object with name and rows")
        merged = {"dim": default_dim, "dtype": default_dtype, **defaults, **entry}
        name = merged.get("name")
        if not isinstance(name, str) or not name:
            raise UserError(f"{path}: tables[{i}] has no 'name'")
        at = f"{path}: table {name!r}"
        if "rows" not in merged:
            raise UserError(f"{at} has no 'rows'")
        rows, dim, dtype = merged["rows"], merged["dim"], merged["dtype"]
        for key, v in (("rows", rows), ("dim", dim)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise UserError(f"{at}: field '{key}' must be a positive integer, got {v!r}")
        if dtype not in DTYPE_BYTES:
            raise UserError(f"{at}: field 'dtype' is {dtype!r}; use one of {', '.join(DTYPE_BYTES)}")
        if name in tables:
            raise UserError(f"{at} is listed twice")
        tables[name] = TableSpec(name, rows, dim, dtype)
    return ModelSpec(path, tables)
