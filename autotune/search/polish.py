"""Coordinate descent from the best trial: change one parameter at a time, keep what lowers the latency.

TPE finds the right region quickly but spends many trials on the last few per cent, while one model
evaluation costs about a millisecond. So after the sampler's budget, every parameter of the best trial is
tried at each of its values (the others fixed) until no single change helps. The result is told to the
study as an ordinary trial, so the study, the run and a resumed search all see it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from autotune.model.context import ModelContext
from autotune.model.evaluate import score
from autotune.search.space import SearchSpace

MAX_SWEEPS = 8


class _RecordingTrial:
    """A stand-in for an Optuna trial: answers from `params`, else the first choice, and records what was asked.

    Lets the space say which parameters a set of values activates (a table's scheme only exists when it has
    more than one shard; the global knobs only when the light tables follow them).
    """

    def __init__(self, params: dict[str, Any]) -> None:
        self.given = params
        self.used: dict[str, Any] = {}
        self.choices: dict[str, Sequence[Any]] = {}

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        value = self.given.get(name, choices[0])
        if value not in choices:
            value = choices[0]
        self.used[name] = value
        self.choices[name] = choices
        return value


def _evaluate(space: SearchSpace, ctx: ModelContext, params: dict[str, Any]) -> tuple[float, dict, dict]:
    rec = _RecordingTrial(params)
    mapping = space.suggest(rec)  # type: ignore[arg-type]
    s = score(ctx, mapping)
    return (s.latency_s if s.feasible else float("inf")), rec.used, rec.choices


def polish(
    space: SearchSpace, ctx: ModelContext, params: dict[str, Any], budget_s: float = 30.0
) -> tuple[dict[str, Any], float]:
    """The locally optimal parameters reached from `params` (or the best found within `budget_s`), and
    their latency (inf if none is feasible)."""
    deadline = time.monotonic() + budget_s
    best, used, choices = _evaluate(space, ctx, params)
    current = used
    for _ in range(MAX_SWEEPS):
        improved = False
        for name in list(choices):
            for value in choices.get(name, ()):
                if value == current.get(name):
                    continue
                if time.monotonic() > deadline:
                    return current, best
                cand = {**current, name: value}
                lat, cand_used, cand_choices = _evaluate(space, ctx, cand)
                if lat < best * (1 - 1e-12):
                    best, current, choices, improved = lat, cand_used, cand_choices, True
        if not improved:
            break
    return current, best
