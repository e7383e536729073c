"""The interface every export target implements, and the schema check every export passes before it is written.

A target turns a loaded run into one JSON document (`Exporter.export`); `render` runs it and validates the
result against the target's JSON Schema shipped in `autotune/schemas/`, so a file that leaves autotune always
matches its published, versioned format. Options that only some targets read live in `ExportOptions`.
"""

from __future__ import annotations

import importlib.resources
import json
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

from autotune.search.loaded import LoadedRun

#: Module path of the embedding module in a TorchRec plan when none is given (EmbeddingBagCollection's
#: usual attribute name in TorchRec's DLRM: `model.sparse_arch.embedding_bag_collection`).
DEFAULT_MODULE = "sparse_arch.embedding_bag_collection"


@dataclass(frozen=True)
class ExportOptions:
    """Knobs of the export targets (each target reads the ones it needs)."""

    module: str = DEFAULT_MODULE  # torchrec: the module path the plan's tables belong to


class Exporter(Protocol):
    """One export target: a name for `--format`, a file suffix, a schema, and the conversion."""

    name: str  # the value of `--format`
    suffix: str  # suggested file suffix
    description: str  # one line for `--help` and the error listing the formats
    schema_file: str  # file name under autotune/schemas/

    def export(self, run: LoadedRun, options: ExportOptions) -> dict[str, Any]:
        """The document for `run` (a JSON-serialisable dict)."""
        ...

    def caveats(self, doc: dict[str, Any]) -> list[str]:
        """What the serving stack will not get from `doc` although the mapping decided it, one line each
        (`export` prints them on stderr); empty when the document says everything."""
        ...


@cache
def load_schema(file_name: str) -> dict[str, Any]:
    """A JSON Schema shipped in the package (`autotune/schemas/<file_name>`)."""
    text = (importlib.resources.files("autotune") / "schemas" / file_name).read_text(encoding="utf-8")
    return json.loads(text)


def schema_errors(doc: Any, schema: dict[str, Any]) -> list[str]:
    """Every way `doc` breaks `schema`, one line each (`field.path: problem`), most relevant first."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    errors = list(validator.iter_errors(doc))
    if not errors:
        return []
    best = jsonschema.exceptions.best_match(errors)
    ordered = [best] + [e for e in errors if e is not best]
    return [f"{field_path(e.absolute_path)}: {e.message}" for e in ordered]


def field_path(parts: Any) -> str:
    """['plan', 'm', 't0', 'shards', 2] -> 'plan.m.t0.shards[2]'."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def render(exporter: Exporter, run: LoadedRun, options: ExportOptions) -> dict[str, Any]:
    """Run `exporter` on `run` and check the result against its schema (a mismatch is a bug: RuntimeError)."""
    doc = exporter.export(run, options)
    problems = schema_errors(doc, load_schema(exporter.schema_file))
    if problems:
        raise RuntimeError(f"export {exporter.name}: output breaks {exporter.schema_file}: {problems[0]}")
    return doc
