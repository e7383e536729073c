"""Deterministic synthetic embedding look-ups, FBGEMM-style: the law, the spec and the pure generator.

The law of one table (`TableSpec`), per query:

1. Bag size. `missing` is the probability that the query has no value for this table (an empty bag). Else
   the bag size is drawn from `bag`: `"fixed"` = floor(pooling) plus one with probability frac(pooling)
   (so the mean is exactly `pooling`; pooling 1 is one-hot), `"poisson"` = 1 + Poisson(pooling - 1)
   (never empty, mean `pooling`). A bag never holds more ids than the table has rows.
2. Ranks. Ranks 1..rows are drawn from the bounded Zipf law P(k) ~ k^-alpha; alpha <= 1 means uniform
   (FBGEMM's convention). FBGEMM draws unbounded Zipf ranks modulo the table size; we keep the law bounded
   instead, so that the fitted exponent of the generated counts is alpha itself, whatever the table size
   (the two agree when the Zipf tail beyond `rows` is negligible).
3. De-duplication inside a bag: a bag keeps the first `size` distinct ranks of its stream of draws
   (successive sampling without replacement; FBGEMM keeps the smallest distinct ranks of 3L draws
   instead). A very skewed tiny table makes that slow: after `MAX_ROUNDS` rounds of redraws the few bags
   still short keep fewer ids; `Bags.short` counts them.
4. Rank -> row. Permuted (default): the affine bijection row = (a * (rank - 1) + b) mod rows, with a near
   rows / golden ratio and coprime with rows, and b, drawn from the seed: consecutive hot ranks land far
   apart and evenly over the row ranges (a Weyl sequence; three-distance theorem), without materialising a
   40M-entry permutation. `contiguous_hot`: the identity (rank k -> row k - 1), so the hottest rows are
   rows 0, 1, 2...: the adversarial case for contiguous row-range sharding.

Sampling ranks is vectorised inverse-CDF sampling: the exact normalised law over ranks 1..`HEAD_RANKS`
(a cumulative-sum table and a binary search), and beyond it the midpoint-rule continuous law (rank k gets
the mass of x^-alpha over [k - 1/2, k + 1/2]) sampled in closed form. The midpoint rule's relative error on
one rank's mass is about alpha(alpha + 1) / (24 k^2) < 1e-7 beyond the head: far below any sampling noise.
A small head keeps the binary search in cache (about 10M draws per second per core).

Determinism: queries are generated in chunks of `CHUNK_QUERIES`; the random stream of (table, chunk) is
`SeedSequence(seed, spawn_key=(1, crc32(table name), chunk))`, so a table's look-ups depend only on the
seed, its own spec and name, and the first k chunks of queries are the same whatever the total.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from autotune.dtypes import DTYPE_BYTES
from autotune.errors import UserError

#: Queries per generated chunk (Meta's 2021 trace batch size). Part of the law: changing it changes the output.
CHUNK_QUERIES = 65_536
#: Ranks sampled from the exact cumulative table; beyond them the midpoint-rule continuous law.
HEAD_RANKS = 4_096
#: Largest table: keeps a * rank inside int64 and ids inside 32 bits.
MAX_ROWS = 2**31 - 1
#: Redraw rounds of the in-bag de-duplication before a bag is left short.
MAX_ROUNDS = 64
BAG_LAWS: tuple[str, ...] = ("fixed", "poisson")
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


@dataclass(frozen=True)
class TableSpec:
    """The look-up law of one embedding table (see the module docstring)."""

    name: str
    rows: int
    dim: int = 128
    dtype: str = "float32"
    pooling: float = 1.0  # mean bag size of a query that has a value for this table
    bag: str = "fixed"  # bag-size law: "fixed" or "poisson"
    alpha: float = 1.1  # Zipf exponent of ranks; <= 1 means uniform
    missing: float = 0.0  # probability that a query has no value for this table

    @property
    def multi_hot(self) -> bool:
        """Whether a bag can hold more than one id."""
        return self.pooling > 1.0 or self.bag != "fixed"


@dataclass(frozen=True)
class SynthSpec:
    """A named set of tables: what `autotune synth` generates."""

    name: str
    tables: tuple[TableSpec, ...]

    def override(
        self,
        *,
        rows: int | None = None,
        pooling: float | None = None,
        alpha: float | None = None,
        dtype: str | None = None,
    ) -> SynthSpec:
        """The same spec with `rows`, `pooling`, `alpha` or `dtype` replaced in every table (None keeps them)."""
        given = (("rows", rows), ("pooling", pooling), ("alpha", alpha), ("dtype", dtype))
        changes = {k: v for k, v in given if v is not None}
        if not changes:
            return self
        spec = SynthSpec(self.name, tuple(replace(t, **changes) for t in self.tables))
        validate_spec(spec, "command line")
        return spec

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "tables": [{f.name: getattr(t, f.name) for f in fields(t)} for t in self.tables]}


@dataclass(frozen=True)
class Bags:
    """The look-ups of one table over a run of queries, in CSR form."""

    lengths: np.ndarray  # int64 (queries,): ids per query, 0 = missing
    rows: np.ndarray  # int64 (lengths.sum(),): row ids, grouped by query in query order
    short: int = 0  # bags left with fewer ids than drawn for (see MAX_ROUNDS)

    @property
    def offsets(self) -> np.ndarray:
        """Start of each query's bag in `rows`, plus the end (queries + 1 entries)."""
        return np.concatenate([[0], np.cumsum(self.lengths)])


