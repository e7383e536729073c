"""Named synthetic workloads (`autotune synth --preset NAME`), exposed as data for tests and benchmarks.

- `criteo1tb`: the 26 tables of Criteo 1TB as MLPerf DLRM sizes them (DESIGN section 8), dim 128, one-hot
  (pooling 1), no missing values. The Zipf exponent 1.1 is our choice (a moderately skewed FBGEMM setting),
  not a figure measured on Criteo.
- `avazu`: the 22 categorical fields of the Avazu CTR data set, rows = the distinct values of each field in
  its 40,428,967-row training file, as listed by public Avazu pipelines (torchrec-style
  `NUM_EMBEDDINGS_PER_FEATURE` = 7,7,4737,7745,26,8552,559,36,2686408,6729486,8251,5,4,2626,8,9,435,4,68,
  172,60 for C1..C21, and 240 hours = 10 days x 24 for `hour`); dim 16 (the usual Avazu setting),
  one-hot. Exponents are our choice: 1.2 for the low-cardinality fields, 1.05 for ids (device_id and
  device_ip are dominated by one value in the real data, which a Zipf law only approximates).
- `meta84`: 84 production-like multi-hot tables after Meta's dlrm_datasets traces: rows spread
  log-uniformly over 10^2..10^7; pooling grows with size, 1 (one-hot) for the smallest to 29 for the
  largest (Poisson bags), mean 15; dims cycle 64/128/32/256; the exponent grows with size, 1.05 to 1.6.
  Chosen by comparing one batch of 65,536 queries with the 2021 reuse histogram in
  shared/data/meta-dlrm-datasets-stats (benchmarks/synth_meta_reuse.py): 53.5% of unique rows are read
  once (Meta: 47.3%), every row-share bin within 6.5 points. The look-up shares do NOT match: a bounded
  Zipf law with alpha > 1 sends far more look-ups to the few hottest rows (about 30% to rows read more than
  32,768 times in the batch; Meta: 1.9%). Meta's traces have flatter heads than any alpha > 1 allows;
  matching both would need exponents below 1 (uniform under FBGEMM's convention) or a flattened head
  (Zipf-Mandelbrot), which this generator does not offer.
- `tiny`: four small tables (one-hot, multi-hot, a uniform one, one with missing values) for tests.
"""

from __future__ import annotations

from autotune.synth import SynthSpec, TableSpec

#: Criteo 1TB (MLPerf DLRM) rows of C1..C26, from DESIGN section 8.
CRITEO1TB_ROWS: tuple[int, ...] = (
    39884406, 39043, 17289, 7420, 20263, 3, 7120, 1543, 63, 38532951, 2953546, 403346, 10,
    2208, 11938, 155, 4, 976, 14, 39979771, 25641295, 39664984, 585935, 12972, 108, 36,
)  # fmt: skip

#: Avazu fields and their distinct values in the training file (see the module docstring).
AVAZU_ROWS: tuple[tuple[str, int], ...] = (
    ("hour", 240), ("C1", 7), ("banner_pos", 7), ("site_id", 4737), ("site_domain", 7745),
    ("site_category", 26), ("app_id", 8552), ("app_domain", 559), ("app_category", 36),
    ("device_id", 2686408), ("device_ip", 6729486), ("device_model", 8251), ("device_type", 5),
    ("device_conn_type", 4), ("C14", 2626), ("C15", 8), ("C16", 9), ("C17", 435), ("C18", 4), ("C19", 68),
    ("C20", 172), ("C21", 60),
)  # fmt: skip

_META_DIMS: tuple[int, ...] = (64, 128, 32, 256)


def _criteo1tb() -> SynthSpec:
    return SynthSpec(
        "criteo1tb",
        tuple(
            TableSpec(f"C{i + 1}", rows, 128, "float32", 1.0, "fixed", 1.1, 0.0)
            for i, rows in enumerate(CRITEO1TB_ROWS)
        ),
    )


def _avazu() -> SynthSpec:
    return SynthSpec(
        "avazu",
        tuple(
            TableSpec(name, rows, 16, "float32", 1.0, "fixed", 1.05 if rows > 1000 else 1.2, 0.0)
            for name, rows in AVAZU_ROWS
        ),
    )


def _meta84() -> SynthSpec:
    tables = []
    for i in range(84):
        x = i / 83  # position in size order: 0 = smallest table, 1 = largest
        pooling = float(round(1 + 28 * x))
        tables.append(
            TableSpec(
                name=f"t{i:02d}",
                rows=round(10 ** (2.0 + 5.0 * x)),
                dim=_META_DIMS[i % len(_META_DIMS)],
                dtype="float32",
                pooling=pooling,
                bag="poisson" if pooling > 1.0 else "fixed",
                alpha=round(META84_ALPHA[0] + (META84_ALPHA[1] - META84_ALPHA[0]) * x, 4),
                missing=0.0,
            )
        )
    return SynthSpec("meta84", tuple(tables))


#: Zipf exponent of the smallest and the largest meta84 table (linear in between, by size order).
META84_ALPHA = (1.05, 1.6)


def _tiny() -> SynthSpec:
    return SynthSpec(
        "tiny",
        (
            TableSpec("onehot", 1000, 16, "float32", 1.0, "fixed", 1.2, 0.0),
            TableSpec("bag", 50_000, 32, "float16", 4.0, "poisson", 1.1, 0.0),
            TableSpec("flat", 300, 8, "float32", 1.0, "fixed", 0.0, 0.0),
            TableSpec("sparse", 20_000, 64, "int8", 2.0, "fixed", 1.3, 0.25),
        ),
    )


#: Every preset by name.
PRESETS: dict[str, SynthSpec] = {
    "criteo1tb": _criteo1tb(),
    "avazu": _avazu(),
    "meta84": _meta84(),
    "tiny": _tiny(),
}
