"""Pure statistics of one table's id counts: every figure of a `TableProfile` from a counts array.

Nothing here reads files or the logs: the input is the per-id look-up counts (and, for `bucket_mass`, the
row each id maps to), so a profile can be recomputed from `counts.parquet` alone (that is how profiles
merge). Conventions:

- "hottest H ids" means the H largest counts (ties broken by id in `hot_ids`; shares do not depend on it).
- Coverage at p percent uses the hottest ceil(p% x distinct) ids, computed in exact rational arithmetic so
  that 0.1% of 1000 ids is exactly 1 id.
- Reuse bins are DreamShard's / Meta's `locality_stats`: (0,1], (1,2], (2,4], ..., (16384,32768],
  (32768,inf), i.e. count c falls in bin bit_length(c - 1), capped at 16.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import pyarrow as pa

from analytics.arrays import strings_at
from autotune.workload import COVERAGE_PERCENTS, N_BUCKETS, REUSE_BINS

#: Grid points per octave of the rank curve (H = round(2^(k / 4))).
RANK_POINTS_PER_OCTAVE = 4
#: The unique curve is evaluated at n = 2^0 .. 2^UNIQUE_MAX_LOG2 look-ups (a batch slice never holds more).
UNIQUE_MAX_LOG2 = 26
#: Zipf fit: ranks whose count is at least this many look-ups (below it, sampling noise flattens the tail).
ZIPF_MIN_COUNT = 10
#: Zipf fit: at most this share of the distinct ids (the head), and at least this many grid points.
ZIPF_HEAD_SHARE = 0.5
ZIPF_MIN_POINTS = 3


@dataclass(frozen=True)
class CountStats:
    """The frequency figures of one table, derived from its per-id counts only."""

    accesses: int
    distinct: int
    top_share: float
    zipf_alpha: float
    coverage: dict[str, float]
    rank_curve: tuple[tuple[int, float], ...]
    unique_curve: tuple[tuple[int, float], ...]
    reuse_rows: tuple[float, ...]
    reuse_accesses: tuple[float, ...]


#: `count_histogram` bins by `np.bincount` while the largest count is at most this many times the number
#: of ids (plus a constant); beyond it (a few ids read billions of times) it sorts instead.
BINCOUNT_SPAN = 64


@dataclass(frozen=True)
class CountHistogram:
    """How many ids have each count: `values` ascending and distinct, `mult[i]` ids seen `values[i]` times.

    It is the sort of the counts in compressed form: hottest-first counts are `values` repeated `mult`
    times, in reverse; every figure below derives from it (one O(ids) pass instead of a sort per figure).
    """

    values: np.ndarray  # int64, ascending, distinct
    mult: np.ndarray  # int64, > 0

    @property
    def distinct(self) -> int:
        return int(self.mult.sum())

    def desc(self) -> np.ndarray:
        """Every id's count, hottest first."""
        return np.repeat(self.values[::-1], self.mult[::-1])

    def top_mass(self, h: np.ndarray) -> np.ndarray:
        """Look-ups of the h hottest ids, for each h in `h` (0 <= h <= distinct), exact (int64): the cumulative
        sum of `desc()` at h, without building it (one step per distinct count value, not per id)."""
        h = np.asarray(h, dtype=np.int64)
        if len(self.values) == 0:
            return np.zeros(h.shape, dtype=np.int64)
        vals, mult = self.values[::-1], self.mult[::-1]
        ends = np.concatenate([[0], np.cumsum(mult)])  # ids before each group, hottest group first
        mass = np.concatenate([[0], np.cumsum(vals * mult)])  # look-ups before each group
        g = np.minimum(np.searchsorted(ends, h, side="left") - 1, len(vals) - 1).clip(0)  # group of the h-th id
        return mass[g] + (h - ends[g]) * vals[g]

    def at_rank(self, r: np.ndarray) -> np.ndarray:
        """The count of the r-th hottest id (1-based), for each r in `r` (1 <= r <= distinct): `desc()[r - 1]`."""
        ends = np.cumsum(self.mult[::-1])
        return self.values[::-1][np.searchsorted(ends, np.asarray(r, dtype=np.int64), side="left")]

    def kth_largest(self, k: int) -> int:
        """The k-th largest count (1 <= k <= distinct)."""
        return int(self.at_rank(np.array([k]))[0])


