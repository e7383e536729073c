"""`--format json`: the native mapping, as `autotune evaluate` and `autotune replay` read it.

It is the run's `mapping.json` with every task's core made explicit and the latency the model predicts for
it stamped in, so evaluating the exported file reproduces that latency bit for bit (the model is a pure
function of the mapping, the profile, the chip and the batch size, and the placement is fixed).
"""

from __future__ import annotations

from typing import Any

from autotune.export.base import ExportOptions
from autotune.search.loaded import LoadedRun


class NativeExporter:
    name = "json"
    suffix = ".mapping.json"
    description = "the native mapping (autotune/schemas/mapping.schema.json), explicit core per task"
    schema_file = "mapping.schema.json"

    def export(self, run: LoadedRun, options: ExportOptions) -> dict[str, Any]:
        return run.mapping.to_dict()

    def caveats(self, doc: dict[str, Any]) -> list[str]:
        return []  # the native mapping is the mapping itself


EXPORTER = NativeExporter()
