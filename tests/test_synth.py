"""The synthetic generator's law, checked against figures computed here in plain Python / brute force.

Tolerances are statistical: a share p estimated from n independent draws has standard error
sqrt(p (1 - p) / n); we allow 5 standard errors (a false failure once in ~3.5 million runs), and the
generator is seeded, so each test is deterministic anyway.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from autotune.errors import UserError
from autotune.synth import (
    CHUNK_QUERIES,
    HEAD_RANKS,
    SynthSpec,
    TableSpec,
    generate,
    generate_table,
    ranks_to_rows,
    row_bijection,
    spec_from_dict,
    uniform_spec,
)


def tol(p: float, n: int, k: float = 5.0) -> float:
    return k * math.sqrt(max(p * (1 - p), 1e-12) / n)


def zipf_share(alpha: float, rows: int, top: int) -> float:
    """Share of the `top` hottest ranks under the bounded Zipf law, summed term by term in plain Python."""
    total = sum(k**-alpha for k in range(1, rows + 1))
    return sum(k**-alpha for k in range(1, top + 1)) / total


def test_one_hot_counts_follow_the_bounded_zipf_law() -> None:
    rows, alpha, n = 1000, 1.2, 200_000
    bags = generate_table(TableSpec("t", rows, alpha=alpha), n, seed=1, contiguous_hot=True)
    assert bags.lengths.tolist() == [1] * n
    counts = np.bincount(bags.rows, minlength=rows)
    total = sum(k**-alpha for k in range(1, rows + 1))
    for rank in (1, 2, 10, 100, 1000):  # contiguous: rank k is row k - 1
        p = rank**-alpha / total
        assert abs(counts[rank - 1] / n - p) < tol(p, n), rank
    for top in (10, 100, 500):  # coverage of the hottest 1%, 10%, 50% of rows
        p = zipf_share(alpha, rows, top)
        assert abs(counts[:top].sum() / n - p) < tol(p, n), top


def test_huge_table_tail_matches_brute_force_law() -> None:
    # 10^7 rows: ranks beyond the exact head come from the continuous (midpoint) law.
    rows, alpha, n = 10_000_000, 1.05, 400_000
    bags = generate_table(TableSpec("big", rows, alpha=alpha), n, seed=2, contiguous_hot=True)
    assert bags.rows.min() >= 0 and bags.rows.max() < rows
    w = np.arange(1, rows + 1, dtype=np.float64) ** -alpha  # brute-force law, independent of the sampler
    total = w.sum()
    for lo, hi in ((0, 1), (0, HEAD_RANKS), (HEAD_RANKS, 10**5), (10**5, 10**6), (10**6, rows)):
        p = w[lo:hi].sum() / total
        got = np.count_nonzero((bags.rows >= lo) & (bags.rows < hi)) / n
        assert abs(got - p) < tol(p, n), (lo, hi, got, p)


def test_alpha_at_most_one_is_uniform() -> None:
    rows, n = 50, 100_000
    bags = generate_table(TableSpec("u", rows, alpha=1.0), n, seed=3, contiguous_hot=True)
    counts = np.bincount(bags.rows, minlength=rows) / n
    assert np.abs(counts - 1 / rows).max() < tol(1 / rows, n)


def test_bags_are_distinct_and_sized_by_the_bag_law() -> None:
    n = 20_000
    fixed = generate_table(TableSpec("f", 500, pooling=5.0, bag="fixed", alpha=1.3), n, seed=4)
    assert fixed.lengths.tolist() == [5] * n and fixed.short == 0
    off = fixed.offsets
    assert all(len(set(fixed.rows[off[i] : off[i + 1]].tolist())) == 5 for i in range(n))
    pois = generate_table(TableSpec("p", 100_000, pooling=4.0, bag="poisson", alpha=1.1), n, seed=4)
    assert pois.lengths.min() >= 1
    # 1 + Poisson(3): mean 4, variance 3.
    assert abs(pois.lengths.mean() - 4.0) < 5 * math.sqrt(3.0 / n)
    frac = generate_table(TableSpec("q", 1000, pooling=2.25, alpha=0.0), n, seed=4)
    assert set(np.unique(frac.lengths).tolist()) == {2, 3}
    assert abs(frac.lengths.mean() - 2.25) < tol(0.25, n)


def test_bags_never_exceed_the_table() -> None:
    bags = generate_table(TableSpec("tiny", 3, pooling=5.0, alpha=0.0), 1000, seed=5)
    assert bags.lengths.tolist() == [3] * 1000
    assert all(sorted(r) == [0, 1, 2] for r in bags.rows.reshape(-1, 3).tolist())


def test_dedup_is_sampling_without_replacement() -> None:
    # Three rows with Zipf(2) weights 1, 1/4, 1/9; bags of two distinct ids drawn successively:
    # P({i, j}) = p_i p_j / (1 - p_i) + p_j p_i / (1 - p_j).
    w = [1.0, 0.25, 1 / 9]
    p = [x / sum(w) for x in w]
    n = 60_000
    bags = generate_table(TableSpec("s", 3, pooling=2.0, alpha=2.0), n, seed=6, contiguous_hot=True)
    pairs = bags.rows.reshape(-1, 2)
    got = {(0, 1): 0, (0, 2): 0, (1, 2): 0}
    for a, b in np.sort(pairs, axis=1).tolist():
        got[(a, b)] += 1
    for (i, j), c in got.items():
        want = p[i] * p[j] / (1 - p[i]) + p[j] * p[i] / (1 - p[j])
        assert abs(c / n - want) < tol(want, n), (i, j)


def test_missing_rate() -> None:
    n = 50_000
    bags = generate_table(TableSpec("m", 1000, pooling=3.0, alpha=1.1, missing=0.3), n, seed=7)
    empty = np.count_nonzero(bags.lengths == 0) / n
    assert abs(empty - 0.3) < tol(0.3, n)


def test_deterministic_and_prefix_stable() -> None:
    t = TableSpec("d", 10_000, pooling=3.0, alpha=1.2)
    a = generate_table(t, CHUNK_QUERIES + 500, seed=8)
    b = generate_table(t, CHUNK_QUERIES + 500, seed=8)
    assert np.array_equal(a.rows, b.rows) and np.array_equal(a.lengths, b.lengths)
    c = generate_table(t, 2 * CHUNK_QUERIES + 7, seed=8)  # a longer run starts with the same whole chunks
    first = int(a.lengths[:CHUNK_QUERIES].sum())
    assert np.array_equal(c.lengths[:CHUNK_QUERIES], a.lengths[:CHUNK_QUERIES])
    assert np.array_equal(c.rows[:first], a.rows[:first])
    d = generate_table(t, CHUNK_QUERIES + 500, seed=9)
    assert not np.array_equal(a.rows[:1000], d.rows[:1000])


def test_table_stream_does_not_depend_on_other_tables() -> None:
    t = TableSpec("same", 5000, pooling=2.0, alpha=1.2)
    one = next(generate(SynthSpec("a", (t,)), 1000, seed=1))[0]
    two = next(generate(SynthSpec("b", (TableSpec("other", 10), t)), 1000, seed=1))[1]
    assert np.array_equal(one.rows, two.rows)


@pytest.mark.parametrize("rows", [1, 2, 3, 997, 1000, 1024, 65_536, 100_003])
def test_row_map_is_a_bijection(rows: int) -> None:
    a, b = row_bijection(rows, seed=11, table="x", contiguous_hot=False)
    mapped = ranks_to_rows(np.arange(rows, dtype=np.int64), rows, a, b)
    assert np.array_equal(np.sort(mapped), np.arange(rows))
    assert row_bijection(rows, 11, "x", contiguous_hot=True) == (1, 0)


def test_contiguous_and_permuted_same_counts_different_row_ranges() -> None:
    rows, n, buckets = 100_000, 100_000, 16
    t = TableSpec("c", rows, alpha=1.1)
    hot = generate_table(t, n, seed=12, contiguous_hot=True)
    spread = generate_table(t, n, seed=12, contiguous_hot=False)
    # Same draws of ranks, only relabelled: the multiset of per-row counts is identical.
    assert np.array_equal(
        np.sort(np.bincount(hot.rows, minlength=rows)), np.sort(np.bincount(spread.rows, minlength=rows))
    )
    mass_hot = np.bincount(hot.rows * buckets // rows, minlength=buckets) / n
    mass_spread = np.bincount(spread.rows * buckets // rows, minlength=buckets) / n
    # Contiguous: the first range holds the hottest 6250 ranks; its share under the law, in plain Python.
    want = zipf_share(1.1, rows, rows // buckets)
    assert abs(mass_hot[0] - want) < tol(want, n)
    assert mass_hot[0] > 0.7
    # Permuted: hot ranks land all over; no range holds more than twice its fair share... except the one
    # holding the single hottest row (about 9% of accesses on its own).
    top = 1 / sum(k**-1.1 for k in range(1, rows + 1))
    assert mass_spread.max() < 2 / buckets + top


def test_uniform_spec_and_overrides() -> None:
    spec = uniform_spec(3, 500, pooling=2.0, alpha=1.3)
    assert [t.name for t in spec.tables] == ["C1", "C2", "C3"]
    assert all(t.bag == "poisson" and t.rows == 500 for t in spec.tables)
    assert spec.override(rows=9).tables[0].rows == 9
    with pytest.raises(UserError, match="'alpha'"):
        spec.override(alpha=-1.0)


def test_spec_from_dict_defaults_and_errors() -> None:
    spec = spec_from_dict(
        {
            "defaults": {"dim": 32, "alpha": 1.2},
            "tables": [{"name": "a", "rows": 10}, {"name": "b", "rows": 20, "pooling": 3}],
        },
        "spec.toml",
    )
    assert spec.tables[0] == TableSpec("a", 10, 32, "float32", 1.0, "fixed", 1.2, 0.0)
    assert spec.tables[1].bag == "poisson" and spec.tables[1].pooling == 3.0
    bad = [
        ({"tables": []}, "non-empty list"),
        ({"tables": [{"name": "a"}]}, "has no 'rows'"),
        ({"tables": [{"name": "a", "rows": 0}]}, "'rows' must be between"),
        ({"tables": [{"name": "a", "rows": 5, "colour": 1}]}, "unknown field"),
        ({"tables": [{"name": "a", "rows": 5}, {"name": "a", "rows": 6}]}, "appears twice"),
        ({"tables": [{"name": "a", "rows": 5, "bag": "geometric"}]}, "'bag'"),
        ({"tables": [{"name": "a", "rows": 5, "missing": 1.0}]}, "'missing'"),
        ({"tables": [{"name": "a", "rows": "many"}]}, "must be an integer"),
        ({"tables": [{"name": "a", "rows": 5, "dtype": "float64"}]}, "'dtype'"),
        ({"tables": [{"name": "a", "rows": 5, "pooling": 0.5}]}, "'pooling'"),
    ]
    for doc, msg in bad:
        with pytest.raises(UserError, match=msg) as exc:
            spec_from_dict(doc, "spec.toml")
        assert exc.value.message.startswith("spec.toml")
