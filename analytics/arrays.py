"""numpy -> Arrow without pandas: `pa.array(ndarray)` imports pandas (pyarrow checks for categoricals),
which costs 0.2-0.5 s of start-up in every `autotune analyze`; wrapping the buffer directly does not.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def int64_array(values: np.ndarray) -> pa.Array:
    """An Arrow int64 array over (a contiguous int64 copy of) `values`, no nulls, zero-copy when possible."""
    a = np.ascontiguousarray(values, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(a), [None, pa.py_buffer(a)])


def repeat_string(value: str, n: int) -> pa.Array:
    """An Arrow string array of `n` copies of `value` (the table-name column of counts.parquet)."""
    raw = value.encode()
    large = n * len(raw) >= 2**31
    offsets = np.arange(n + 1, dtype=np.int64 if large else np.int32) * len(raw)
    arr = pa.Array.from_buffers(
        pa.large_string() if large else pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(raw * n)]
    )
    return arr.cast(pa.string()) if large else arr
