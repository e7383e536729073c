"""The latency model: predict one batch's latency for a mapping of embedding tables onto a chip's cores.

Build a `ModelContext(profile, hw, batch_size)` once; `predict` gives the full breakdown, `score` and
`evaluate_latency` are the search's fast path (same numbers). See docs/latency-model.md.
"""

from autotune.model.baselines import BASELINES, all_baselines, baseline
from autotune.model.bounds import LowerBound, knob_grid, lower_bound
from autotune.model.context import ModelContext
from autotune.model.evaluate import Prediction, Score, evaluate_latency, predict, score
from autotune.model.mapping import (
    DEFAULT_BATCH_SIZE,
    Mapping,
    TableMapping,
    load_mapping,
    parse_mapping,
    save_mapping,
    validate_mapping,
)

__all__ = [
    "BASELINES",
    "DEFAULT_BATCH_SIZE",
    "LowerBound",
    "Mapping",
    "ModelContext",
    "Prediction",
    "Score",
    "TableMapping",
    "all_baselines",
    "baseline",
    "evaluate_latency",
    "knob_grid",
    "load_mapping",
    "lower_bound",
    "parse_mapping",
    "predict",
    "save_mapping",
    "score",
    "validate_mapping",
]
