"""The deterministic sampling hash of `--sample`.

Sampling keeps a row when splitmix64(seed, key) < fraction x 2^64, where key is the row's position in the
log (0-based, files in input order; in long logs: the FNV-1a hash of the query id, so whole queries are
kept) and splitmix64 is Steele, Lea and Flood's generator output for state seed + (key + 1) x
0x9E3779B97F4A7C15. It is computed in numpy (uint64 wrap-around), so the sample is the same on every
machine and library version, and tests recompute it in plain Python (`splitmix64`).
"""

from __future__ import annotations

import numpy as np

M64 = 1 << 64
GOLDEN_GAMMA = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB


def splitmix64(key: int, seed: int) -> int:
    """Reference implementation of the sampling hash (plain Python, for tests and documentation)."""
    z = (seed + (key + 1) * GOLDEN_GAMMA) % M64
    z = ((z ^ (z >> 30)) * MIX1) % M64
    z = ((z ^ (z >> 27)) * MIX2) % M64
    return z ^ (z >> 31)


def splitmix64_np(keys: np.ndarray, seed: int) -> np.ndarray:
    """`splitmix64` of every key, vectorised (uint64 arithmetic wraps mod 2^64 in numpy)."""
    with np.errstate(over="ignore"):
        z = np.uint64(seed % M64) + (keys.astype(np.uint64) + np.uint64(1)) * np.uint64(GOLDEN_GAMMA)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(MIX1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(MIX2)
        return z ^ (z >> np.uint64(31))


def keep_mask(keys: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """True for the keys a Bernoulli(fraction) sample keeps: splitmix64(seed, key) < fraction x 2^64."""
    threshold = min(int(fraction * M64), M64 - 1)
    return splitmix64_np(keys, seed) < np.uint64(threshold)


def kept_positions(n: int, fraction: float, seed: int, chunk: int = 1 << 24) -> np.ndarray:
    """Positions 0..n-1 (int64) that the sample keeps, computed chunk by chunk to bound memory."""
    parts = []
    for start in range(0, n, chunk):
        pos = np.arange(start, min(n, start + chunk), dtype=np.int64)
        parts.append(pos[keep_mask(pos, fraction, seed)])
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
