"""Throughput of `autotune analyze` on a Criteo-format log against hand-written references, in one run.

Generates a Criteo TSV with `autotune synth --preset criteo1tb` (26 one-hot tables, 40 columns; size
`--rows`, default 2,000,000), then runs, each in its own fresh process so peak memory is its own:

- `analyze`: the CLI, `autotune analyze LOG --format criteo --model model.toml --out DIR --json` (the whole
  product: counts, then every statistic of the profile, written to disk); the parser it picked is printed
  (`polars` in memory, `polars-chunks` for text over a third of the 2GB default memory limit);
- `analyze-duckdb`: the same analysis through the Python API with the Polars paths turned off, i.e.
  analyze's DuckDB path (what malformed logs, long-form logs and Parquet go through);
- `duckdb`: the best hand-written DuckDB we know: load C1..C26 as VARCHAR into a table (the text is parsed
  once; grouping straight from `read_csv` would parse it again per column), then `SELECT c, count(*) ...
  GROUP BY c` per column;
- `polars`: the Polars equivalent: `read_csv` of C1..C26 once, one lazy `group_by(c).agg(pl.len())` per
  column, `pl.collect_all`;
- `pandas-defaults`: what a user writes first: `pd.read_csv(sep="\\t", header=None)` (every column, pandas'
  type inference), then `df[c].value_counts()` per table column;
- `pandas`: what a user might write to save work: `pd.read_csv(..., usecols=C1..C26, dtype=str)`, then the same.
  With pandas 3 it is the slower of the two (4x per row: `dtype=str` parses to Python strings first, the
  defaults infer Arrow-backed strings), so the target ratio (b) is taken against the faster.
  `--pandas-python PY` runs both with another interpreter, e.g. a venv with pandas 2.2 (the dev extra's floor),
  where both give Python-object strings.

Every method reports per table the accesses and the distinct ids; the script checks that they agree with
`analyze` (a benchmark of wrong answers is worthless). Wall time is measured around each process (Python
start-up and imports included, the same for all), peak RSS from the child's own rusage (`os.wait4`).
The engine limit (a) is the faster of duckdb and polars. CPU seconds (user + system, from the same
rusage) are printed too: on a machine shared with other jobs they move far less than wall time.
`--repeat N` runs every method N times, round robin, and keeps each method's fastest run.
Before timing, the script byte-compiles the `autotune` and `analytics` packages (`compileall`), as installing a
wheel does: an editable install (`make`) leaves them as source, and where PYTHONDONTWRITEBYTECODE is set (as on
the development VM) every run would compile them again, about 35 ms of start-up that the references, whose
libraries pip compiled at install, never pay.

    .venv/bin/python benchmarks/analyze_throughput.py [--rows 2000000] [--seed 0] [--repeat 1] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

N_DENSE = 13
TABLES = [f"C{i + 1}" for i in range(26)]
BIN = Path(sys.executable).parent


def run_measured(cmd: list[str]) -> tuple[float, float, float, str]:
    """Run `cmd`; return (wall s, CPU s (user + system), peak RSS MiB of that process, its stdout).
    Fails loudly on error."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as errf:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=errf)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        errf.seek(0)
        stdout = out.read().decode()
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{errf.read().decode()[-3000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0, stdout  # ru_maxrss is KiB on Linux


# ------------------------------------------------------------------------------------------------------
# References: each prints {"table": [accesses, distinct], ...} on stdout.


def job_duckdb(log: Path, threads: int) -> dict[str, list[int]]:
    import duckdb

    con = duckdb.connect()
    con.execute("SET enable_progress_bar=false")
    con.execute(f"SET threads={threads}")
    cols = {f"d{i}": "VARCHAR" for i in range(1 + N_DENSE)} | {t: "VARCHAR" for t in TABLES}
    spec = ", ".join(f"'{k}': '{v}'" for k, v in cols.items())
    con.execute(
        f"CREATE TABLE log AS SELECT {', '.join(TABLES)} FROM read_csv('{log}', delim='\\t', header=false, "
        f"quote='', escape='', columns={{{spec}}})"
    )
    out = {}
    for t in TABLES:
        counts = con.sql(f"SELECT {t}, count(*) AS n FROM log WHERE {t} IS NOT NULL GROUP BY {t}").to_arrow_table()
        n = counts.column("n")
        out[t] = [int(sum(n.to_numpy())), counts.num_rows]
    return out


def job_polars(log: Path, threads: int) -> dict[str, list[int]]:
    import polars as pl

    names = ["label"] + [f"I{i + 1}" for i in range(N_DENSE)] + TABLES
    df = pl.read_csv(
        log,
        separator="\t",
        has_header=False,
        new_columns=names,
        columns=list(range(1 + N_DENSE, 1 + N_DENSE + len(TABLES))),
        schema_overrides={t: pl.String for t in TABLES},
        quote_char=None,
    )
    lazy = df.lazy()
    frames = pl.collect_all([lazy.filter(pl.col(t).is_not_null()).group_by(t).agg(pl.len().alias("n")) for t in TABLES])
    return {t: [int(f["n"].sum()), f.height] for t, f in zip(TABLES, frames, strict=True)}


def job_pandas(log: Path, threads: int) -> dict[str, list[int]]:
    import pandas as pd

    df = pd.read_csv(log, sep="\t", header=None, usecols=range(1 + N_DENSE, 1 + N_DENSE + len(TABLES)), dtype=str)
    df.columns = TABLES
    out = {}
    for t in TABLES:
        vc = df[t].value_counts()  # NaN (missing) is dropped by default
        out[t] = [int(vc.sum()), len(vc)]
    return out


def job_pandas_defaults(log: Path, threads: int) -> dict[str, list[int]]:
    import pandas as pd

    df = pd.read_csv(log, sep="\t", header=None)  # every column, pandas' own type inference
    out = {}
    for i, t in enumerate(TABLES):
        vc = df[1 + N_DENSE + i].value_counts()
        out[t] = [int(vc.sum()), len(vc)]
    return out


def job_analyze_duckdb(log: Path, threads: int) -> dict[str, list[int]]:
    from analytics import analyze, pipeline

    pipeline._count_fast = lambda *_args: None  # the Polars paths decline: DuckDB parses and counts
    with tempfile.TemporaryDirectory() as out:
        res = analyze([log], fmt="criteo", model=log.parent / "model.toml", out=Path(out) / "profile")
    assert res.profile.source["parser"] == "duckdb"
    return {t.name: [t.accesses, t.distinct] for t in res.profile.tables}


JOBS = {
    "analyze-duckdb": job_analyze_duckdb,
    "duckdb": job_duckdb,
    "polars": job_polars,
    "pandas": job_pandas,
    "pandas-defaults": job_pandas_defaults,
}


# ------------------------------------------------------------------------------------------------------


def _pandas_version(python: str) -> str:
    """The pandas version that `python` imports (the pandas methods run with it)."""
    done = subprocess.run([python, "-c", "import pandas; print(pandas.__version__)"], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"--pandas-python {python}: cannot import pandas:\n{done.stderr[-1000:]}")
    return done.stdout.strip()


def compile_packages() -> None:
    """Byte-compile autotune and analytics in place, as a wheel install would (see the module docstring)."""
    import analytics
    import autotune

    for package in (autotune, analytics):
        if not compileall.compile_dir(Path(package.__file__).parent, quiet=1):
            raise SystemExit(f"could not byte-compile {package.__name__}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2_000_000, help="log rows (queries) to generate")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=None, help="where the log goes (default: a temp folder)")
    ap.add_argument("--keep", action="store_true", help="keep the log and profile afterwards")
    ap.add_argument("--repeat", type=int, default=1, help="runs per method (round robin); the fastest is kept")
    ap.add_argument(
        "--skip",
        default="",
        help="comma-separated methods not to run (analyze,analyze-duckdb,duckdb,polars,pandas,pandas-defaults)",
    )
    ap.add_argument(
        "--pandas-python",
        default=sys.executable,
        help="Python that runs the two pandas methods (default: this one), e.g. a venv with pandas 2.2, "
        "whose read_csv gives Python-object strings where pandas 3 gives Arrow-backed ones",
    )
    ap.add_argument("--job", choices=sorted(JOBS), help=argparse.SUPPRESS)
    ap.add_argument("--log", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    threads = os.cpu_count() or 1
    if args.job:  # child process: run one reference and print its per-table figures
        print(json.dumps(JOBS[args.job](args.log, threads)))
        return

    compile_packages()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="analyze-throughput."))
    logs = work / "log"
    try:
        wall, _, _, _ = run_measured(
            [str(BIN / "autotune"), "synth", str(logs), "--preset", "criteo1tb", "--queries", str(args.rows),
             "--seed", str(args.seed), "--format", "criteo", "--json"]
        )  # fmt: skip
        log = logs / "criteo.tsv"
        size = log.stat().st_size
        print(
            f"log: {args.rows:,} rows, {size / 2**20:,.0f} MiB, 26 tables (criteo1tb preset); generated in {wall:.1f} s"
        )
        print(f"machine: {threads} cores; each method in a fresh process, wall time includes start-up")
        skip = set(filter(None, args.skip.split(",")))
        results: dict[str, tuple[float, float, float]] = {}
        figures: dict[str, dict[str, list[int]]] = {}
        commands = {
            "analyze": [str(BIN / "autotune"), "analyze", str(log), "--format", "criteo", "--model",
                        str(logs / "model.toml"), "--out", str(work / "profile"), "--json"],
            **{name: [sys.executable, __file__, "--job", name, "--log", str(log)] for name in JOBS},
        }  # fmt: skip
        for name in ("pandas", "pandas-defaults"):
            commands[name][0] = args.pandas_python
        if not skip >= {"pandas", "pandas-defaults"}:
            print(f"pandas {_pandas_version(args.pandas_python)}, run by {args.pandas_python}")
        for _ in range(args.repeat):  # round robin, so slow phases of a shared machine hit every method
            for name, cmd in commands.items():
                if name in skip:
                    continue
                os.sync()  # the previous run's output (analyze writes 56 MB) reaches the disk before this one starts
                wall, cpu, rss, out = run_measured(cmd)
                if name not in results or wall < results[name][0]:
                    results[name] = (wall, cpu, rss)
                got = json.loads(out)
                got = {t["name"]: [t["accesses"], t["distinct"]] for t in got["tables"]} if name == "analyze" else got
                figures[name] = got
        if "analyze" in results:
            parser = json.loads((work / "profile" / "profile.json").read_text())["source"]["parser"]
            print(f"analyze's parser: {parser}")
        _report(args.rows, results, figures)
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


def _report(
    rows: int, results: dict[str, tuple[float, float, float]], figures: dict[str, dict[str, list[int]]]
) -> None:
    ref = next(iter(figures.values()))
    agree = all(f == ref for f in figures.values())
    labels = {
        "analyze": "autotune analyze (CLI)",
        "analyze-duckdb": "autotune analyze, DuckDB path (API)",
        "duckdb": "(a) DuckDB: load once, GROUP BY per column",
        "polars": "(a) Polars: read_csv once, group_by per column",
        "pandas": "(b) pandas: usecols, dtype=str, value_counts",
        "pandas-defaults": "(b) pandas: read_csv defaults, value_counts",
    }
    base, base_cpu = results.get("analyze", (float("nan"), float("nan"), 0.0))[:2]
    print()
    print(f"{'method':<48} {'seconds':>8} {'rows/s':>11} {'CPU s':>7} {'peak RSS MiB':>13} {'time / analyze':>15}")
    for name, (wall, cpu, rss) in results.items():
        print(f"{labels[name]:<48} {wall:8.2f} {rows / wall:11,.0f} {cpu:7.2f} {rss:13,.0f} {wall / base:15.2f}")
    engines = [n for n in ("duckdb", "polars") if n in results]
    print()
    if "analyze" in results and engines:
        best = min(engines, key=lambda n: results[n][0])
        wall, cpu, _ = results[best]
        print(f"analyze / best engine reference (a), {best}: {base / wall:.2f}x wall, {base_cpu / cpu:.2f}x CPU"
              "  (target <= 1.25x)")  # fmt: skip
    if "analyze" in results and "analyze-duckdb" in results:
        d_wall, d_cpu, d_rss = results["analyze-duckdb"]
        print(f"analyze / its DuckDB path: {base / d_wall:.2f}x wall, {base_cpu / d_cpu:.2f}x CPU, "
              f"{results['analyze'][2] / d_rss:.2f}x peak RSS")  # fmt: skip
    pandas = [n for n in ("pandas-defaults", "pandas") if n in results]
    if "analyze" in results and pandas:
        fastest = min(pandas, key=lambda n: results[n][0])
        pd_wall = results[fastest][0]
        print(f"fastest pandas (b), {fastest}, / analyze: {pd_wall / base:.1f}x  (target >= 10x)")
        if "polars" in results:
            print(f"  for scale, the same pandas / the Polars reference: {pd_wall / results['polars'][0]:.1f}x")
    print(f"per-table accesses and distinct ids agree across methods: {'yes' if agree else 'NO'}")
    if not agree:
        for name, f in figures.items():
            diff = [t for t in TABLES if f.get(t) != ref.get(t)]
            if diff:
                got, want = [f.get(t) for t in diff[:3]], [ref.get(t) for t in diff[:3]]
                print(f"  {name} differs on {', '.join(diff[:6])}: {got} vs {want}")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
