"""Read back a completed search run (`runs/<run>/`) for `autotune show` and `autotune export`.

A run stores the best mapping (`mapping.json`, with an explicit core per task) and the paths and hashes of
the workload and hardware profiles it was searched against (`run.json`). Loading re-evaluates the mapping
with the latency model against those same files, so what `show` prints and what `export` writes is the
model's verdict on exactly the stored mapping; a profile that changed since the search is refused, because
the mapping (table names, row counts, shard sizes) would no longer describe it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from autotune.console import err
from autotune.errors import UserError
from autotune.hardware import HardwareProfile
from autotune.hwload import load_hardware, resolve_hardware
from autotune.model.evaluate import Prediction, predict
from autotune.model.mapping import Mapping, parse_mapping, profile_hash, validate_mapping
from autotune.search import runstore
from autotune.workload import WorkloadProfile, load_profile

#: Relative difference below which a re-evaluated latency counts as the stored one (float noise only).
LATENCY_RTOL = 1e-9


@dataclass(frozen=True)
class LoadedRun:
    """A completed run with its inputs reloaded and its best mapping re-evaluated."""

    name: str
    path: Path  # the run directory
    doc: dict[str, Any]  # run.json
    profile: WorkloadProfile
    hw: HardwareProfile
    batch_size: int
    mapping: Mapping  # mapping.json with the placement used, the re-evaluated latency and the profile's hash
    prediction: Prediction  # the model's breakdown of `mapping`
    stored_latency_s: float | None  # run.json best_latency_s (what the search reported)

    @property
    def lower_bound_s(self) -> float | None:
        v = self.doc.get("lower_bound_s")
        return float(v) if isinstance(v, int | float) else None

    @property
    def status(self) -> str | None:
        """run.json `status`: "complete", or "interrupted" for a run Ctrl-C stopped (stored from its trials so far)."""
        return runstore.parse_record(self.doc).status

    @property
    def status_note(self) -> str | None:
        """The line `show` and `export` print for a run that is not complete, else None."""
        if self.status != "interrupted":
            return None
        n = runstore.parse_record(self.doc).n_trials
        done = f"{n} trials completed" if n is not None else "trials completed unknown"
        run = self.name if self.path == runstore.DEFAULT_ROOT / self.name else str(self.path)
        return f"interrupted run ({done}); continue it with `autotune search --run {run} --resume`"

    @property
    def matches_stored(self) -> bool:
        """Whether re-evaluating the stored mapping gives the latency the search stored."""
        s = self.stored_latency_s
        return s is not None and math.isclose(self.prediction.latency_s, s, rel_tol=LATENCY_RTOL, abs_tol=0.0)


def load_run(
    run: str,
    root: Path = runstore.DEFAULT_ROOT,
    profile: Path | None = None,
    hardware: str | None = None,
    trial: int | None = None,
) -> LoadedRun:
    """Load run `run` (a name under `root` or a run directory) and re-evaluate its mapping.

    `profile` / `hardware` replace the paths recorded in run.json (for a run whose inputs moved); the
    files must still be the ones the search used (same sha256), else `UserError`. `trial` loads that Pareto
    point's mapping (pareto.json) instead of the best one.
    """
    d = runstore.resolve_existing(run, Path(root))
    doc = runstore.read_json(d / "run.json")
    if not isinstance(doc, dict):
        raise UserError(f"{d / 'run.json'}: not a run record (a JSON object); rerun `autotune search`")
    rec = runstore.parse_record(doc)
    prof = _load_profile(d, rec, profile)
    hw = _load_hw(d, rec, hardware)
    batch = doc.get("batch_size")
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise UserError(f"{d / 'run.json'}: field 'batch_size' must be a positive integer, got {batch!r}")

    mpath = d / "mapping.json"
    stored = doc.get("best_latency_s")
    if trial is None:
        raw = runstore.read_json(mpath)
    else:
        raw, stored = _pareto_point(d, trial)
        mpath = d / "pareto.json"
    if not isinstance(raw, dict):
        raise UserError(f"{mpath}: a mapping must be a JSON object with 'version' and 'tables'")
    mapping = parse_mapping(raw, where=str(mpath))
    validate_mapping(mapping, prof, hw, where=str(mpath))
    if mapping.hardware is not None and mapping.hardware != hw.name:
        raise UserError(
            f"{mpath}: field 'hardware' is {mapping.hardware!r} but the run was searched on {hw.name!r}; "
            "restore the file from the search or rerun `autotune search`"
        )
    if mapping.batch_size is not None and mapping.batch_size != batch:
        raise UserError(
            f"{mpath}: field 'batch_size' is {mapping.batch_size} but run.json says {batch}; "
            "restore the file from the search or rerun `autotune search`"
        )
    pred = predict(prof, hw, mapping, batch)
    stored_f = float(stored) if isinstance(stored, int | float) and not isinstance(stored, bool) else None
    out_mapping = replace(
        pred.mapping,
        name=mapping.name or d.name,
        hardware=hw.name,
        batch_size=batch,
        profile={"name": prof.name, "hash": profile_hash(prof)},
        predicted_latency_s=pred.latency_s,
    )
    loaded = LoadedRun(
        name=d.name,
        path=d,
        doc=doc,
        profile=prof,
        hw=hw,
        batch_size=batch,
        mapping=out_mapping,
        prediction=pred,
        stored_latency_s=stored_f,
    )
    if stored_f is not None and not loaded.matches_stored:
        err.print(
            f"warning: {mpath} now predicts {pred.latency_s * 1e6:,.3f} µs, the search stored "
            f"{stored_f * 1e6:,.3f} µs (the file was edited after the search); showing the file as it is",
            markup=False,
            soft_wrap=True,
        )
    return loaded


def _pareto_point(d: Path, trial: int) -> tuple[Any, Any]:
    """Trial `trial`'s mapping and latency from the run's pareto.json (the trial, or one listed in `same_as`)."""
    path = d / "pareto.json"
    if not path.is_file():
        raise UserError(
            f"--trial {trial}: run {d.name} has no pareto.json (only a search with --objectives latency,memory "
            "writes one); drop --trial to export the best mapping"
        )
    doc = runstore.read_json(path)
    points = doc.get("trials") if isinstance(doc, dict) else None
    points = [p for p in points if isinstance(p, dict)] if isinstance(points, list) else []
    for p in points:
        if trial == p.get("trial") or trial in (p.get("same_as") or []):
            if "mapping" not in p:
                raise UserError(f"{path}: trial {trial} has no 'mapping' (an older run); rerun `autotune search`")
            return p["mapping"], p.get("latency_s")
    listed = ", ".join(str(p.get("trial")) for p in points)
    raise UserError(f"--trial {trial}: not a Pareto point of run {d.name}; {path} lists trials {listed}")


def _load_profile(d: Path, rec: runstore.Recorded, override: Path | None) -> WorkloadProfile:
    recorded = rec.profile_path
    path = Path(override) if override is not None else (Path(recorded) if recorded is not None else None)
    if path is None:
        raise UserError(f"{d / 'run.json'}: no 'inputs.profile.path'; pass --profile with the searched profile")
    f = path / "profile.json" if path.is_dir() else path
    if not f.is_file():
        raise UserError(
            f"{f}: the workload profile of run {d.name} is gone; pass --profile with the profile the search used"
        )
    want = rec.profile_sha256
    if want is not None and runstore.sha256_file(f) != want:
        raise UserError(
            f"{f}: this workload profile changed since run {d.name} was searched (sha256 differs from "
            "run.json inputs.profile.sha256); pass --profile with the original file or rerun `autotune search`"
        )
    return load_profile(f)


def _known_name(name: str) -> bool:
    """Whether `--hw name` finds a profile here (bundled, alias or user folder)."""
    try:
        resolve_hardware(name)
    except UserError:
        return False
    return True


def _load_hw(d: Path, rec: runstore.Recorded, override: str | None) -> HardwareProfile:
    recorded = rec.hw_path
    name = rec.hw_name
    if override is not None:
        spec: str | Path = override
    elif isinstance(recorded, str) and Path(recorded).is_file():
        spec = Path(recorded)
    elif isinstance(name, str) and _known_name(name):
        spec = name  # the recorded file moved (another install): the profile of that name, if sha256 agrees
    elif isinstance(recorded, str):
        raise UserError(
            f"{recorded}: the hardware profile file of run {d.name} ({name!r}, run.json inputs.hardware.path) is "
            "gone; pass --hw PATH with the file the search used"
        )
    else:
        raise UserError(f"{d / 'run.json'}: no 'inputs.hardware'; pass --hw with the searched hardware profile")
    hw = load_hardware(spec)
    want = rec.hw_sha256
    if want is not None and hw.path is not None:
        check_hw_file(hw.path, hw.name, want, d.name)
    return hw


def check_hw_file(
    path: Path, name: str, want: str, run: str, otherwise: str = "rerun `autotune search`", source: str = "run.json"
) -> None:
    """Refuse a hardware profile file whose sha256 is not the one run `run` recorded (its trials were scored with
    the recorded figures), naming the original when `autotune calibrate` kept it."""
    if runstore.sha256_file(path) == want:
        return
    from autotune.hwkeep import find_kept

    kept = find_kept(path, want)  # `autotune calibrate` keeps the profile it overwrites
    remedy = (
        f"pass --hw {kept} (the original, kept by `autotune calibrate`)" if kept else "pass --hw with the original file"
    )
    raise UserError(
        f"{path}: hardware profile {name!r} changed since run {run} was searched (sha256 differs "
        f"from {source} inputs.hardware.sha256); {remedy} or {otherwise}"
    )
