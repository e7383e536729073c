"""Find, load and list hardware profiles: bundled chips, calibrated user profiles, or any TOML file.

A spec is a bundled name (`ascend910b`), an alias (`ascend`, `a100`, `h100`, `cpu`) or a path to a TOML
file. Bundled profiles live in the wheel as `autotune/_hwprofiles/` (hatch force-include) and, in a source
checkout or an editable install (where force-include does not apply), in the repository's `hwprofiles/`.
User profiles (what `autotune calibrate` writes, e.g. the fitted `cpu`) live in `$AUTOTUNE_HW_DIR`, or in
`runs/hw/` under the working directory when that variable is unset; `cpu` resolves to the calibrated
`cpu.toml` there when one exists, else to the bundled `cpu-generic`.
"""

from __future__ import annotations

import importlib.resources
import os
from dataclasses import dataclass
from pathlib import Path

from autotune import atomic
from autotune.errors import UserError
from autotune.hardware import HardwareProfile
from autotune.hwformat import dump_hardware_toml, hardware_to_dict, parse_hardware

__all__ = [
    "ALIASES",
    "USER_DIR_ENV",
    "HardwareInfo",
    "bundled_dir",
    "dump_hardware_toml",
    "hardware_to_dict",
    "list_hardware",
    "load_hardware",
    "resolve_hardware",
    "user_dir",
    "write_hardware",
]

#: Short names users type; `cpu` prefers a calibrated user profile (see `resolve_hardware`).
ALIASES: dict[str, str] = {"ascend": "ascend910b", "a100": "a100-80gb", "h100": "h100-sxm", "cpu": "cpu-generic"}
#: Environment variable naming the directory of user (calibrated) profiles.
USER_DIR_ENV = "AUTOTUNE_HW_DIR"
#: The user directory when `USER_DIR_ENV` is unset, relative to the working directory (the default run store).
DEFAULT_USER_DIR = Path("runs") / "hw"
#: The name under which `autotune calibrate` stores this machine's fitted profile.
CALIBRATED_CPU = "cpu"
_SUFFIX = ".toml"


@dataclass(frozen=True)
class HardwareInfo:
    """One line of `autotune hw list`."""

    name: str
    description: str
    family: str
    cores: int  # look-up cores
    path: Path
    clock_hz: float
    gm_bandwidth_bytes_per_s: float
    l2_capacity_bytes: int
    origin: str  # "bundled" or "user"


def bundled_dir() -> Path:
    """The folder of bundled profiles: inside the installed wheel, else the repository's `hwprofiles/`."""
    packaged = importlib.resources.files("autotune") / "_hwprofiles"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "hwprofiles"


def user_dir() -> Path:
    """The folder of user profiles: `$AUTOTUNE_HW_DIR`, else `runs/hw` under the working directory."""
    env = os.environ.get(USER_DIR_ENV, "").strip()
    return Path(env) if env else DEFAULT_USER_DIR


def _profiles_in(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.glob(f"*{_SUFFIX}")) if p.is_file()}


def _looks_like_path(spec: str) -> bool:
    return spec.endswith(_SUFFIX) or os.sep in spec or "/" in spec


def resolve_hardware(spec: str | Path) -> Path:
    """The file a spec names; an unknown name is a `UserError` listing the known names."""
    if isinstance(spec, Path) or _looks_like_path(str(spec)):
        path = Path(spec)
        if not path.is_file():
            raise UserError(f"{path}: no such hardware profile file; give a TOML file or a name from `hw list`")
        return path
    name = str(spec).strip().lower()
    user = _profiles_in(user_dir())
    bundled = _profiles_in(bundled_dir())
    if name == CALIBRATED_CPU and CALIBRATED_CPU in user:
        return user[CALIBRATED_CPU]
    name = ALIASES.get(name, name)
    if name in bundled:
        return bundled[name]
    if name in user:
        return user[name]
    known = sorted(set(bundled) | set(user))
    raise UserError(
        f"unknown hardware {spec!r}: use one of {', '.join(known)} (aliases: "
        f"{', '.join(f'{a} -> {t}' for a, t in ALIASES.items())}) or a path to a .toml profile"
    )


def _read(path: Path) -> HardwareProfile:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read hardware profile ({exc}); check the file") from None
    return parse_hardware(text, str(path), path=path)


def _read_named(path: Path) -> HardwareProfile:
    """Read a profile found by name in a profile folder: its `name` must match the file name."""
    hw = _read(path)
    if hw.name != path.stem:
        raise UserError(
            f"{path}: field 'name' is {hw.name!r} but the file is {path.name}: make them match "
            f"(profiles in a profile folder are found by file name)"
        )
    return hw


def load_hardware(spec: str | Path) -> HardwareProfile:
    """Load and validate a hardware profile from a bundled name, an alias or a TOML file path."""
    path = resolve_hardware(spec)
    if isinstance(spec, Path) or _looks_like_path(str(spec)):
        return _read(path)
    return _read_named(path)


def list_hardware(broken: list[str] | None = None) -> list[HardwareInfo]:
    """Bundled profiles, then user profiles (a user file that shadows a bundled name is listed too).

    A user profile that does not load (hand-edited, or written by an older `autotune calibrate` before a
    figure was added) raises `UserError`, unless `broken` is given: then its one-line reason is appended
    there and the listing goes on, so one stale file does not hide every other profile. A broken bundled
    profile always raises: it is a packaging bug, not the user's.
    """
    infos: list[HardwareInfo] = []
    for origin, folder in (("bundled", bundled_dir()), ("user", user_dir())):
        for path in _profiles_in(folder).values():
            try:
                hw = _read_named(path)
            except UserError as exc:
                if broken is None or origin == "bundled":
                    raise
                broken.append(f"{exc}; {_user_remedy(path)}")
                continue
            infos.append(
                HardwareInfo(
                    name=hw.name,
                    description=hw.description,
                    family=hw.family,
                    cores=hw.n_cores,
                    path=path,
                    clock_hz=hw.clock_hz,
                    gm_bandwidth_bytes_per_s=hw.gm_bandwidth_bytes_per_s,
                    l2_capacity_bytes=hw.l2_capacity_bytes,
                    origin=origin,
                )
            )
    return infos


def _user_remedy(path: Path) -> str:
    """How to mend a user profile that does not load: calibrate writes only `cpu.toml`; others are hand-made."""
    if path.stem == CALIBRATED_CPU:
        return "fix the file, or re-create it with `autotune calibrate`"
    return f"fix the file (`autotune hw show {path}` checks it) or remove it"


def write_hardware(hw: HardwareProfile, path: Path | None = None) -> Path:
    """Write `hw` atomically as a profile file (default: `<user_dir>/<name>.toml`, where `--hw NAME` finds it)."""
    target = Path(path) if path is not None else user_dir() / f"{hw.name}{_SUFFIX}"
    atomic.write_text(target, dump_hardware_toml(hw))
    return target