def count_histogram(counts: np.ndarray) -> CountHistogram:
    """The histogram of the counts: `np.bincount` when the counts are small, else one sort."""
    c = np.asarray(counts, dtype=np.int64)
    if len(c) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return CountHistogram(empty, empty)
    if c.min() < 0:
        raise ValueError("counts must be >= 0")
    top = int(c.max())
    if top <= BINCOUNT_SPAN * len(c) + (1 << 16):
        binned = np.bincount(c, minlength=top + 1)
        values = np.flatnonzero(binned)
        return CountHistogram(values.astype(np.int64), binned[values].astype(np.int64))
    srt = np.sort(c)
    starts = np.concatenate([[0], np.flatnonzero(srt[1:] != srt[:-1]) + 1])
    return CountHistogram(srt[starts], np.diff(np.append(starts, len(srt))).astype(np.int64))


def sorted_desc(counts: np.ndarray) -> np.ndarray:
    """Counts sorted hottest first, as int64."""
    return count_histogram(counts).desc()


def hottest_count(distinct: int, percent: str) -> int:
    """ceil(percent% x distinct), exactly (`percent` is a decimal string such as "0.1")."""
    return math.ceil(Fraction(percent) * distinct / 100)


def coverage(desc: np.ndarray, percents: tuple[str, ...] = COVERAGE_PERCENTS) -> dict[str, float]:
    """Share of accesses served by the hottest ceil(p% x distinct) ids, for each percent p."""
    return _coverage(count_histogram(desc), percents)


def _coverage(hist: CountHistogram, percents: tuple[str, ...] = COVERAGE_PERCENTS) -> dict[str, float]:
    distinct = hist.distinct
    total = int(hist.top_mass(np.array([distinct]))[0])
    out = {}
    for p in percents:
        k = min(hottest_count(distinct, p), distinct)
        out[p] = float(hist.top_mass(np.array([k]))[0] / total) if k > 0 and total > 0 else 0.0
    return out


def rank_grid(distinct: int, per_octave: int = RANK_POINTS_PER_OCTAVE) -> np.ndarray:
    """0, then round(2^(k/per_octave)) for k = 0, 1, ... below `distinct`, then `distinct` (strictly increasing)."""
    if distinct <= 0:
        return np.array([0], dtype=np.int64)
    top = math.log2(distinct) * per_octave
    pts = np.round(2.0 ** (np.arange(0, math.floor(top) + 1) / per_octave)).astype(np.int64)
    grid = np.concatenate([[0], pts[pts < distinct], [distinct]]).astype(np.int64)  # ascending, with repeats
    # the repeats dropped by comparing neighbours (np.unique would import numpy.ma: 0.012 s of start-up)
    return grid[np.concatenate([[True], grid[1:] != grid[:-1]])]


def rank_curve(desc: np.ndarray) -> tuple[tuple[int, float], ...]:
    """(H, share of accesses of the H hottest ids) on the log grid, from (0, 0) to exactly (distinct, 1)."""
    return _rank_curve(count_histogram(desc))


def _rank_curve(hist: CountHistogram) -> tuple[tuple[int, float], ...]:
    grid = rank_grid(hist.distinct)
    cum = hist.top_mass(grid)
    total = int(cum[-1])
    shares = cum / total if total > 0 else np.zeros(len(grid))
    pts = [(int(h), float(s)) for h, s in zip(grid, shares, strict=True)]
    if len(pts) == 1:  # no ids at all: a flat curve the loader accepts (two points, increasing x)
        pts.append((1, 0.0))
    else:
        pts[-1] = (pts[-1][0], 1.0)
    return tuple(pts)


