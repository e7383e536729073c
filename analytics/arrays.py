"""numpy <-> Arrow without pandas: `pa.array(ndarray)` and `Array.to_numpy()` import pandas (pyarrow checks
for its types), which costs 0.15-0.5 s of start-up in every `autotune analyze`; wrapping the buffers
directly does not.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def int64_array(values: np.ndarray) -> pa.Array:
    """An Arrow int64 array over (a contiguous int64 copy of) `values`, no nulls, zero-copy when possible."""
    a = np.ascontiguousarray(values, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(a), [None, pa.py_buffer(a)])


#: numpy dtypes of the Arrow integer types `int_numpy` views.
_INT_TYPES = {pa.int32(): np.int32, pa.int64(): np.int64, pa.uint32(): np.uint32, pa.uint64(): np.uint64}


def int_numpy(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A read-only numpy view of an Arrow integer array without nulls (what `values.to_numpy()` gives)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if values.null_count:
        raise ValueError("int_numpy needs an array without nulls")
    dtype = np.dtype(_INT_TYPES[values.type])
    return np.frombuffer(values.buffers()[1], dtype=dtype, count=len(values), offset=values.offset * dtype.itemsize)


#: Offset dtypes of the Arrow string types `strings_at` reads through their buffers.
_OFFSETS = {pa.string(): np.int32, pa.large_string(): np.int64}


def strings_at(values: pa.Array | pa.ChunkedArray, positions: np.ndarray) -> list[str]:
    """The strings at `positions` of an Arrow string array, as Python strings: `values.take(positions)
    .to_pylist()`, read from the buffers for a string array without nulls (`take` imports pyarrow.compute,
    0.035 s of every `autotune analyze`)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if values.null_count or values.type not in _OFFSETS:
        return values.take(int64_array(positions)).to_pylist()
    dtype = np.dtype(_OFFSETS[values.type])
    _, offsets_buf, data_buf = values.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=dtype, count=len(values) + 1, offset=values.offset * dtype.itemsize)
    data = memoryview(data_buf) if data_buf is not None else memoryview(b"")
    at = np.asarray(positions, dtype=np.int64)
    return [str(data[a:b], "utf-8") for a, b in zip(offsets[at].tolist(), offsets[at + 1].tolist(), strict=True)]


def large_strings(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """`values` as one large_string array; no cast (which imports pyarrow.compute, 0.035 s of start-up) when
    they are one already, as Polars hands string columns over."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return values if values.type == pa.large_string() else values.cast(pa.large_string())


def repeat_dictionary(value: str, n: int) -> pa.DictionaryArray:
    """`n` copies of `value` as a dictionary array (one entry, all-zero int32 indices): the table-name column
    of counts.parquet, which Parquet then writes without hashing every row's name."""
    indices = pa.Array.from_buffers(pa.int32(), n, [None, pa.py_buffer(np.zeros(n, dtype=np.int32))])
    raw = value.encode()
    offsets = pa.py_buffer(np.array([0, len(raw)], dtype=np.int32))
    dictionary = pa.Array.from_buffers(pa.string(), 1, [None, offsets, pa.py_buffer(raw)])
    return pa.DictionaryArray.from_arrays(indices, dictionary)