# ---------------------------------------------------------------------------------------------------------
# Spec construction and validation


def uniform_spec(
    tables: int,
    rows: int,
    *,
    pooling: float = 1.0,
    alpha: float = 1.1,
    dim: int = 128,
    dtype: str = "float32",
    missing: float = 0.0,
    bag: str | None = None,
) -> SynthSpec:
    """`tables` identical tables named C1..CT (Criteo's names, so 26 one-hot tables are Criteo-shaped).

    Multi-hot tables (pooling > 1) default to the Poisson bag law, one-hot ones to fixed size 1.
    """
    law = bag or ("poisson" if pooling > 1.0 else "fixed")
    spec = SynthSpec(
        name=f"uniform{tables}",
        tables=tuple(
            TableSpec(f"C{i + 1}", rows, dim, dtype, float(pooling), law, float(alpha), float(missing))
            for i in range(tables)
        ),
    )
    validate_spec(spec, "command line")
    return spec


def validate_spec(spec: SynthSpec, where: str) -> None:
    """Raise `UserError` naming `where`, the table and the field for anything out of range."""
    if not spec.tables:
        raise UserError(f"{where}: the spec has no tables; give at least one [[tables]] entry")
    seen: set[str] = set()
    for t in spec.tables:
        at = f"{where}: table {t.name!r}"
        if not t.name or any(c in t.name for c in "\t\n,|\"'"):
            raise UserError(f"{where}: table name {t.name!r} must be non-empty without tabs, commas, quotes or '|'")
        if t.name in seen:
            raise UserError(f"{where}: table {t.name!r} appears twice; table names must be unique")
        seen.add(t.name)
        if not 1 <= t.rows <= MAX_ROWS:
            raise UserError(f"{at}: field 'rows' must be between 1 and {MAX_ROWS}, got {t.rows}")
        if t.dim < 1:
            raise UserError(f"{at}: field 'dim' must be >= 1, got {t.dim}")
        if t.dtype not in DTYPE_BYTES:
            raise UserError(f"{at}: field 'dtype' is {t.dtype!r}; use one of {', '.join(DTYPE_BYTES)}")
        if not (math.isfinite(t.pooling) and 1.0 <= t.pooling <= 10_000):
            raise UserError(f"{at}: field 'pooling' (mean bag size) must be in [1, 10000], got {t.pooling}")
        if t.bag not in BAG_LAWS:
            raise UserError(f"{at}: field 'bag' is {t.bag!r}; use one of {', '.join(BAG_LAWS)}")
        if not (math.isfinite(t.alpha) and 0.0 <= t.alpha <= 10.0):
            raise UserError(f"{at}: field 'alpha' must be in [0, 10] (<= 1 means uniform), got {t.alpha}")
        if not (math.isfinite(t.missing) and 0.0 <= t.missing < 1.0):
            raise UserError(f"{at}: field 'missing' must be in [0, 1), got {t.missing}")