def unique_curve(counts: np.ndarray, max_log2: int = UNIQUE_MAX_LOG2) -> tuple[tuple[int, float], ...]:
    """(n, expected distinct ids among n iid look-ups drawn from the observed frequencies), n = 1, 2, 4, ...

    E[distinct] = sum_i 1 - (1 - p_i)^n = -sum_i expm1(n log1p(-p_i)), evaluated once per distinct count
    value (ids with equal counts contribute equally), so the cost is (grid points x distinct count values).
    """
    return _unique_curve(count_histogram(counts), max_log2)


def _unique_curve(hist: CountHistogram, max_log2: int = UNIQUE_MAX_LOG2) -> tuple[tuple[int, float], ...]:
    values, mult = hist.values, hist.mult
    total = int(values @ mult)
    distinct = int(mult.sum())
    ns = 2 ** np.arange(0, max_log2 + 1, dtype=np.int64)
    if total == 0:
        return tuple((int(n), 0.0) for n in ns)
    p = values / total
    with np.errstate(divide="ignore"):
        lg = np.log1p(-p)  # -inf where p == 1 (a single id): expm1(-inf) = -1, i.e. always seen
    expected = -(np.expm1(np.outer(ns.astype(float), lg)) @ mult.astype(float))
    expected = np.minimum(expected, np.minimum(ns, distinct))  # rounding can only overshoot these bounds
    return tuple((int(n), float(e)) for n, e in zip(ns, expected, strict=True))


def reuse_bin(counts: np.ndarray) -> np.ndarray:
    """Power-of-two reuse bin of each count: (0,1] -> 0, (1,2] -> 1, (2,4] -> 2, ..., > 32768 -> 16."""
    c = np.asarray(counts, dtype=np.int64)
    _, exp = np.frexp((c - 1).astype(float))  # exp = bit_length(c - 1), exact for c - 1 < 2^53
    return np.minimum(exp, REUSE_BINS - 1)


