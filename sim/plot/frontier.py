"""Pareto frontier of two objectives (no plotting)."""

from __future__ import annotations

import numpy as np


def pareto_front(x, y, *, maximize_x: bool = False, maximize_y: bool = True) -> np.ndarray:
    """Indices of the non-dominated points, ordered by x ascending.

    A point is dominated when another is at least as good in both objectives and strictly better
    in one. Identical points do not dominate each other, so duplicates on the frontier are all
    returned. Points with a NaN in x or y are ignored.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D of the same length, got {x.shape} and {y.shape}")
    idx = np.flatnonzero(np.isfinite(x) & np.isfinite(y))
    a = x[idx] if not maximize_x else -x[idx]  # both objectives turned into "smaller is better"
    b = -y[idx] if maximize_y else y[idx]
    order = np.lexsort((idx, b, a))  # by a, then b, then original index (stable ties)
    front = []
    best_b = np.inf
    i = 0
    while i < len(order):
        j = i
        while j < len(order) and a[order[j]] == a[order[i]]:
            j += 1
        group_b = b[order[i]]  # smallest b among points with this a
        if group_b < best_b:
            front.extend(int(idx[order[k]]) for k in range(i, j) if b[order[k]] == group_b)
            best_b = group_b
        i = j
    return np.array(sorted(front, key=lambda k: (x[k], k)), dtype=int)