_FIELD_TYPES: dict[str, type] = {
    "name": str,
    "rows": int,
    "dim": int,
    "dtype": str,
    "pooling": float,
    "bag": str,
    "alpha": float,
    "missing": float,
}


def spec_from_dict(d: Any, where: str, default_name: str = "spec") -> SynthSpec:
    """Build and validate a spec from a parsed TOML/JSON document.

    Shape: optional `name`, optional `[defaults]` (any table field but `name`), and `[[tables]]` entries
    with at least `name` and `rows`.
    """
    if not isinstance(d, dict):
        raise UserError(f"{where}: a spec must be an object with a 'tables' list")
    unknown = set(d) - {"name", "defaults", "tables"}
    if unknown:
        raise UserError(f"{where}: unknown top-level field(s) {', '.join(sorted(unknown))}; use name, defaults, tables")
    defaults = d.get("defaults", {})
    if not isinstance(defaults, dict):
        raise UserError(f"{where}: field 'defaults' must be a table of field = value")
    tables = d.get("tables")
    if not isinstance(tables, list) or not tables:
        raise UserError(f"{where}: field 'tables' must be a non-empty list of [[tables]] entries")
    parsed = []
    for i, entry in enumerate(tables):
        if not isinstance(entry, dict):
            raise UserError(f"{where}: tables[{i}] must be an object with name and rows")
        merged = {**defaults, **entry}
        bad = set(merged) - set(_FIELD_TYPES)
        if bad:
            raise UserError(
                f"{where}: tables[{i}] has unknown field(s) {', '.join(sorted(bad))}; use {', '.join(_FIELD_TYPES)}"
            )
        for key in ("name", "rows"):
            if key not in merged:
                raise UserError(f"{where}: tables[{i}] has no '{key}'")
        if "bag" not in merged:
            merged["bag"] = "poisson" if _as(merged, "pooling", float, where, i, 1.0) > 1.0 else "fixed"
        kwargs = {k: _as(merged, k, typ, where, i) for k, typ in _FIELD_TYPES.items() if k in merged}
        parsed.append(TableSpec(**kwargs))
    name = d.get("name", default_name)
    spec = SynthSpec(str(name), tuple(parsed))
    validate_spec(spec, where)
    return spec


def _as(d: dict[str, Any], key: str, typ: type, where: str, i: int, default: Any = None) -> Any:
    v = d.get(key, default)
    ok = (
        isinstance(v, str)
        if typ is str
        else (not isinstance(v, bool) and isinstance(v, int | float) and (typ is float or float(v).is_integer()))
    )
    if not ok:
        kind = {str: "a string", int: "an integer", float: "a number"}[typ]
        raise UserError(f"{where}: tables[{i}] field '{key}' must be {kind}, got {v!r}")
    return typ(v)


# ---------------------------------------------------------------------------------------------------------
# The law: ranks, the rank -> row bijection, bags


class RankSampler:
    """Draws 0-based ranks (0 = hottest) of one table from the bounded Zipf law, vectorised."""

    def __init__(self, rows: int, alpha: float) -> None:
        self.rows = rows
        self.alpha = alpha
        self.uniform = alpha <= 1.0
        if self.uniform:
            return
        head = min(rows, HEAD_RANKS)
        self.head_cdf = np.cumsum(np.arange(1, head + 1, dtype=np.float64) ** -alpha)
        self.head_mass = float(self.head_cdf[-1])
        self.tail_lo = head + 0.5
        self.tail_hi = rows + 0.5
        # Mass of x^-alpha over [lo, hi], written to stay accurate when alpha is close to 1.
        s = 1.0 - alpha
        self.tail_mass = (
            0.0 if rows <= head else self.tail_lo**s * math.expm1(s * math.log(self.tail_hi / self.tail_lo)) / s
        )

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """`n` ranks in [0, rows) as int64."""
        if self.uniform:
            return rng.integers(0, self.rows, size=n, dtype=np.int64)
        u = rng.random(n) * (self.head_mass + self.tail_mass)
        if self.tail_mass == 0.0:
            ranks = np.searchsorted(self.head_cdf, u, side="right").astype(np.int64)
        else:
            ranks = np.empty(n, dtype=np.int64)
            in_tail = u >= self.head_mass
            in_head = ~in_tail
            ranks[in_head] = np.searchsorted(self.head_cdf, u[in_head], side="right")
            v = (u[in_tail] - self.head_mass) / self.tail_mass
            s = 1.0 - self.alpha
            span = math.log(self.tail_hi / self.tail_lo)
            # Inverse of the continuous CDF on [lo, hi]: x = lo * (1 + v * ((hi/lo)^s - 1))^(1/s).
            x = self.tail_lo * np.exp(np.log1p(v * math.expm1(s * span)) / s)
            k = np.floor(x + 0.5).astype(np.int64)  # 1-based rank whose [k - 1/2, k + 1/2) holds x
            ranks[in_tail] = np.clip(k, len(self.head_cdf) + 1, self.rows) - 1
        # Rounding at the very top of the head cdf can yield `head`: fold it onto the last head rank.
        return np.minimum(ranks, self.rows - 1)