def reuse_histograms(counts: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(share of distinct ids, share of accesses) per reuse bin."""
    return _reuse_histograms(count_histogram(counts))


def _reuse_histograms(hist: CountHistogram) -> tuple[tuple[float, ...], tuple[float, ...]]:
    values, mult = hist.values, hist.mult
    if len(values) == 0:
        zero = (0.0,) * REUSE_BINS
        return zero, zero
    b = reuse_bin(values)
    ids = np.bincount(b, weights=mult.astype(float), minlength=REUSE_BINS) / mult.sum()
    acc = np.bincount(b, weights=(values * mult).astype(float), minlength=REUSE_BINS) / (values @ mult)
    return tuple(ids.tolist()), tuple(acc.tolist())


def bucket_mass(rows: np.ndarray, counts: np.ndarray, n_rows: int, n_buckets: int = N_BUCKETS) -> tuple[float, ...]:
    """Share of accesses per contiguous row range: bucket b holds rows [b n_rows / B, (b + 1) n_rows / B).

    Row r falls in bucket floor(r B / n_rows). With no accesses the mass is spread evenly (an idle table
    loads every shard equally: zero), so the vector still sums to 1 as the profile requires.
    """
    r = np.asarray(rows, dtype=np.int64)
    c = np.asarray(counts, dtype=float)
    if len(r) == 0 or c.sum() == 0:
        return tuple([1.0 / n_buckets] * n_buckets)
    if r.min() < 0 or r.max() >= n_rows:
        raise ValueError(f"rows must lie in [0, {n_rows})")
    b = (r * n_buckets) // n_rows
    mass = np.bincount(b, weights=c, minlength=n_buckets) / c.sum()
    return tuple(mass.tolist())


def zipf_alpha(desc: np.ndarray) -> float:
    """Exponent a of count ~ rank^-a, by least squares of log count on log rank over the head.

    Which ranks: the log grid 1, round(2^(1/4)), round(2^(2/4)), ... (duplicates dropped), restricted to
    ranks r <= max(ZIPF_MIN_POINTS, ZIPF_HEAD_SHARE x distinct) whose count is >= ZIPF_MIN_COUNT; the log
    grid weights every octave of ranks equally instead of letting the long tail dominate, and the count
    floor drops the ranks where Poisson noise and ties (many ids seen once or twice) flatten the curve.
    With fewer than ZIPF_MIN_POINTS such ranks, every grid rank is used; with fewer than two, 0. The result
    is clipped at 0 (a flat or rising curve is "no skew").
    """
    return _zipf_alpha(count_histogram(desc))


def _zipf_alpha(hist: CountHistogram) -> float:
    d = hist.distinct
    if d < 2:
        return 0.0
    grid = rank_grid(d)[1:]  # ranks >= 1
    limit = max(ZIPF_MIN_POINTS, int(ZIPF_HEAD_SHARE * d))
    counts = hist.at_rank(np.minimum(grid, d))
    head = grid[(grid <= limit) & (counts >= ZIPF_MIN_COUNT)]
    if len(head) < ZIPF_MIN_POINTS:
        head = grid
    if len(head) < 2:
        return 0.0
    x = np.log(head.astype(float))
    y = np.log(hist.at_rank(head).astype(float))
    slope = np.polyfit(x, y, 1)[0]
    return float(max(0.0, -slope))


def count_stats(counts: np.ndarray, hist: CountHistogram | None = None) -> CountStats:
    """Every frequency figure of a table from its per-id counts (any order), from one count histogram
    (`hist`, when the caller has it, is `count_histogram(counts)`)."""
    hist = count_histogram(counts) if hist is None else hist
    distinct = hist.distinct
    total = int(hist.values @ hist.mult)
    reuse_rows, reuse_acc = _reuse_histograms(hist)
    return CountStats(
        accesses=total,
        distinct=distinct,
        top_share=float(hist.values[-1] / total) if total else 0.0,
        zipf_alpha=_zipf_alpha(hist),
        coverage=_coverage(hist),
        rank_curve=_rank_curve(hist),
        unique_curve=_unique_curve(hist),
        reuse_rows=reuse_rows,
        reuse_accesses=reuse_acc,
    )


def hot_ids(ids: Any, counts: np.ndarray, k: int, hist: CountHistogram | None = None) -> tuple[tuple[str, int], ...]:
    """The k most frequent (id, count), hottest first; equal counts in id order (deterministic).

    `ids` is any sequence aligned with `counts` (a list, a numpy or a pyarrow array); only the candidates
    are converted to Python strings, so a table of millions of ids costs one pass over the counts (the
    k-th largest count comes from the count histogram, `hist` when the caller has it), not a sort.
    """
    c = np.asarray(counts, dtype=np.int64)
    if k <= 0 or len(c) == 0:
        return ()
    k = min(k, len(c))
    kth = (count_histogram(c) if hist is None else hist).kth_largest(k)
    cand = np.flatnonzero(c >= kth)  # every id reaching the k-th largest count: boundary ties included
    names = strings_at(ids, cand) if isinstance(ids, (pa.Array, pa.ChunkedArray)) else [ids[i] for i in cand]
    order = sorted(range(len(cand)), key=lambda j: (-int(c[cand[j]]), str(names[j])))
    return tuple((str(names[j]), int(c[cand[j]])) for j in order[:k])


def binomial_stderr(share: float, n: int) -> float:
    """Standard error of a share estimated from n independent look-ups: sqrt(s (1 - s) / n)."""
    return math.sqrt(share * (1.0 - share) / n) if n > 0 else float("nan")
