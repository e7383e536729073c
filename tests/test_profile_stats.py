"""The pure statistics, row maps and sampling hash, checked against hand figures and plain-Python references."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from analytics import stats
from analytics.rowmap import fnv1a64, map_rows
from analytics.sampling import kept_positions, splitmix64, splitmix64_np
from autotune.errors import UserError


def test_coverage_uses_ceil_of_percent_of_distinct():
    # 1000 ids: id i (0-based) seen 1000 - i times. 0.1% of 1000 ids = exactly 1 id; 0.01% -> ceil(0.1) = 1.
    counts = np.arange(1000, 0, -1)
    total = sum(range(1, 1001))
    cov = stats.coverage(stats.sorted_desc(counts))
    assert cov["0.1"] == pytest.approx(1000 / total)
    assert cov["0.01"] == pytest.approx(1000 / total)
    assert cov["1"] == pytest.approx(sum(range(991, 1001)) / total)  # 10 hottest
    assert cov["50"] == pytest.approx(sum(range(501, 1001)) / total)  # 500 hottest
    # 3 ids: 10% -> ceil(0.3) = 1 id, 50% -> ceil(1.5) = 2 ids.
    cov3 = stats.coverage(np.array([6, 3, 1]))
    assert cov3["10"] == pytest.approx(0.6)
    assert cov3["50"] == pytest.approx(0.9)


def test_rank_curve_grid_and_endpoints():
    desc = stats.sorted_desc(np.array([5, 1, 3, 1, 2, 8, 1, 1, 1, 1]))
    curve = stats.rank_curve(desc)
    assert curve[0] == (0, 0.0)
    assert curve[-1] == (10, 1.0)
    xs = [h for h, _ in curve]
    assert xs == sorted(set(xs))
    # H = 1, 2, 3, 4 ... hottest: 8, 5, 3, 2 of 24 look-ups
    share = dict(curve)
    assert share[1] == pytest.approx(8 / 24)
    assert share[2] == pytest.approx(13 / 24)
    assert share[4] == pytest.approx(18 / 24)
    # about 4 points per octave: 2^20 ids give 0 + 81 grid points (2^0 .. 2^20 in quarter octaves)
    grid = stats.rank_grid(2**20)
    assert grid[0] == 0 and grid[-1] == 2**20
    assert 75 <= len(grid) <= 82


def test_unique_curve_matches_direct_formula():
    counts = np.array([50, 20, 20, 5, 3, 1, 1])
    total = counts.sum()
    curve = dict(stats.unique_curve(counts, max_log2=10))
    for n in (1, 2, 8, 64, 1024):
        expected = sum(1 - (1 - c / total) ** n for c in counts.tolist())
        assert curve[n] == pytest.approx(expected, rel=1e-12)
    assert curve[1] == pytest.approx(1.0)
    assert curve[1024] <= len(counts)
    # a single id is always seen: exactly 1 whatever n
    assert dict(stats.unique_curve(np.array([7]), max_log2=3)) == {1: 1.0, 2: 1.0, 4: 1.0, 8: 1.0}


def test_reuse_bins_by_hand():
    counts = np.array([1, 2, 3, 4, 5, 32768, 32769, 10**9])
    assert stats.reuse_bin(counts).tolist() == [0, 1, 2, 2, 3, 15, 16, 16]
    ids, acc = stats.reuse_histograms(np.array([1, 1, 2, 4]))
    assert len(ids) == len(acc) == 17
    assert ids[:3] == (0.5, 0.25, 0.25)
    assert acc[:3] == (pytest.approx(2 / 8), pytest.approx(2 / 8), pytest.approx(4 / 8))


def test_bucket_mass_contiguous_ranges():
    # 2048 rows into 1024 buckets: bucket = row // 2
    rows = np.array([0, 1, 2, 2047])
    counts = np.array([1, 1, 2, 4])
    mass = stats.bucket_mass(rows, counts, 2048)
    assert len(mass) == 1024
    assert mass[0] == pytest.approx(2 / 8) and mass[1] == pytest.approx(2 / 8) and mass[1023] == pytest.approx(4 / 8)
    assert sum(mass) == pytest.approx(1.0)
    # 3 rows: row r in bucket floor(r * 1024 / 3)
    m3 = stats.bucket_mass(np.array([0, 1, 2]), np.array([1, 1, 2]), 3)
    assert m3[0] == pytest.approx(0.25) and m3[341] == pytest.approx(0.25) and m3[682] == pytest.approx(0.5)


def test_zipf_alpha_recovers_exponent():
    # exact power law (no noise): count_r = round(1e7 r^-1.3)
    r = np.arange(1, 20001)
    exact = np.round(1e7 * r**-1.3).astype(np.int64)
    exact = exact[exact > 0]
    assert stats.zipf_alpha(stats.sorted_desc(exact)) == pytest.approx(1.3, abs=0.02)
    # an iid sample from a bounded Zipf(0.9) law over 100k ranks
    rng = np.random.default_rng(5)
    p = np.arange(1, 100_001, dtype=float) ** -0.9
    draws = rng.choice(len(p), size=400_000, p=p / p.sum())
    counts = np.bincount(draws)
    assert stats.zipf_alpha(stats.sorted_desc(counts[counts > 0])) == pytest.approx(0.9, abs=0.03)
    # uniform: no skew
    assert stats.zipf_alpha(stats.sorted_desc(np.full(100, 50))) == pytest.approx(0.0, abs=1e-9)


def test_hot_ids_order_and_ties():
    ids = pa.array(["b", "a", "c", "d"])
    assert stats.hot_ids(ids, np.array([5, 5, 9, 1]), 3) == (("c", 9), ("a", 5), ("b", 5))
    assert stats.hot_ids(["x"], np.array([2]), 64) == (("x", 2),)


def test_fnv1a64_published_vectors():
    # FNV-1a 64 test vectors (Fowler/Noll/Vo reference): "", "a", "foobar"
    h = fnv1a64(["", "a", "foobar"])
    assert [int(x) for x in h] == [0xCBF29CE484222325, 0xAF63DC4C8601EC8C, 0x85944171F73967E8]


def test_row_maps():
    ids = pa.array(["10", "2", "33"])
    rows, n = map_rows(ids, "dense", None, "t")
    assert rows.tolist() == [1, 0, 2] and n == 3
    rows, n = map_rows(pa.array(["b", "a", "c"]), "dense", 10, "t")
    assert rows.tolist() == [1, 0, 2] and n == 10
    rows, n = map_rows(ids, "identity", 40, "t")
    assert rows.tolist() == [10, 2, 33] and n == 40

    def fnv(s: str) -> int:
        h = 0xCBF29CE484222325
        for b in s.encode():
            h = ((h ^ b) * 0x100000001B3) % 2**64
        return h

    rows, n = map_rows(ids, "hash", 7, "t")
    assert rows.tolist() == [fnv(s) % 7 for s in ["10", "2", "33"]]
    with pytest.raises(UserError, match="outside the table's rows"):
        map_rows(ids, "identity", 20, "t")
    with pytest.raises(UserError, match="needs integer ids"):
        map_rows(pa.array(["x"]), "identity", 20, "t")


def test_sampling_hash_matches_reference():
    keys = np.arange(0, 5000, dtype=np.int64)
    assert [int(x) for x in splitmix64_np(keys[:50], 9)] == [splitmix64(int(k), 9) for k in keys[:50]]
    kept = kept_positions(5000, 0.1, 9, chunk=700)
    ref = [k for k in range(5000) if splitmix64(k, 9) < int(0.1 * 2**64)]
    assert kept.tolist() == ref
    assert abs(len(ref) - 500) < 4 * math.sqrt(5000 * 0.1 * 0.9)


def test_model_spec_shapes(tmp_path):
    from analytics.modelspec import load_model_spec

    synth_style = tmp_path / "model.toml"  # what `autotune synth` writes: extra law fields are ignored here
    synth_style.write_text(
        'name = "demo"\n[defaults]\ndim = 128\nalpha = 1.1\n'
        '[[tables]]\nname = "C1"\nrows = 3\npooling = 2.0\n[[tables]]\nname = "C2"\nrows = 40\ndtype = "int8"\n'
    )
    spec = load_model_spec(synth_style)
    assert spec.tables["C1"].rows == 3 and spec.tables["C1"].dim == 128 and spec.tables["C1"].dtype == "float32"
    assert spec.tables["C2"].dtype == "int8"
    mapping = tmp_path / "model.json"
    mapping.write_text('{"tables": {"user": {"rows": 10, "dim": 8}}}')
    assert load_model_spec(mapping).tables["user"].dim == 8
    bad = tmp_path / "bad.json"
    bad.write_text('{"tables": [{"name": "u", "rows": 10, "dtype": "float64"}]}')
    with pytest.raises(UserError, match=r"bad\.json: table 'u': field 'dtype'"):
        load_model_spec(bad)


def test_count_histogram_both_branches_match_counter():
    from collections import Counter

    rng = np.random.default_rng(1)
    small = rng.integers(1, 50, 5000)
    huge = np.concatenate([small, [10**12]])  # past BINCOUNT_SPAN: the sort branch
    for counts in (small, huge, np.array([3]), np.array([2, 2, 2])):
        h = stats.count_histogram(counts)
        ref = sorted(Counter(counts.tolist()).items())
        assert list(zip(h.values.tolist(), h.mult.tolist(), strict=True)) == ref
        assert h.desc().tolist() == sorted(counts.tolist(), reverse=True)
    empty = stats.count_histogram(np.zeros(0, dtype=np.int64))
    assert len(empty.values) == 0 and len(empty.desc()) == 0
    # the figures built on the histogram equal their direct definitions (sorted list, plain sums)
    ids, acc = stats.reuse_histograms(huge)
    assert ids[16] == pytest.approx(1 / len(huge)) and acc[16] == pytest.approx(10**12 / huge.sum())


def test_distinct_rows_and_fnv_fast_paths():
    from analytics.build import distinct_rows

    rows = np.array([5, 3, 5, 0, 3, 9])
    assert distinct_rows(rows) == len(set(rows.tolist())) == 4
    assert distinct_rows(np.zeros(0, dtype=np.int64)) == 0

    def fnv(s: str) -> int:
        h = 0xCBF29CE484222325
        for b in s.encode():
            h = ((h ^ b) * 0x100000001B3) % 2**64
        return h

    same_len = ["56e205fb", "862cdb1e", "00000000"]  # Criteo-style: the (n, 8) byte-matrix path
    mixed = ["ab", "abcdef", "", "é", "abc"]  # shortest-prefix then ragged tail
    for ids in (same_len, mixed):
        assert fnv1a64(ids).tolist() == [fnv(s) for s in ids]
        sliced = pa.array(["pad", *ids], pa.string()).slice(1)  # a non-zero array offset
        assert fnv1a64(sliced).tolist() == [fnv(s) for s in ids]
    # more ids than one hashing block (FNV_BLOCK): the ids on both sides of each block edge and at the end
    from analytics.rowmap import FNV_BLOCK

    n = 2 * FNV_BLOCK + 3
    edges = [0, FNV_BLOCK - 1, FNV_BLOCK, FNV_BLOCK + 1, 2 * FNV_BLOCK - 1, 2 * FNV_BLOCK, n - 1]
    for ids in ([f"{i:08x}" for i in range(n)], [f"{i:x}" * (1 + i % 3) for i in range(n)]):
        got = fnv1a64(pa.array(ids, pa.large_string()))
        assert [int(got[i]) for i in edges] == [fnv(ids[i]) for i in edges]


def test_arrow_helpers_round_trip():
    from analytics.arrays import int64_array, repeat_dictionary

    a = int64_array(np.array([3, -1, 7], dtype=np.int32))
    assert a.type == pa.int64() and a.to_pylist() == [3, -1, 7]
    assert repeat_dictionary("C1", 3).to_pylist() == ["C1", "C1", "C1"]
    assert repeat_dictionary("", 2).to_pylist() == ["", ""] and len(repeat_dictionary("x", 0)) == 0


def test_rank_grid_against_a_plain_python_grid():
    # the grid by its definition: 0, round(2^(k/4)) below distinct (repeats once), distinct
    for distinct in [*range(0, 300), 1000, 2**20 - 1, 2**20, 2**20 + 1, 39_884_406]:
        pts = {0, distinct} | {round(2 ** (k / 4)) for k in range(0, 200) if round(2 ** (k / 4)) < distinct}
        want = [0] if distinct <= 0 else sorted(pts)
        grid = stats.rank_grid(distinct)
        assert grid.dtype == np.int64 and grid.tolist() == want, distinct


def test_strings_at_reads_the_buffers_like_take():
    from analytics.arrays import strings_at

    words = ["", "a", "ß", "日本", "xyz" * 10, "😀x", "9f3e01ab"]
    rng = np.random.default_rng(3)
    picks = rng.integers(0, len(words), 400).tolist()
    for typ in (pa.string(), pa.large_string()):
        arr = pa.array([words[i] for i in picks], typ)
        sliced = arr.slice(17, 300)  # a non-zero array offset
        chunked = pa.chunked_array([arr.slice(0, 150), arr.slice(150)])
        for a, plain in ((arr, [words[i] for i in picks]), (sliced, [words[i] for i in picks[17:317]]),
                         (chunked, [words[i] for i in picks])):  # fmt: skip
            pos = rng.integers(0, len(a), 60)
            assert strings_at(a, pos) == [plain[i] for i in pos.tolist()]
            assert strings_at(a, np.zeros(0, dtype=np.int64)) == []
    # with nulls (or another type) it falls back to take, with the same answer
    assert strings_at(pa.array(["x", None, "z"]), np.array([2, 0, 1])) == ["z", "x", None]
    assert strings_at(pa.array([5, 6, 7]), np.array([2, 0])) == [7, 5]


def test_large_strings_casts_only_what_is_not_large_string_already():
    from analytics.arrays import large_strings

    big = pa.array(["a", "bc"], pa.large_string())
    assert large_strings(big) is big  # no cast, no copy
    small = large_strings(pa.array(["a", "bc"], pa.string()))
    assert small.type == pa.large_string() and small.to_pylist() == ["a", "bc"]
    chunked = large_strings(pa.chunked_array([pa.array(["a"]), pa.array(["b", "c"])]))
    assert isinstance(chunked, pa.Array) and chunked.to_pylist() == ["a", "b", "c"]


def test_profile_vectors_are_validated_element_by_element():
    # profile.json's vectors (reuse histograms, bucket masses) must be lists of non-negative numbers; JSON's
    # ints read as floats, and a null, a string, a negative share or a NaN names the table and the field
    from model_helpers import zipf_table

    from autotune.workload import TableProfile

    good = zipf_table("t", rows=1000, alpha=1.0).to_dict()
    ints = dict(good, reuse_rows=[1] + [0] * (len(good["reuse_rows"]) - 1))
    assert TableProfile.from_dict(ints).reuse_rows == (1.0,) + (0.0,) * (len(good["reuse_rows"]) - 1)
    for bad in (None, "0.5", -0.25, [0.5], float("nan")):
        mass = [*good["bucket_mass"][:-1], bad]
        with pytest.raises(UserError, match=r"p\.json: table 't': field 'bucket_mass' must hold non-negative numbers"):
            TableProfile.from_dict(dict(good, bucket_mass=mass), where="p.json")
