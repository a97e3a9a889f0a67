"""Shared test helpers."""

from __future__ import annotations

from sim.config import load_hardware


def device_only(hardware) -> dict:
    """A profile (name or dict) without its host block: for tests that count a device-side mechanism by
    hand on small shapes, where the host's issue time would otherwise dominate (host: tests/test_host.py)."""
    d = load_hardware(hardware).model_dump() if isinstance(hardware, str) else dict(hardware)
    d["host"] = None
    return d
