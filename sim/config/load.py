"""Load configs from YAML files, preset names and profile names; every failure is a UserError."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from sim.config.hardware import HardwareProfile
from sim.config.model import ModelConfig
from sim.errors import UserError, describe_validation_error

PRESET_DIR = Path(__file__).resolve().parent.parent / "presets"
T = TypeVar("T", bound=BaseModel)


def profile_dir() -> Path:
    """hw_profiles/ at the repository top (override with MOE_SIM_PROFILES)."""
    env = os.environ.get("MOE_SIM_PROFILES")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "hw_profiles"


def read_yaml(path: str | Path) -> dict:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise UserError(f"cannot read {p}: {e.strerror or e}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UserError(f"{p}:{where} invalid YAML: {getattr(e, 'problem', e)}") from None
    if not isinstance(data, dict):
        raise UserError(f"{p}: expected a mapping at the top level")
    return data


def parse(cls: type[T], data: dict, source: str) -> T:
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        raise UserError(describe_validation_error(e, source)) from None


def _names(d: Path) -> list[str]:
    """YAML stems in a folder; files starting with '_' are metadata, not configs."""
    return sorted(p.stem for p in d.glob("*.yaml") if not p.stem.startswith("_"))


def preset_names() -> list[str]:
    return _names(PRESET_DIR)


def profile_names() -> list[str]:
    return _names(profile_dir())


def _resolve(name_or_path: str, d: Path, what: str, names) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or os.sep in name_or_path:
        return p
    cand = d / f"{name_or_path}.yaml"
    if cand.exists() and not name_or_path.startswith("_"):
        return cand
    raise UserError(f"unknown {what} '{name_or_path}' (known: {', '.join(names())}; or give a YAML path)")


@functools.lru_cache(maxsize=256)
def _load(cls, path: str, mtime_ns: int, label: str):
    """Configs are frozen, so one parsed instance per file version serves every caller (sweeps
    build thousands of run specs from the same few presets)."""
    return parse(cls, read_yaml(path), label)


def _load_file(cls, path: Path, label: str):
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        mtime = -1          # read_yaml reports the missing file
    return _load(cls, str(path), mtime, label)


def load_model(name_or_path: str) -> ModelConfig:
    path = _resolve(name_or_path, PRESET_DIR, "model preset", preset_names)
    return _load_file(ModelConfig, path, f"model {path.name}")


def load_hardware(name_or_path: str) -> HardwareProfile:
    path = _resolve(name_or_path, profile_dir(), "hardware profile", profile_names)
    return _load_file(HardwareProfile, path, f"hardware {path.name}")
