"""Shared test helpers."""

from __future__ import annotations

from sim.config import load_hardware


def device_only(hardware) -> dict:
    """A profile (name or dict) without its host block and without its measured collective-bandwidth-by-size
    curve (flat link efficiency plus per-step latency instead): for tests that count a device-side mechanism
    by hand on small shapes, where the host's issue time or small-message collective latency would otherwise
    dominate (those are tested in tests/test_host.py and tests/test_comm_by_size.py)."""
    d = load_hardware(hardware).model_dump() if isinstance(hardware, str) else dict(hardware)
    d["host"] = None
    d["collective_efficiency"] = dict(d["collective_efficiency"], intra_node_by_size=None)
    return d
