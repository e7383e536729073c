"""Export targets for a search run: each module here with an `EXPORTER` is one `--format` (a new target is one file).

`exporters()` lists them by name; `get_exporter(name)` picks one or raises a `UserError` listing the formats;
`render(exporter, run, options)` produces a document already checked against the target's shipped schema.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from autotune.errors import UserError
from autotune.export.base import DEFAULT_MODULE, Exporter, ExportOptions, render

__all__ = ["DEFAULT_MODULE", "ExportOptions", "Exporter", "exporters", "get_exporter", "render"]

_NOT_TARGETS = {"base"}


@cache
def exporters() -> dict[str, Exporter]:
    """Every export target, by `--format` name, discovered from this package's modules."""
    found: dict[str, Exporter] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name in _NOT_TARGETS:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        exporter = getattr(module, "EXPORTER", None)
        if exporter is not None:
            found[exporter.name] = exporter
    return found


def get_exporter(name: str) -> Exporter:
    """The target called `name`; an unknown name is a `UserError` that lists the formats."""
    targets = exporters()
    got = targets.get(name.strip().lower())
    if got is None:
        listing = "; ".join(f"{n} ({e.description})" for n, e in targets.items())
        raise UserError(f"--format {name!r} is not an export format; use one of: {listing}")
    return got
