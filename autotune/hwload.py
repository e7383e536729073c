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
    "alias_targets",
    "alias_text",
    "bundled_dir",
    "dump_hardware_toml",
    "hardware_to_dict",
    "list_hardware",
    "load_hardware",
    "resolve_hardware",
    "shadow_message",
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
    """The file a spec names; an unknown name is a `UserError` listing the known names and aliases."""
    if isinstance(spec, Path) or _looks_like_path(str(spec)):
        path = Path(spec)
        if path.is_dir():
            raise UserError(f"{path}: a folder, not a hardware profile file; give a .toml file in it or a name")
        if not path.is_file():
            raise UserError(f"{path}: no such hardware profile file; give a TOML file or a name from `hw list`")
        return path
    user = _profiles_in(user_dir())
    bundled = _profiles_in(bundled_dir())
    path = _resolve_name(str(spec), user, bundled)
    if path is not None:
        return path
    known = sorted(set(bundled) | (set(user) - set(bundled)))
    aliases = ", ".join(alias_text(a, p) for a, p in _alias_paths(user, bundled).items() if p is not None)
    raise UserError(
        f"unknown hardware {spec!r}: use one of {', '.join(known)} (aliases: {aliases}) or a path to a .toml profile"
    )


def _resolve_name(spec: str, user: dict[str, Path], bundled: dict[str, Path]) -> Path | None:
    """The file a name or alias finds (None: unknown). A user profile may not take a bundled name: which file
    `--hw NAME` means would depend on the folder, and a run would record one name for two sets of figures."""
    name = spec.strip().lower()
    if name == CALIBRATED_CPU and CALIBRATED_CPU in user:
        return user[CALIBRATED_CPU]
    name = ALIASES.get(name, name)
    if name in bundled:
        if name in user:
            raise UserError(shadow_message(user[name]))
        return bundled[name]
    return user.get(name)


def shadow_message(path: Path) -> str:
    """Why a user profile named like a bundled one is refused, and the remedy."""
    return (
        f"{path}: a user hardware profile may not take the bundled name {path.stem!r} (`--hw {path.stem}` "
        f"would be ambiguous): rename the file and its field 'name' (e.g. {path.stem}-custom), or remove it"
    )


def _alias_paths(user: dict[str, Path], bundled: dict[str, Path]) -> dict[str, Path | None]:
    out: dict[str, Path | None] = {}
    for alias in ALIASES:
        try:
            out[alias] = _resolve_name(alias, user, bundled)
        except UserError:
            out[alias] = None  # its target is shadowed: refused, as `--hw ALIAS` would be
    return out


def alias_targets() -> dict[str, Path | None]:
    """The file each alias loads now, by the rule `--hw` follows: `cpu` is the user profile `cpu.toml` when one
    exists (calibrated), else the bundled `cpu-generic`; None where the target is refused (`shadow_message`)."""
    return _alias_paths(_profiles_in(user_dir()), _profiles_in(bundled_dir()))


def alias_text(alias: str, path: Path) -> str:
    """'ascend -> ascend910b' for a bundled target, 'cpu -> cpu (runs/hw/cpu.toml)' for a user profile."""
    return f"{alias} -> {path.stem}" if path.parent == bundled_dir() else f"{alias} -> {path.stem} ({path})"


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
    """Bundled profiles, then user profiles (a user file named like a bundled one is refused: `shadow_message`).

    A user profile that does not load (hand-edited, or written by an older `autotune calibrate` before a
    figure was added) raises `UserError`, unless `broken` is given: then its one-line reason is appended
    there and the listing goes on, so one stale file does not hide every other profile. A broken bundled
    profile always raises: it is a packaging bug, not the user's.
    """
    infos: list[HardwareInfo] = []
    bundled = _profiles_in(bundled_dir())
    for origin, folder in (("bundled", bundled_dir()), ("user", user_dir())):
        for path in _profiles_in(folder).values():
            if origin == "user" and path.stem in bundled:
                if broken is None:
                    raise UserError(shadow_message(path))
                broken.append(shadow_message(path))
                continue
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
