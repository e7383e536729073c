"""What `autotune search` stores and reports: the best is never worse than a baseline it evaluated, trial counts
are trials that ran, --timeout bounds the polish, two objectives are polished too, Ctrl-C keeps the work done,
and the summary says which way a speed-up goes."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from run_helpers import medium_profile_in
from typer.testing import CliRunner

from autotune.cli import app
from autotune.hwload import load_hardware
from autotune.interrupt import INTERRUPTED_EXIT
from autotune.model.baselines import all_baselines
from autotune.model.context import ModelContext
from autotune.model.evaluate import predict
from autotune.search import driver
from autotune.search.driver import SearchRequest, run_search
from autotune.workload import load_profile

runner = CliRunner()
HW = "ascend910b"


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return medium_profile_in(tmp_path_factory.mktemp("prof") / "medium")


def search(profile: Path, runs: Path, *args: str):
    return runner.invoke(app, ["search", "--hw", HW, "--profile", str(profile), "--runs-dir", str(runs), *args])


def trials(run_dir: Path) -> list[optuna.trial.FrozenTrial]:
    storage = JournalStorage(JournalFileBackend(str(run_dir / "study.journal")))
    return optuna.load_study(study_name=run_dir.name, storage=storage).get_trials(deepcopy=False)


def baseline_latencies(profile: Path, batch: int = 512) -> dict[str, float]:
    """Every feasible baseline's latency, predicted here from the baseline mappings themselves."""
    ctx = ModelContext(load_profile(profile), load_hardware(HW), batch)
    preds = {n: predict(ctx.profile, ctx.hw, m, batch, ctx=ctx) for n, m in all_baselines(ctx).items()}
    return {n: p.latency_s for n, p in preds.items() if p.feasible}


def feasible_values(ts: list[optuna.trial.FrozenTrial]) -> list[float]:
    return [t.values[0] for t in ts if t.state == TrialState.COMPLETE and all(c <= 0 for c in t.constraints.values())]


def test_one_trial_never_stores_a_best_worse_than_the_baselines(tmp_path: Path, profile: Path) -> None:
    res = search(profile, tmp_path, "--run", "s1", "--n-trials", "1", "--no-polish", "--json")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    base = baseline_latencies(profile)
    ts = trials(tmp_path / "s1")
    assert sum(t.state == TrialState.COMPLETE for t in ts) == 1
    top = min(base, key=lambda n: base[n])
    # the case of the report: the one trial (the first enqueued baseline's shapes, each table's single-core
    # configuration chosen by the search) is slower than a baseline, or does not fit at all
    assert all(base[top] < v for v in feasible_values(ts))
    assert doc["best"]["latency_s"] == pytest.approx(base[top], rel=1e-12)
    assert all(b["speedup"] >= 1 - 1e-12 for b in doc["baselines"])
    assert doc["best_from"] == f"baseline {top}"
    meta = json.loads((tmp_path / "s1" / "run.json").read_text())
    assert meta["best_from"] == f"baseline {top}" and meta["best_trial"] is None
    assert meta["best_latency_s"] == pytest.approx(base[top], rel=1e-12)
    stored = json.loads((tmp_path / "s1" / "mapping.json").read_text())
    assert stored["predicted_latency_s"] == pytest.approx(base[top], rel=1e-12)
    ctx = ModelContext(load_profile(profile), load_hardware(HW), 512)
    want = all_baselines(ctx)[top]
    got = {t["name"]: (t["replicas"], t["shards"], t["strategy"]) for t in stored["tables"]}
    assert got == {t.name: (t.replicas, t.shards, t.strategy) for t in want.tables}


def test_a_timeout_spent_before_the_first_trial_stores_the_best_baseline(tmp_path: Path, profile: Path) -> None:
    res = search(profile, tmp_path, "--run", "t0", "--timeout", "0.000000001", "--no-polish", "--json")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    base = baseline_latencies(profile)
    assert doc["n_trials"] == 0
    assert doc["best"]["latency_s"] == pytest.approx(min(base.values()), rel=1e-12)


