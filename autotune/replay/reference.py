"""The straightforward answer replay must match: for every query, the sum of its rows, from the unsharded table.

Independent of the kernels on purpose: no sharding, no remap, no chunks, no de-duplication; one scatter-add
(`np.add.at`) of every look-up's row into its query's output.
"""

from __future__ import annotations

import numpy as np

from autotune.replay.batches import TableBatch


def reference_pool(table: np.ndarray, batch: TableBatch, batch_size: int) -> np.ndarray:
    """(batch_size, dim) pooled sums of one table for one batch."""
    out = np.zeros((batch_size, table.shape[1]), dtype=np.float32)
    np.add.at(out, batch.qidx, table[batch.rows])
    return out
