"""Shared fixtures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"


def run_study_script(study: str, script: str, *args: str) -> None:
    subprocess.run([sys.executable, str(EXPERIMENTS / study / script), *args], check=True,
                   cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def outputs(request, tmp_path_factory):
    """Reduced run + plot of each study in the test module's FIGURES, once per module: {study: out_dir}."""
    out = {}
    for study in request.module.FIGURES:
        d = tmp_path_factory.mktemp(study)
        run_study_script(study, "run.py", "--reduced", "--out", str(d))
        run_study_script(study, "plot.py", "--out", str(d))
        out[study] = d
    return out