def row_bijection(rows: int, seed: int, table: str, contiguous_hot: bool) -> tuple[int, int]:
    """(a, b) of row = (a * rank + b) mod rows for 0-based ranks; (1, 0) is the identity (contiguous hot)."""
    if contiguous_hot or rows <= 2:
        return 1, 0
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2, _table_key(table))))
    jitter = int(rng.integers(0, max(1, rows // 64)))
    a = max(1, int(rows * _GOLDEN) + jitter) % rows or 1
    while math.gcd(a, rows) != 1:
        a = a + 1 if a + 1 < rows else 1
    b = int(rng.integers(0, rows))
    return a, b


def ranks_to_rows(ranks: np.ndarray, rows: int, a: int, b: int) -> np.ndarray:
    """Apply the affine bijection to 0-based ranks."""
    if a == 1 and b == 0:
        return ranks
    return (ranks * a + b) % rows


def bag_lengths(table: TableSpec, rng: np.random.Generator, queries: int) -> np.ndarray:
    """Ids to draw per query: the bag-size law, the missing rate, capped at the table's rows."""
    if table.bag == "poisson":
        lengths = 1 + rng.poisson(table.pooling - 1.0, size=queries).astype(np.int64)
    else:
        base = math.floor(table.pooling)
        frac = table.pooling - base
        lengths = np.full(queries, base, dtype=np.int64)
        if frac > 0.0:
            lengths += rng.random(queries) < frac
    if table.missing > 0.0:
        lengths[rng.random(queries) < table.missing] = 0
    return np.minimum(lengths, table.rows)


def draw_bags(
    sampler: RankSampler, rng: np.random.Generator, lengths: np.ndarray, dedupe: bool = True
) -> tuple[np.ndarray, np.ndarray, int]:
    """Ranks for bags of `lengths`, distinct inside each bag when `dedupe`.

    Returns (lengths actually filled, ranks grouped by query in draw order, short bag count). Each bag
    keeps the first `length` distinct ranks of its stream of draws (successive sampling without
    replacement). The stream is drawn in rounds, a few times the missing count at a time (the factor
    follows the duplicate rate seen so far), as one (bags x width) matrix de-duplicated by a per-row
    stable sort (small sorts stay in cache); only bags still short go to the next round.
    """
    n = len(lengths)
    if not dedupe or int(lengths.max(initial=0)) <= 1:
        return lengths, sampler.draw(rng, int(lengths.sum())), 0
    active = np.flatnonzero(lengths > 0)
    need = lengths[active]
    kept = np.zeros((len(active), 0), dtype=np.int64)  # distinct ranks so far, left-justified
    count = np.zeros(len(active), dtype=np.int64)
    factor = 2.0
    out_q: list[np.ndarray] = []
    out_r: list[np.ndarray] = []
    for _ in range(MAX_ROUNDS):
        deficit = need - count
        want = np.ceil(deficit * factor).astype(np.int64)
        width = int(want.max())
        new_valid = np.arange(width)[None, :] < want[:, None]
        new = np.zeros((len(active), width), dtype=np.int64)
        new[new_valid] = sampler.draw(rng, int(want.sum()))
        mat = np.hstack([kept, new])
        valid = np.hstack([np.arange(kept.shape[1])[None, :] < count[:, None], new_valid])
        keep = _first_distinct(mat, valid, need)
        new_count = keep.sum(axis=1)
        gained = int((new_count - count).sum())
        factor = float(np.clip(1.2 * want.sum() / max(gained, 1), 1.25, 16.0))
        count = new_count
        done = count >= need
        out_q.append(np.repeat(active[done], count[done]))
        out_r.append(mat[done][keep[done]])
        if done.all():
            break
        active, need, count, mat, keep = active[~done], need[~done], count[~done], mat[~done], keep[~done]
        kept = np.zeros((len(active), int(count.max())), dtype=np.int64)
        kept[np.arange(kept.shape[1])[None, :] < count[:, None]] = mat[keep]
    else:
        out_q.append(np.repeat(active, count))  # bags still short after MAX_ROUNDS keep what they have
        out_r.append(kept[np.arange(kept.shape[1])[None, :] < count[:, None]])
    q = np.concatenate(out_q)
    order = np.argsort(q, kind="stable")
    filled = np.bincount(q, minlength=n).astype(np.int64)
    short = int(np.count_nonzero(filled < lengths))
    return filled, np.concatenate(out_r)[order], short


def _first_distinct(mat: np.ndarray, valid: np.ndarray, need: np.ndarray) -> np.ndarray:
    """Mask of the first `need[i]` distinct valid values of each row of `mat`, in column order."""
    marked = np.where(valid, mat, -1 - np.arange(mat.shape[1])[None, :])  # invalid cells: unique negatives
    order = np.argsort(marked, axis=1, kind="stable")
    srt = np.take_along_axis(marked, order, axis=1)
    first_sorted = np.ones(srt.shape, dtype=bool)
    first_sorted[:, 1:] = srt[:, 1:] != srt[:, :-1]
    first = np.empty_like(first_sorted)
    np.put_along_axis(first, order, first_sorted, axis=1)
    first &= valid
    return first & (np.cumsum(first, axis=1) <= need[:, None])


def _chunk(table: TableSpec, sampler: RankSampler, seed: int, chunk: int, queries: int, contiguous_hot: bool) -> Bags:
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, _table_key(table.name), chunk)))
    lengths = bag_lengths(table, rng, queries)
    filled, ranks, short = draw_bags(sampler, rng, lengths)
    a, b = row_bijection(table.rows, seed, table.name, contiguous_hot)
    return Bags(filled, ranks_to_rows(ranks, table.rows, a, b), short)


