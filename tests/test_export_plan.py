"""The TorchRec-style export and the native export on a hand-made run: shapes, tiling rules, schema, bad plans.

Every expected figure (row splits, ranks, kernels) is worked out by hand from the mapping below.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
from model_helpers import round_chip, workload, zipf_table

from autotune.errors import UserError
from autotune.export import ExportOptions, exporters, get_exporter, render
from autotune.export.base import load_schema, schema_errors
from autotune.export.torchrec import check_plan, placement, row_splits
from autotune.model.evaluate import predict
from autotune.model.mapping import Mapping, TableMapping
from autotune.search.loaded import LoadedRun

MODULE = "sparse.ebc"
DIM = 16


def _run() -> LoadedRun:
    """Four cores; one table per case: data parallel, table-wise with hot rows, balanced row shards,
    replicated row shards with the L1 strategy, an int8 table."""
    prof = workload(
        zipf_table("dp", rows=100, dim=DIM),
        zipf_table("tw", rows=1000, dim=DIM),
        zipf_table("bal", rows=10, dim=DIM),
        zipf_table("rep", rows=7, dim=DIM),
        zipf_table("q", rows=20, dim=DIM, dtype="int8"),
    )
    hw = round_chip(cores=4)
    mapping = Mapping(
        tables=(
            TableMapping("dp", replicas=4, placement=((0,), (1,), (2,), (3,))),
            TableMapping("tw", hot_rows=8, placement=((1,),)),
            TableMapping("bal", shards=3, sharding="balanced", dedup=True, placement=((2, 0, 3),)),
            TableMapping("rep", replicas=2, shards=2, strategy="L1", placement=((3, 1), (0, 2))),
            TableMapping("q", placement=((2,),)),
        ),
        name="hand",
    )
    pred = predict(prof, hw, mapping, 64)
    return LoadedRun(
        name="hand",
        path=Path("hand"),
        doc={},
        profile=prof,
        hw=hw,
        batch_size=64,
        mapping=pred.mapping,
        prediction=pred,
        stored_latency_s=None,
    )


@pytest.fixture(scope="module")
def run() -> LoadedRun:
    return _run()


@pytest.fixture(scope="module")
def doc(run: LoadedRun) -> dict:
    return render(get_exporter("torchrec"), run, ExportOptions(module=MODULE))


def test_row_splits_by_hand():
    assert row_splits(10, 3) == [3, 3, 4]
    assert row_splits(7, 2) == [3, 4]
    assert row_splits(10, 8) == [1, 1, 1, 2, 1, 1, 1, 2]  # edges floor(10 j / 8) = 0,1,2,3,5,6,7,8,10
    assert row_splits(5, 5) == [1] * 5
    assert row_splits(2_000_000, 16) == [125_000] * 16
    with pytest.raises(ValueError):
        row_splits(3, 4)


def test_row_splits_tile_and_stay_within_one_row_of_equal_ranges():
    for rows in (1, 2, 3, 10, 37, 1000, 999_983):
        for k in range(1, min(rows, 48) + 1):
            sizes = row_splits(rows, k)
            assert len(sizes) == k and sum(sizes) == rows
            assert min(sizes) >= 1 and max(sizes) <= math.ceil(rows / k) and max(sizes) - min(sizes) <= 1
            start = 0
            for j, size in enumerate(sizes):
                assert abs(start - j * rows / k) < 1  # the model's boundary j * rows / k, rounded down
                start += size


def test_placement_strings():
    assert placement(3, "cuda") == "rank:3/cuda:3"
    assert placement(0, "npu") == "rank:0/npu:0"
    assert placement(5, "cpu") == "rank:5/cpu"


def test_plan_per_table(doc):
    plan = doc["plan"][MODULE]
    assert doc["hardware"]["world_size"] == 4 and doc["hardware"]["device_type"] == "npu"
    assert plan["dp"] == {
        "sharding_type": "data_parallel",
        "compute_kernel": "dense",
        "ranks": [0, 1, 2, 3],
        "shards": None,
    }
    assert plan["tw"] == {
        "sharding_type": "table_wise",
        "compute_kernel": "fused",
        "ranks": [1],
        "shards": [{"shard_offsets": [0, 0], "shard_sizes": [1000, DIM], "placement": "rank:1/npu:1"}],
    }
    assert plan["bal"]["sharding_type"] == "row_wise" and plan["bal"]["ranks"] == [2, 0, 3]
    assert [s["shard_offsets"] for s in plan["bal"]["shards"]] == [[0, 0], [3, 0], [6, 0]]
    assert [s["shard_sizes"] for s in plan["bal"]["shards"]] == [[3, DIM], [3, DIM], [4, DIM]]
    assert [s["placement"] for s in plan["bal"]["shards"]] == ["rank:2/npu:2", "rank:0/npu:0", "rank:3/npu:3"]
    # two replicas of two shards: TorchRec holds replica 0 (cores 3, 1), rows 0..2 and 3..6
    assert plan["rep"]["sharding_type"] == "row_wise" and plan["rep"]["ranks"] == [3, 1]
    assert [s["shard_sizes"][0] for s in plan["rep"]["shards"]] == [3, 4]
    assert plan["q"]["compute_kernel"] == "quant" and plan["q"]["sharding_type"] == "table_wise"
    assert doc["tables"]["q"] == {"num_embeddings": 20, "embedding_dim": DIM, "data_type": "INT8"}


def test_extension_says_what_torchrec_cannot(doc):
    ext = doc["autotune"]["tables"]
    assert doc["autotune"]["module"] == MODULE
    assert ext["dp"]["torchrec_exact"] is True and ext["dp"]["not_expressed"] == []
    assert ext["dp"]["exported_replica"] is None
    assert ext["tw"]["not_expressed"] == ["hot_rows"]
    assert ext["tw"]["hot_row_cache"] == {
        "rows_per_shard": 8,
        "cache_params": {"algorithm": "LFU", "load_factor": 0.008},
    }
    assert ext["bal"]["not_expressed"] == ["dedup", "id_remap"]
    remap = ext["bal"]["id_remap"]
    assert remap["kind"] == "frequency_balanced" and remap["shard_rows"] == [3, 3, 4] and remap["remap_bytes"] == 40
    assert ext["rep"]["not_expressed"] == ["replicas", "strategy"]
    assert ext["rep"]["placement"] == [[3, 1], [0, 2]] and ext["rep"]["exported_replica"] == 0
    assert ext["q"]["torchrec_exact"] is True and ext["q"]["hot_row_cache"] is None and ext["q"]["id_remap"] is None
    for name, e in ext.items():
        assert math.isclose(sum(e["shard_load_share"]), 1.0, rel_tol=1e-9), name
        assert len(e["shard_load_share"]) == len(e["shard_rows"]) == e["shards"]


def test_plan_and_extension_cover_every_table_and_pass_the_rules(run, doc):
    names = [t.name for t in run.mapping.tables]
    assert list(doc["plan"][MODULE]) == names == list(doc["autotune"]["tables"]) == list(doc["tables"])
    assert schema_errors(doc, load_schema("torchrec_plan.schema.json")) == []
    check_plan(doc)
    assert doc["predicted_latency_s"] == run.prediction.latency_s


def test_module_path_must_be_a_dotted_name(run):
    with pytest.raises(UserError, match="--module"):
        render(get_exporter("torchrec"), run, ExportOptions(module="a..b"))


def test_native_export_is_the_mapping_with_every_core(run):
    native = render(get_exporter("json"), run, ExportOptions())
    assert native["version"] == 1 and native["name"] == "hand"
    assert [t["placement"] for t in native["tables"]] == [
        [[0], [1], [2], [3]],
        [[1]],
        [[2, 0, 3]],
        [[3, 1], [0, 2]],
        [[2]],
    ]
    assert schema_errors(native, load_schema("mapping.schema.json")) == []


def test_registry_lists_both_formats_and_rejects_others():
    assert set(exporters()) == {"json", "torchrec"}
    with pytest.raises(UserError, match=r"'xml' is not an export format; use one of: json .*; torchrec "):
        get_exporter("xml")


def _broken(doc: dict, change) -> dict:
    d = copy.deepcopy(doc)
    change(d["plan"][MODULE], d)
    return d


P = f"plan.{MODULE}"
BROKEN = [
    (
        lambda p, d: p["bal"]["shards"][1]["shard_offsets"].__setitem__(0, 4),
        rf"{P}.bal.shards\[1\].shard_offsets: .*gap",
    ),
    (lambda p, d: p["bal"]["shards"][1]["shard_offsets"].__setitem__(0, 2), rf"{P}.bal.shards\[1\].*overlaps"),
    (
        lambda p, d: p["bal"]["shards"][2]["shard_sizes"].__setitem__(0, 3),
        rf"{P}.bal.shards: cover rows 0..8, .* 10 rows",
    ),
    (
        lambda p, d: p["bal"]["shards"][2]["shard_sizes"].__setitem__(0, 5),
        rf"{P}.bal.shards\[2\].shard_sizes: ends at row 11",
    ),
    (lambda p, d: p["tw"]["shards"][0]["shard_sizes"].__setitem__(1, 8), rf"{P}.tw.shards\[0\]: .*all 16 columns"),
    (lambda p, d: p["tw"]["shards"][0]["shard_offsets"].__setitem__(1, 8), rf"{P}.tw.shards\[0\]: covers columns 8"),
    (lambda p, d: p["bal"]["ranks"].pop(), rf"{P}.bal: 2 ranks for 3 shards"),
    (lambda p, d: p["bal"].__setitem__("sharding_type", "table_wise"), rf"{P}.bal.shards: table_wise has exactly one"),
    (lambda p, d: p["bal"]["shards"][0].__setitem__("placement", "rank:1/npu:1"), rf"{P}.bal.shards\[0\].placement"),
    (lambda p, d: p["bal"]["shards"][0].__setitem__("placement", "rank:2/cuda:2"), r"should be 'rank:2/npu:2'"),
    (lambda p, d: p["bal"]["ranks"].__setitem__(0, 0), rf"{P}.bal.ranks: a rank appears twice"),
    (lambda p, d: p["tw"]["ranks"].__setitem__(0, 9), rf"{P}.tw.ranks: rank 9 is out of range; world_size is 4"),
    (lambda p, d: p["dp"]["ranks"].pop(), rf"{P}.dp.ranks: data_parallel must list every rank 0..3"),
    (lambda p, d: p["dp"].__setitem__("shards", []), rf"{P}.dp.shards: "),
    (lambda p, d: p["tw"].__setitem__("shards", None), rf"{P}.tw.shards: None is not of type 'array'"),
    (lambda p, d: p["tw"].pop("sharding_type"), rf"{P}.tw: 'sharding_type' is a required property"),
    (lambda p, d: p["tw"].__setitem__("compute_kernel", "magic"), rf"{P}.tw.compute_kernel: 'magic' is not one of"),
    (lambda p, d: d.__setitem__("version", 2), r"version: 1 was expected"),
    (lambda p, d: d["tables"].pop("q"), rf"{P}.q: table 'q' has no entry in 'tables'"),
]


@pytest.mark.parametrize(("change", "message"), BROKEN)
def test_broken_plans_are_refused_naming_the_field(doc, change, message):
    with pytest.raises(UserError, match=message):
        check_plan(_broken(doc, change), where="plan.json")
