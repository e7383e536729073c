"""`autotune.jsontext.dumps`: the same value as `json.dumps`, containers indented, flat lists on one line."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from autotune.jsontext import dumps

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5)
values = st.recursive(
    scalars,
    lambda kids: (
        st.lists(kids, max_size=4)
        | st.dictionaries(st.text(max_size=3) | st.integers() | st.booleans() | st.none(), kids, max_size=4)
    ),
)


@given(values)
def test_reads_back_as_the_same_value_as_the_standard_encoder(value):
    assert json.loads(dumps(value)) == json.loads(json.dumps(value))


def test_layout_written_out_by_hand():
    doc = {"name": "C1", "curve": [[0, 0.0], [1, 0.5]], "mass": [0.25, 0.75], "coverage": {"1": 0.5}, "e": []}
    assert dumps(doc) == (
        "{\n"
        '  "name": "C1",\n'
        '  "curve": [[0, 0.0], [1, 0.5]],\n'
        '  "mass": [0.25, 0.75],\n'
        '  "coverage": {\n'
        '    "1": 0.5\n'
        "  },\n"
        '  "e": []\n'
        "}"
    )
    # a list holding a container deeper than a flat list is indented, element by element
    assert dumps([[1, {"x": 2}]], indent=1) == '[\n [\n  1,\n  {\n   "x": 2\n  }\n ]\n]'


def test_default_converts_what_json_has_no_type_for():
    def default(o):
        return o.tolist()

    got = dumps({"n": np.int64(3), "a": np.arange(3), "f": [np.float64(1.5), 2]}, default=default)
    assert got == '{\n  "n": 3,\n  "a": [0, 1, 2],\n  "f": [1.5, 2]\n}'


def test_subclasses_and_mixed_lists_keep_the_flat_layout():
    # the C-speed type test of long lists sees exact types only: an IntEnum, a bool or a mix of scalars and
    # flat lists must still be laid out as flat, as `json.dumps` would encode them
    import enum

    class Code(enum.IntEnum):
        A = 7

    doc = {"pairs": [[Code.A, 1.5], (2, True)], "mixed": [1, [2, 3]], "deep": [[1, [2]]]}
    assert dumps(doc) == (
        '{\n  "pairs": [[7, 1.5], [2, true]],\n  "mixed": [1, [2, 3]],\n  "deep": [\n    [1, [2]]\n  ]\n}'
    )