def chunk_sizes(queries: int) -> list[int]:
    """Queries of each chunk of a run of `queries` queries."""
    full, rest = divmod(queries, CHUNK_QUERIES)
    return [CHUNK_QUERIES] * full + ([rest] if rest else [])


def generate(spec: SynthSpec, queries: int, seed: int, contiguous_hot: bool = False) -> Iterator[list[Bags]]:
    """Yield, chunk by chunk (`CHUNK_QUERIES` queries each), the bags of every table of `spec`."""
    samplers = [RankSampler(t.rows, t.alpha) for t in spec.tables]
    for c, n in enumerate(chunk_sizes(queries)):
        yield [_chunk(t, s, seed, c, n, contiguous_hot) for t, s in zip(spec.tables, samplers, strict=True)]


def generate_table(table: TableSpec, queries: int, seed: int, contiguous_hot: bool = False) -> Bags:
    """All look-ups of one table over `queries` queries (what `generate` yields for it, concatenated)."""
    sampler = RankSampler(table.rows, table.alpha)
    parts = [_chunk(table, sampler, seed, c, n, contiguous_hot) for c, n in enumerate(chunk_sizes(queries))]
    if not parts:
        return Bags(np.zeros(0, np.int64), np.zeros(0, np.int64), 0)
    return Bags(
        np.concatenate([p.lengths for p in parts]),
        np.concatenate([p.rows for p in parts]),
        sum(p.short for p in parts),
    )


def _table_key(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))
