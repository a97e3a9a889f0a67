"""Balance metrics over devices (or experts): imbalance score, max/mean, coefficient of variation."""

from __future__ import annotations

import numpy as np


def imbalance_score(device_load: np.ndarray, tokens: int) -> np.ndarray:
    """Pangu Pro MoE IS(X) = (max_i T_i - min_i T_i) / |X| over the last axis (devices).

    device_load (..., D): T_i, tokens assigned to device i; tokens: |X|, tokens in the batch.
    Returns (...,) float64 (a 0-d array for one batch).
    """
    d = np.asarray(device_load)
    return (d.max(axis=-1) - d.min(axis=-1)).astype(np.float64) / float(tokens)


def balance_stats(device_load: np.ndarray) -> dict:
    """max, min, mean, max_over_mean and cv (std / mean) over the last axis.

    Values are floats for a 1-D load, arrays (...,) otherwise; an all-zero row gives
    max_over_mean 1 and cv 0 (nothing to balance).
    """
    d = np.asarray(device_load, dtype=np.float64)
    mean = d.mean(axis=-1)
    mx, mn, std = d.max(axis=-1), d.min(axis=-1), d.std(axis=-1)
    safe = np.where(mean > 0, mean, 1.0)
    out = {
        "max": mx,
        "min": mn,
        "mean": mean,
        "max_over_mean": np.where(mean > 0, mx / safe, 1.0),
        "cv": np.where(mean > 0, std / safe, 0.0),
    }
    return {k: (float(v) if np.ndim(v) == 0 else v) for k, v in out.items()}