def test_trial_counts_are_the_trials_that_ran(tmp_path: Path, profile: Path) -> None:
    res = search(profile, tmp_path, "--run", "c", "--n-trials", "2", "--heavy", "2", "--no-polish")
    assert res.exit_code == 0, res.stderr
    ts = trials(tmp_path / "c")
    complete = sum(t.state == TrialState.COMPLETE for t in ts)
    waiting = sum(t.state == TrialState.WAITING for t in ts)
    assert complete == 2 and waiting > 0  # the enqueued baselines and seeds outnumber two trials
    meta = json.loads((tmp_path / "c" / "run.json").read_text())
    assert meta["n_trials"] == 2 and meta["n_waiting"] == waiting
    assert f"2 trials completed ({waiting} enqueued baselines and seeds not run)" in res.stderr
    assert "2 trials completed" in (tmp_path / "c" / "report.md").read_text()


def _spy_polish(monkeypatch) -> list[tuple[str, float]]:
    """Record the budgets both polish phases are given; neither finds anything (no trial is told)."""
    calls: list[tuple[str, float]] = []

    def polish(space, ctx, params, budget_s=30.0):
        calls.append(("polish", budget_s))
        return params, float("inf")

    def polish_tables(ctx, mapping, budget_s, on_sweep=None):
        calls.append(("tables", budget_s))
        return {}, float("inf")

    monkeypatch.setattr(driver, "polish", polish)
    monkeypatch.setattr(driver, "polish_tables", polish_tables)
    return calls


