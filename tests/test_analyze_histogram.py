"""The count histogram's rank queries against a plain sorted list: the statistics of every table read
their cumulative look-ups and per-rank counts from it instead of sorting the ids."""

from __future__ import annotations

import numpy as np
import pytest

from analytics import stats


@pytest.mark.parametrize("seed", range(6))
def test_top_mass_at_rank_and_kth_largest_match_a_sorted_list(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    counts = rng.zipf(1.4, n).astype(np.int64) if seed % 2 else rng.integers(1, 6, n)
    if seed == 5:
        counts[0] = 10**13  # a count far beyond the ids: the histogram's sorting branch
    desc = sorted(counts.tolist(), reverse=True)
    hist = stats.count_histogram(counts)
    assert hist.distinct == n
    hs = np.arange(n + 1)
    assert hist.top_mass(hs).tolist() == [sum(desc[:h]) for h in range(n + 1)]
    ranks = np.arange(1, n + 1)
    assert hist.at_rank(ranks).tolist() == desc
    assert [hist.kth_largest(k) for k in (1, n)] == [desc[0], desc[-1]]


def test_empty_histogram_has_no_mass():
    hist = stats.count_histogram(np.zeros(0, dtype=np.int64))
    assert hist.distinct == 0 and hist.top_mass(np.array([0])).tolist() == [0]


def test_hot_ids_with_ties_at_the_kth_count():
    ids = ["d", "b", "a", "c", "e"]
    counts = np.array([3, 7, 3, 3, 1])
    hist = stats.count_histogram(counts)
    # the 2nd largest count is 3, shared by a, c, d: the tie goes to the smallest id
    assert stats.hot_ids(ids, counts, 2, hist) == (("b", 7), ("a", 3))
    assert stats.hot_ids(ids, counts, 2) == stats.hot_ids(ids, counts, 2, hist)
