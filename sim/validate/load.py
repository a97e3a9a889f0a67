"""Load validation entries from validation/*.yaml; every failure is a one-line UserError."""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

from sim.config.load import parse, read_yaml
from sim.engine.spec import RunSpec, make_runspec
from sim.errors import UserError
from sim.validate.schema import ValidationEntry, ValidationFile


def validation_dir() -> Path:
    """validation/ at the repository top (override with MOE_SIM_VALIDATION)."""
    env = os.environ.get("MOE_SIM_VALIDATION")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "validation"


def load_entries(
    directory: str | Path | None = None, only: str | None = None
) -> list[ValidationEntry]:
    """Every entry of every YAML file in the folder, in file then entry order.

    ``only`` keeps the entries whose name matches it exactly or as a shell pattern (``qwen3-*``).
    """
    d = Path(directory) if directory else validation_dir()
    files = sorted(p for p in d.glob("*.yaml") if not p.stem.startswith("_"))
    if not files:
        raise UserError(f"no validation YAML files in {d}")
    entries: list[ValidationEntry] = []
    seen: dict[str, str] = {}
    for path in files:
        vf = parse(ValidationFile, read_yaml(path), f"validation {path.name}")
        for e in vf.entries:
            if e.name in seen:
                raise UserError(
                    f"validation {path.name}: entry '{e.name}' already defined in {seen[e.name]}"
                )
            seen[e.name] = path.name
            entries.append(e)
    if only is None:
        return entries
    picked = [e for e in entries if e.name == only or fnmatch.fnmatchcase(e.name, only)]
    if not picked:
        raise UserError(
            f"--only {only}: no such entry (known: {', '.join(e.name for e in entries)})"
        )
    return picked


def entry_runspec(entry: ValidationEntry) -> RunSpec:
    """The entry's run spec, resolved against the stock presets and hardware profiles."""
    return make_runspec(entry.run, f"validation entry {entry.name}: run")