class FakeClock:
    """The clock the driver reads (`time.monotonic`): it stands still except when a trial advances it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s


def _fake_clock(monkeypatch, per_trial_s: float) -> FakeClock:
    """Give the driver a fake clock that advances `per_trial_s` per trial the objective scores."""
    clock = FakeClock()
    monkeypatch.setattr(driver, "time", clock)
    make = driver.make_objective

    def ticking_objective(problem, ctx, space):
        inner = make(problem, ctx, space)

        def objective(trial):
            clock.now += per_trial_s
            return inner(trial)

        return objective

    monkeypatch.setattr(driver, "make_objective", ticking_objective)
    return clock


def test_the_polish_gets_what_is_left_of_the_timeout(tmp_path: Path, profile: Path, monkeypatch) -> None:
    calls = _spy_polish(monkeypatch)
    _fake_clock(monkeypatch, per_trial_s=100.0)  # Optuna's own clock gets the whole --timeout: it never stops first
    req = SearchRequest(profile=profile, hardware=HW, batch_size=512, run="p", n_trials=3, root=tmp_path)
    run_search(req)  # no --timeout: the phases' own budgets
    # one descent per distinct start, sharing POLISH_BUDGET_S (the spy takes no time); then the table descent's own
    assert calls[0] == ("polish", driver.POLISH_BUDGET_S)
    assert calls[-1] == ("tables", driver.TABLE_POLISH_BUDGET_S)
    assert all(b == driver.POLISH_BUDGET_S for k, b in calls if k == "polish")
    calls.clear()
    run_search(SearchRequest(**{**req.__dict__, "run": "p5", "timeout_s": 310.0}))
    # 3 trials took 300 s of the 310: both phases get the 10 s left
    assert calls[0][0] == "polish" and calls[-1][0] == "tables"
    assert all(budget == 10.0 for _, budget in calls), calls


def test_a_timeout_spent_by_the_trials_leaves_no_polish(tmp_path: Path, profile: Path, monkeypatch) -> None:
    calls = _spy_polish(monkeypatch)
    _fake_clock(monkeypatch, per_trial_s=160.0)  # 3 trials take 480 s: they outlast --timeout 300
    out = run_search(
        SearchRequest(
            profile=profile, hardware=HW, batch_size=512, run="late", n_trials=3, timeout_s=300.0, root=tmp_path
        )
    )
    assert out.n_trials == 3
    assert calls == []


def test_two_objectives_are_polished_on_latency(tmp_path: Path, profile: Path) -> None:
    out = run_search(
        SearchRequest(
            profile=profile,
            hardware=HW,
            batch_size=512,
            run="two",
            n_trials=10,
            objectives=("latency", "memory"),
            root=tmp_path,
        )
    )
    ts = trials(tmp_path / "two")
    polished = [t for t in ts if t.state == TrialState.COMPLETE and "polished_from" in t.user_attrs]
    assert polished  # the descent reached a faster point than the sampler and told it as a trial
    fastest = min(feasible_values(ts))
    assert min(t.values[0] for t in polished) == fastest
    pareto = json.loads((tmp_path / "two" / "pareto.json").read_text())["trials"]
    assert pareto[0]["latency_s"] == fastest  # the Pareto set's low-latency end is the polished point
    assert out.best.latency_s == pytest.approx(fastest, rel=1e-12)


def _interrupt_after(monkeypatch, n: int) -> None:
    """The objective raises KeyboardInterrupt (as Ctrl-C would) on its (n + 1)-th call."""
    make = driver.make_objective
    calls = [0]

    def interrupting(problem, ctx, space):
        inner = make(problem, ctx, space)

        def objective(trial):
            calls[0] += 1
            if calls[0] > n:
                raise KeyboardInterrupt
            return inner(trial)

        return objective

    monkeypatch.setattr(driver, "make_objective", interrupting)


def test_ctrl_c_stores_the_trials_done_and_says_how_to_resume(tmp_path: Path, profile: Path, monkeypatch) -> None:
    _interrupt_after(monkeypatch, 4)
    res = search(profile, tmp_path, "--run", "kill1", "--n-trials", "20")
    assert res.exit_code == 130
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert lines == [
        f"interrupted after 4 trials; the best so far is stored in {tmp_path / 'kill1'}; continue with "
        f"`autotune search --run kill1 --runs-dir {tmp_path} --resume`"  # run.json records the rest
    ]
    assert res.exit_code == INTERRUPTED_EXIT
    ts = trials(tmp_path / "kill1")
    assert sum(t.state == TrialState.COMPLETE for t in ts) == 4
    meta = json.loads((tmp_path / "kill1" / "run.json").read_text())
    assert meta["status"] == "interrupted" and meta["n_trials"] == 4
    best = min([*feasible_values(ts), *baseline_latencies(profile).values()])
    assert meta["best_latency_s"] == pytest.approx(best, rel=1e-12)
    stored = json.loads((tmp_path / "kill1" / "mapping.json").read_text())
    assert stored["predicted_latency_s"] == pytest.approx(best, rel=1e-12)
    assert (tmp_path / "kill1" / "report.md").is_file()
    assert not list((tmp_path / "kill1").glob("*.tmp")) and not list((tmp_path / "kill1").glob(".*.tmp"))
    monkeypatch.undo()  # the same command with --resume continues the study
    res = search(profile, tmp_path, "--run", "kill1", "--resume", "--n-trials", "2", "--no-polish", "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["n_trials"] == 6


def test_ctrl_c_before_a_trial_completed_stores_nothing(tmp_path: Path, profile: Path, monkeypatch) -> None:
    _interrupt_after(monkeypatch, 0)
    res = search(profile, tmp_path, "--run", "kill0", "--n-trials", "20")
    assert res.exit_code == 130
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("interrupted after 0 trials; continue with `autotune search")
    assert not (tmp_path / "kill0" / "run.json").exists()


def _hint(stderr: str) -> list[str]:
    """The arguments of the `continue with `...`` command a Ctrl-C line prints (without `autotune`)."""
    import shlex

    line = next(ln for ln in stderr.splitlines() if ln.startswith("interrupted after"))
    return shlex.split(line.split("continue with `")[1].rstrip("`"))[1:]


def test_the_resume_hint_of_a_run_interrupted_before_run_json_works_and_keeps_its_inputs(
    tmp_path: Path, profile: Path, monkeypatch
) -> None:
    _interrupt_after(monkeypatch, 0)
    args = ["--run", "k2", "--n-trials", "20", "--batch-size", "256", "--heavy", "3", "--objectives", "latency,memory"]
    res = search(profile, tmp_path, *args)
    assert not (tmp_path / "k2" / "run.json").exists()  # nothing completed: only the study holds the inputs
    hint = _hint(res.stderr)
    assert hint == ["search", "--run", "k2", "--runs-dir", str(tmp_path), "--resume"]
    monkeypatch.undo()
    for bad, why in (
        (["--heavy", "6"], "searched with --heavy 3, not 6"),
        (["--batch-size", "512"], "searched at batch size 256, not 512"),
    ):
        res = runner.invoke(app, [*hint, *bad, "--n-trials", "1"])
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert res.exit_code != 0 and len(lines) == 1 and lines[0].startswith("error: ") and why in lines[0], lines
    res = runner.invoke(app, [*hint, "--n-trials", "2", "--no-polish", "--json"])  # the hint as printed
    assert res.exit_code == 0, res.stderr
    meta = json.loads((tmp_path / "k2" / "run.json").read_text())
    assert (meta["batch_size"], meta["heavy"], meta["objectives"]) == (256, 3, ["latency", "memory"])
    assert meta["n_trials"] == 2


def test_resume_with_another_heavy_is_one_line(tmp_path: Path, profile: Path) -> None:
    assert search(profile, tmp_path, "--run", "h", "--n-trials", "2", "--no-polish", "--heavy", "3").exit_code == 0
    assert json.loads((tmp_path / "h" / "run.json").read_text())["heavy"] == 3
    res = search(profile, tmp_path, "--run", "h", "--resume", "--n-trials", "1", "--heavy", "6")
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.exit_code != 0 and "Traceback" not in res.stderr and len(lines) == 1, res.stderr
    assert lines[0].startswith("error: run h was searched with --heavy 3, not 6")
    res = runner.invoke(app, ["search", "--run", "h", "--runs-dir", str(tmp_path), "--resume", "--n-trials", "1"])
    assert res.exit_code == 0, res.stderr  # --heavy (and the rest) default to what run.json records


def test_the_summary_says_how_much_faster_the_tuned_mapping_is(tmp_path: Path, profile: Path) -> None:
    res = search(profile, tmp_path, "--run", "w", "--n-trials", "12")
    assert res.exit_code == 0, res.stderr
    base = json.loads((tmp_path / "w" / "baselines.json").read_text())
    best = base["best_latency_s"]
    for b in base["baselines"]:
        if b["feasible"]:
            v = b["latency_s"]
            how = "as fast as" if abs(v / best - 1) < 0.005 else f"{v / best:6.2f}x faster than"
            assert f"tuned {how} {b['name']} ({v * 1e6:,.2f} µs)" in res.stderr
    assert "speed-up" not in res.stderr
    res = search(profile, tmp_path, "--run", "b", "--timeout", "0.000000001")  # no trial: the best is a baseline
    assert res.exit_code == 0, res.stderr
    top = min(baseline_latencies(profile).items(), key=lambda kv: kv[1])
    assert f"(from baseline {top[0]})" in res.stderr
    assert f"  tuned as fast as {top[0]} ({top[1] * 1e6:,.2f} µs)" in res.stderr
    report = (tmp_path / "w" / "report.md").read_text()
    assert "| slowest task / latency |" in report and "share of latency" not in report
    assert "does not sum to 100%" in report


def test_the_pareto_front_is_read_once_while_a_shared_study_grows(tmp_path: Path, profile: Path, monkeypatch) -> None:
    """Another machine's trial can push a point off the front between two reads; the run must use one front."""
    front = optuna.Study.best_trials
    reads = []

    def shrinking(study):
        reads.append(1)
        got = front.fget(study)
        return got if len(reads) == 1 else sorted(got, key=lambda t: t.number)[1:]  # a later read lost a point

    monkeypatch.setattr(optuna.Study, "best_trials", property(shrinking))
    out = run_search(
        SearchRequest(
            profile=profile,
            hardware=HW,
            batch_size=512,
            run="front",
            n_trials=6,
            objectives=("latency", "memory"),
            polish=False,
            root=tmp_path,
        )
    )
    doc = json.loads((tmp_path / "front" / "pareto.json").read_text())
    assert [p["trial"] for p in doc["trials"]] == [p["trial"] for p in out.pareto]
    assert len(reads) == 1


