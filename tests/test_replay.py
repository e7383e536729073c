"""Replay: pooled outputs equal the reference for every strategy, sharded and replicated; bad input is one line."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from autotune.cli import app
from autotune.hwload import load_hardware
from autotune.model.mapping import Mapping, TableMapping
from autotune.replay import prepare, replay
from autotune.replay.batches import TableBatch
from autotune.replay.kernels import PreparedTask, route, segment_sum
from autotune.replay.tables import shard_layout
from autotune.workload import load_profile
from tests.replay_helpers import make_profile

runner = CliRunner()


@pytest.fixture(scope="module")
def profile_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_profile(tmp_path_factory.mktemp("replay"), queries=3000)


@pytest.fixture(scope="module")
def two_core_hw():
    hw = load_hardware("cpu-generic")
    return replace(hw, core_types=(replace(hw.core_types[0], count=2),))


def _mapping(names, **knobs) -> Mapping:
    return Mapping(tables=tuple(TableMapping(n, **knobs) for n in names))


CASES = [
    {"strategy": "GM"},
    {"strategy": "GM", "replicas": 2},
    {"strategy": "GM", "shards": 2},
    {"strategy": "GM", "shards": 2, "sharding": "balanced", "hot_rows": 4, "dedup": True},
    {"strategy": "GM", "hot_rows": 16},
    {"strategy": "L1", "shards": 2, "dedup": True},
    {"strategy": "L1", "replicas": 2},
    {"strategy": "GM-UB", "shards": 2, "chunk_bytes": 4096},
    {"strategy": "GM-UB", "replicas": 2, "dedup": True, "chunk_bytes": 2048},
    {"strategy": "L1-UB", "shards": 2, "sharding": "balanced", "chunk_bytes": 8192},
]


@pytest.mark.parametrize("knobs", CASES, ids=lambda k: "-".join(f"{v}" for v in k.values()))
def test_replay_equals_reference(profile_dir: Path, two_core_hw, knobs) -> None:
    prof = load_profile(profile_dir)
    # replay raises ReplayMismatch if any batch's pooled output differs from the reference
    r = replay(prof, two_core_hw, _mapping(prof.table_names, **knobs), 128, n_batches=2, warmup=1)
    d = r.to_dict()
    assert d["batches"] == 2 and len(d["per_core"]) == 2
    assert d["measured_latency_s"] > 0 and d["p99_latency_s"] >= d["measured_latency_s"]
    assert d["predicted_latency_s"] == r.prediction.latency_s
    tasks = knobs.get("replicas", 1) * knobs.get("shards", 1) * len(prof.tables)
    assert sum(c["tasks"] for c in d["per_core"]) == tasks


def test_replay_scaled(profile_dir: Path, two_core_hw) -> None:
    prof = load_profile(profile_dir)
    r = replay(prof, two_core_hw, _mapping(prof.table_names, shards=2), 64, n_batches=1, warmup=0, scale=0.1)
    assert r.prediction.tables[2].name == "t_med"
    assert r.to_dict()["scale"] == 0.1


def test_segment_sum_matches_loop() -> None:
    rng = np.random.default_rng(3)
    sizes = rng.integers(0, 5, 50)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    rows = rng.integers(-8, 9, (int(offsets[-1]), 6)).astype(np.float32)
    out = np.empty((50, 6), np.float32)
    segment_sum(rows, offsets, out)
    for q in range(50):
        assert np.array_equal(out[q], rows[offsets[q] : offsets[q + 1]].sum(axis=0))


def test_segment_sum_with_an_order_pools_each_bag_into_its_query() -> None:
    # bags laid out by length 0, 1, 1, 3: bag j belongs to query order[j]
    rows = np.arange(10, dtype=np.float32).reshape(5, 2)  # rows 0..4 = [0,1], [2,3], ...
    offsets = np.array([0, 0, 1, 2, 5])
    order = np.array([2, 0, 3, 1])
    out = np.full((4, 2), 99.0, np.float32)
    segment_sum(rows, offsets, out, order)
    assert out.tolist() == [[0.0, 1.0], [4 + 6 + 8.0, 5 + 7 + 9.0], [0.0, 0.0], [2.0, 3.0]]


@pytest.mark.parametrize("balanced", [False, True])
def test_route_keeps_each_querys_lookups_of_its_shard(balanced: bool) -> None:
    rng = np.random.default_rng(5)
    rows, queries = 40, 30
    sizes = rng.integers(0, 6, queries)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    ids = rng.integers(0, rows, int(offsets[-1]))
    batch = TableBatch(ids, offsets, np.repeat(np.arange(queries, dtype=np.int32), sizes))
    shard_of = (np.arange(rows) * 7 % 3 == 0).astype(np.int16) if balanced else None
    local = np.zeros(rows, np.int32)
    if balanced:
        for s in (0, 1):
            local[shard_of == s] = np.arange(int(np.count_nonzero(shard_of == s)))
    task = PreparedTask(
        table=0, replica=0, shard=1, core=0, strategy="GM", dedup=False, q0=5, q1=25, shards=2, lo=10, hi=40,
        shard_of=shard_of, local=local if balanced else None, src=np.zeros((rows, 1), np.float32),
        hot_ids=np.empty(0, np.int64), hot_data=np.empty((0, 1), np.float32), chunk_rows=1, buf=None,
    )  # fmt: skip
    got, bag_offsets, order = route(task, batch)
    assert sorted(order.tolist()) == list(range(20))
    lengths = np.diff(bag_offsets)
    assert np.all(np.diff(lengths) >= 0)  # bags laid out by length
    for j, q in enumerate(order.tolist()):  # plain-Python reference: the query's ids of shard 1, in order
        mine = ids[offsets[5 + q] : offsets[6 + q]]
        want = [int(local[i]) for i in mine if shard_of[i] == 1] if balanced else [int(i) - 10 for i in mine if i >= 10]
        assert got[bag_offsets[j] : bag_offsets[j + 1]].tolist() == want


def test_prepared_data_replays_many_mappings(profile_dir: Path, two_core_hw) -> None:
    prof = load_profile(profile_dir)
    data = prepare(prof, 64, 3, seed=2)
    for knobs in ({}, {"shards": 2, "sharding": "balanced"}):
        r = replay(prof, two_core_hw, _mapping(prof.table_names, **knobs), 64, 2, 1, seed=2, data=data)
        assert len(r.latencies_s) == 2
    with pytest.raises(ValueError, match="prepared for another"):
        replay(prof, two_core_hw, _mapping(prof.table_names), 64, 3, 1, seed=2, data=data)


def test_balanced_layout_evens_the_load() -> None:
    # one row carries half of the look-ups: it sits alone, the 50 others make up the other shard's half
    freq = np.array([50.0] + [1.0] * 50)
    lay = shard_layout(51, TableMapping("t", shards=2, sharding="balanced"), freq)
    mass = [freq[m].sum() for m in lay.members]
    assert sorted(mass) == [50.0, 50.0]
    assert sorted(len(m) for m in lay.members) == [1, 50]
    assert np.array_equal(np.sort(np.concatenate(lay.members)), np.arange(51))
    # unread rows fill the shard with fewer rows first
    freq = np.array([3.0, 3.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    lay = shard_layout(8, TableMapping("t", shards=2, sharding="balanced"), freq)
    assert [freq[m].sum() for m in lay.members] == [5.0, 3.0]
    assert [len(m) for m in lay.members] == [4, 4]


def test_cli_json_and_errors(profile_dir: Path, tmp_path: Path) -> None:
    prof = load_profile(profile_dir)
    hwfile = tmp_path / "hw" / "cpu.toml"
    hwfile.parent.mkdir()
    text = (Path(__file__).resolve().parents[1] / "hwprofiles" / "cpu-generic.toml").read_text()
    text = text.replace('name = "cpu-generic"', 'name = "cpu"').replace("count = { value = 16,", "count = { value = 2,")
    hwfile.write_text(text)
    mfile = tmp_path / "m.json"
    mfile.write_text(json.dumps(_mapping(prof.table_names, replicas=2).to_dict()))
    base = ["replay", "--mapping", str(mfile), "--profile", str(profile_dir), "--hw", str(hwfile)]
    res = runner.invoke(app, [*base, "--batches", "2", "--warmup", "0", "-b", "64", "--json"])
    assert res.exit_code == 0, res.stderr
    d = json.loads(res.stdout)
    for key in ("measured_latency_s", "p99_latency_s", "predicted_latency_s", "per_core"):
        assert key in d
    # other jobs on the machine: a warning on stderr once the inputs are valid, the answer on stdout as before
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "getloadavg", lambda: (3.0, 3.0, 3.0))
        res = runner.invoke(app, [*base, "--batches", "2", "--warmup", "0", "-b", "64", "--json"])
    assert res.exit_code == 0, res.stderr
    assert "warning: the load average is 3.00" in res.stderr and "measured_latency_s" in json.loads(res.stdout)

    def fails(doc, *extra) -> str:
        mfile.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
        res = runner.invoke(app, [*base, *extra])
        assert res.exit_code != 0
        assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
        return res.stderr

    good = _mapping(prof.table_names).to_dict()
    assert "not a readable JSON mapping" in fails("{oops")
    unknown = json.loads(json.dumps(good))
    unknown["tables"][0]["name"] = "nope"
    assert "'nope' is not a table" in fails(unknown)
    far = json.loads(json.dumps(good))
    far["tables"][0]["placement"] = [[5]]
    assert "core 5 is out of range" in fails(far)
    many = json.loads(json.dumps(good))
    many["tables"][0]["replicas"] = 3
    assert "3 tasks" in fails(many)
    assert "--scale must be in (0, 1]" in fails(good, "--scale", "2")
    for zero in ("0", "-3"):  # not taken as "unset" (it ran at 512)
        assert f"--batch-size must be >= 1, got {zero}" in fails(good, "--batch-size", zero)
    generic = runner.invoke(
        app, ["replay", "--mapping", str(mfile), "--profile", str(profile_dir), "--hw", "cpu-generic"]
    )
    assert generic.exit_code != 0 and "16 look-up cores" in generic.stderr
    both = runner.invoke(app, ["replay", "somerun", "--mapping", str(mfile), "--profile", str(profile_dir)])
    assert both.exit_code != 0 and "either a RUN" in both.stderr


def test_batches_follow_counts(profile_dir: Path) -> None:
    from autotune.replay.batches import draw_batches, read_row_counts

    prof = load_profile(profile_dir)
    freq = read_row_counts(prof)
    tiny = prof.table("t_tiny")
    assert freq["t_tiny"].sum() == tiny.accesses
    batches = draw_batches(prof, freq, 2000, 3, seed=1)
    b: TableBatch = batches[0][prof.table_names.index("t_bag")]
    assert np.all(np.diff(b.offsets) == 3)  # pooling factor 3 exactly
    rows = np.concatenate([bb[0].rows for bb in batches])
    p = freq["t_tiny"] / freq["t_tiny"].sum()
    seen = np.bincount(rows, minlength=40) / rows.size
    assert abs(seen[0] - p[0]) < 4 * np.sqrt(p[0] * (1 - p[0]) / rows.size)


def _fnv1a64(text: str) -> int:
    """FNV-1a 64-bit of the UTF-8 text, by its spec (plain Python)."""
    h = 0xCBF29CE484222325
    for byte in text.encode("utf-8"):
        h = ((h ^ byte) * 0x100000001B3) % (1 << 64)
    return h


def _plain_log_batches(log: Path, rows: dict[str, int], batch: int, n: int, row_of) -> list[list[list[list[int]]]]:
    """[batch][table][query] -> rows, read with the csv module: queries in file order, wrapping at the end."""
    import csv

    with open(log, encoding="utf-8") as fh:
        lines = list(csv.DictReader(fh))
    out = []
    for b in range(n):
        qs = [lines[(b * batch + i) % len(lines)] for i in range(batch)]
        out.append([[[row_of(x, rows[t]) for x in q[t].split("|") if x] for q in qs] for t in rows])
    return out


@pytest.mark.parametrize("row_map", ["identity", "hash", "dense"])
def test_log_batches_are_the_logs_consecutive_queries(tmp_path: Path, row_map: str) -> None:
    from autotune.replay.logs import log_batches

    prof_dir = make_profile(tmp_path, queries=300, seed=4, row_map=row_map, missing=0.1)
    prof = load_profile(prof_dir)
    rows = {t.name: t.rows for t in prof.tables}
    if row_map == "dense":  # rows numbered in ascending id order over the log's distinct ids
        import csv

        with open(tmp_path / "log.csv", encoding="utf-8") as fh:
            lines = list(csv.DictReader(fh))
        dense = {t: {x: i for i, x in enumerate(sorted({int(v) for q in lines for v in q[t].split("|") if v}))}
                 for t in rows}  # fmt: skip
    for t in prof.tables:
        assert t.extra["row_map"] == row_map
    got = log_batches(prof, [tmp_path / "log.csv"], 128, 3)  # 384 queries of 300: the third batch wraps
    for t_name in rows:

        def row_of(x: str, n: int, t_name=t_name) -> int:
            if row_map == "identity":
                return int(x)
            if row_map == "hash":
                return _fnv1a64(x) % n
            return dense[t_name][int(x)]

        want = _plain_log_batches(tmp_path / "log.csv", {t_name: rows[t_name]}, 128, 3, row_of)
        ti = prof.table_names.index(t_name)
        for b in range(3):
            tb = got[b][ti]
            bags = [tb.rows[tb.offsets[q] : tb.offsets[q + 1]].tolist() for q in range(128)]
            assert bags == want[b][0]
            assert tb.qidx.tolist() == [q for q in range(128) for _ in bags[q]]


def test_replay_logs_pooled_outputs_equal_the_reference(tmp_path: Path, two_core_hw) -> None:
    prof_dir = make_profile(tmp_path, queries=500, seed=6, row_map="hash")
    prof = load_profile(prof_dir)
    for knobs in ({"replicas": 2}, {"shards": 2, "sharding": "balanced", "dedup": True}, {"strategy": "L1-UB"}):
        # ReplayMismatch if any batch differs from the reference
        r = replay(prof, two_core_hw, _mapping(prof.table_names, **knobs), 100, 2, 1, logs=[tmp_path / "log.csv"])
        assert r.to_dict()["batches_from"].startswith("consecutive queries of the log")


def test_replay_logs_bad_input_is_one_line(tmp_path: Path, profile_dir: Path) -> None:
    hwfile = tmp_path / "hw" / "cpu.toml"
    hwfile.parent.mkdir()
    text = (Path(__file__).resolve().parents[1] / "hwprofiles" / "cpu-generic.toml").read_text()
    hwfile.write_text(text.replace("count = { value = 16,", "count = { value = 2,"))
    prof = load_profile(profile_dir)
    mfile = tmp_path / "m.json"
    mfile.write_text(json.dumps(_mapping(prof.table_names).to_dict()))
    base = ["replay", "--mapping", str(mfile), "--profile", str(profile_dir), "--hw", str(hwfile), "-b", "16"]

    def fails(log: Path) -> str:
        res = runner.invoke(app, [*base, "--logs", str(log)])
        assert res.exit_code != 0 and "Traceback" not in res.stderr
        errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and res.stderr.strip().endswith(errors[0])  # progress lines, then one error
        return errors[0]

    other = tmp_path / "other.csv"
    other.write_text("t_tiny,t_small,t_bag,elsewhere\n1,2,3,4\n")
    assert "no column 't_med'" in fails(other)
    assert "none.csv" in fails(tmp_path / "none.csv")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 not really parquet")
    assert "bad.parquet" in fails(bad)
    short = tmp_path / "short.csv"
    short.write_text("t_tiny,t_small,t_med,t_bag\n1,2,3,4\n")
    assert "fewer than one batch" in fails(short)
    outside = tmp_path / "outside.csv"
    outside.write_text("t_tiny,t_small,t_med,t_bag\n" + "99999,2,3,4\n" * 20)
    assert "outside the table's rows" in fails(outside)


def test_long_form_log_replays_the_same_batches(tmp_path: Path) -> None:
    import csv

    from autotune.replay.logs import log_batches

    prof = load_profile(make_profile(tmp_path, queries=200, seed=8, missing=0.1))
    with open(tmp_path / "log.csv", encoding="utf-8") as fh:
        lines = list(csv.DictReader(fh))
    rng = np.random.default_rng(1)
    rows = [(f"q{i}", t, x) for i, q in enumerate(lines) for t in q for x in q[t].split("|") if x]
    # tables interleaved at random within each query (a query's ids of one table keep their order)
    by_query: dict[str, list] = {}
    for r in rows:
        by_query.setdefault(r[0], []).append(r)
    with open(tmp_path / "long.csv", "w", encoding="utf-8") as fh:
        fh.write("query_id,table,id\n")
        for q in by_query.values():
            tables = [r[1] for r in q]
            rng.shuffle(tables)
            per = {t: iter([r for r in q if r[1] == t]) for t in set(tables)}
            for t in tables:
                fh.write(",".join(next(per[t])) + "\n")
    wide = log_batches(prof, [tmp_path / "log.csv"], 50, 4)
    long = log_batches(prof, [tmp_path / "long.csv"], 50, 4)
    for bw, bl in zip(wide, long, strict=True):
        for a, b in zip(bw, bl, strict=True):
            assert a.rows.tolist() == b.rows.tolist() and a.offsets.tolist() == b.offsets.tolist()


def test_log_bag_separator_of_a_merged_profile() -> None:
    from autotune.replay.logs import _multi_sep

    assert _multi_sep({"multi_sep": "|"}) == "|"
    # merge_profiles keeps each merged profile's source under "sources"
    assert _multi_sep({"merged_from": ["a", "b"], "sources": [{"multi_sep": "|"}, {"multi_sep": "|"}]}) == "|"
    assert _multi_sep({"merged_from": ["a", "b"], "sources": [{}, {}]}) is None


def test_a_wrong_output_is_caught(profile_dir: Path, two_core_hw) -> None:
    from autotune.replay.driver import ReplayMismatch

    prof = load_profile(profile_dir)
    data = prepare(prof, 64, 3, seed=0)
    m = _mapping(prof.table_names, shards=2)
    replay(prof, two_core_hw, m, 64, n_batches=2, warmup=1, data=data)  # right answers pass
    bad = data.reference(2, 1).copy()
    bad[5] += 1.0  # the reference of batch 2, table 1, query 5 no longer matches what replay computes
    data._refs[(2, 1)] = bad
    with pytest.raises(ReplayMismatch, match=rf"table {prof.table_names[1]!r}, batch 2: .* in 1 of 64 queries"):
        replay(prof, two_core_hw, m, 64, n_batches=2, warmup=1, data=data)


def test_a_float16_profile_is_replayed_as_float32_and_says_so(profile_dir: Path, tmp_path: Path) -> None:
    import shutil

    half = tmp_path / "half"
    shutil.copytree(profile_dir, half)
    doc = json.loads((half / "profile.json").read_text())
    for t in doc["tables"][:2]:
        t["dtype"] = "float16"
    (half / "profile.json").write_text(json.dumps(doc))
    names = [t["name"] for t in doc["tables"]]
    hw = tmp_path / "cpu2.toml"
    text = (Path(__file__).resolve().parents[1] / "hwprofiles" / "cpu-generic.toml").read_text()
    hw.write_text(text.replace("count = { value = 16,", "count = { value = 2,"))
    mfile = tmp_path / "m.json"
    mfile.write_text(json.dumps(_mapping(names).to_dict()))
    base = ["replay", "--mapping", str(mfile), "--hw", str(hw), "--batches", "1", "--warmup", "0", "-b", "32"]
    res = runner.invoke(app, [*base, "--profile", str(half), "--json"])
    assert res.exit_code == 0, res.stderr
    d = json.loads(res.stdout)
    assert d["dtype"] == "float32" and d["converted_from"] == {names[0]: "float16", names[1]: "float16"}
    notes = [line for line in res.stderr.splitlines() if line.startswith("note: ")]
    assert notes == [
        f"note: 2 table(s) replayed and predicted as float32 copies, not their own dtype (float16: {names[0]}, "
        f"{names[1]}): replay's CPU kernels are float32 only, so latencies are those of 4-byte elements"
    ]
    # the prediction is the float32 profile's: the same as replaying the original float32 profile
    same = runner.invoke(app, [*base, "--profile", str(profile_dir), "--json"])
    assert same.exit_code == 0, same.stderr
    assert json.loads(same.stdout)["predicted_latency_s"] == d["predicted_latency_s"]
    assert json.loads(same.stdout)["converted_from"] == {} and "note: " not in same.stderr
