"""Element types of embedding tables and their sizes in bytes.

A module of its own, with no numpy, so that `analyze` can check a model spec's dtypes before the statistics
stack is loaded (it loads while the log is being parsed: `analytics.pipeline`).
"""

from __future__ import annotations

#: Bytes per element of each supported embedding dtype.
DTYPE_BYTES: dict[str, int] = {"float32": 4, "float16": 2, "bfloat16": 2, "int8": 1, "uint8": 1}