def _interrupt_the_report(monkeypatch) -> None:
    """Ctrl-C while `_finish` writes report.md and its plots (the slowest part of storing a run)."""
    from autotune.search import report

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "write_report", interrupted)


def test_ctrl_c_while_the_run_is_written_counts_the_trials_and_leaves_no_partial_run(
    tmp_path: Path, profile: Path, monkeypatch
) -> None:
    _interrupt_the_report(monkeypatch)
    res = search(profile, tmp_path, "--run", "f", "--n-trials", "3", "--no-polish")
    assert res.exit_code == INTERRUPTED_EXIT
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert lines == [
        f"interrupted after 3 trials; continue with `autotune search --run f --runs-dir {tmp_path} --resume`"
    ]
    left = sorted(p.name for p in (tmp_path / "f").iterdir())
    assert left == [".workers", "study.journal"]  # the study and its worker registry: no mapping.json, no run.json
    monkeypatch.undo()
    res = search(profile, tmp_path, "--run", "f", "--resume", "--n-trials", "2", "--no-polish", "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["n_trials"] == 5


def test_ctrl_c_while_a_resumed_run_is_written_keeps_its_files_in_step(
    tmp_path: Path, profile: Path, monkeypatch
) -> None:
    assert search(profile, tmp_path, "--run", "g", "--n-trials", "3", "--no-polish").exit_code == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "g").iterdir() if p.suffix in (".json", ".md", ".png")}
    _interrupt_the_report(monkeypatch)
    res = search(profile, tmp_path, "--run", "g", "--resume", "--n-trials", "2", "--no-polish")
    assert res.exit_code == INTERRUPTED_EXIT and res.stderr.startswith("interrupted after 2 trials;"), res.stderr
    after = {p.name: p.read_bytes() for p in (tmp_path / "g").iterdir() if p.suffix in (".json", ".md", ".png")}
    assert after == before
    assert not list((tmp_path / "g").glob(".*.tmp"))


def test_ctrl_c_is_held_back_while_the_run_files_are_moved_in() -> None:
    import os
    import signal

    done = []
    with pytest.raises(driver.InterruptedAfterStoring), driver._sigint_deferred():
        os.kill(os.getpid(), signal.SIGINT)
        done.append("moved")  # still runs: the interrupt comes after the block
    assert done == ["moved"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_show_and_export_say_a_run_was_interrupted(tmp_path: Path, profile: Path, monkeypatch) -> None:
    _interrupt_after(monkeypatch, 4)
    assert search(profile, tmp_path, "--run", "half", "--n-trials", "20").exit_code == INTERRUPTED_EXIT
    monkeypatch.undo()
    note = "interrupted run (4 trials completed)"
    res = runner.invoke(app, ["show", "half", "--runs-dir", str(tmp_path)])
    assert res.exit_code == 0, res.stderr
    assert note in res.stdout
    res = runner.invoke(app, ["show", "half", "--runs-dir", str(tmp_path), "--json"])
    doc = json.loads(res.stdout)
    assert doc["status"] == "interrupted" and doc["status_note"].startswith(note)
    res = runner.invoke(app, ["export", "half", "--runs-dir", str(tmp_path), "--format", "json", "--json"])
    assert res.exit_code == 0, res.stderr
    assert f"note: {note}" in res.stderr and json.loads(res.stdout)["status"] == "interrupted"
    done = search(profile, tmp_path, "--run", "whole", "--n-trials", "2", "--no-polish")
    assert done.exit_code == 0
    res = runner.invoke(app, ["show", "whole", "--runs-dir", str(tmp_path)])
    assert res.exit_code == 0 and "interrupted" not in res.stdout
