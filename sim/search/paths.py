"""Dotted paths into nested run data: get, set, flatten (``model.moe.num_experts``)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

_MISSING = object()


def get_path(data: dict, path: str, default: Any = _MISSING) -> Any:
    """The value at ``path`` (``a.b.c``); KeyError naming the first missing part unless a default is given."""
    cur: Any = data
    parts = path.split(".")
    for i, key in enumerate(parts):
        if not isinstance(cur, dict) or key not in cur:
            if default is not _MISSING:
                return default
            where = ".".join(parts[:i]) or "(top)"
            raise KeyError(f"{where} has no key '{key}'" if isinstance(cur, dict) else
                           f"{where} is {'null' if cur is None else repr(cur)}, not a mapping")
        cur = cur[key]
    return cur


def set_path(data: dict, path: str, value: Any) -> None:
    """Set ``path`` in place; every parent must already be a mapping (KeyError otherwise)."""
    parts = path.split(".")
    cur: Any = data
    for i, key in enumerate(parts[:-1]):
        nxt = cur.get(key) if isinstance(cur, dict) else None
        if not isinstance(nxt, dict):
            where = ".".join(parts[: i + 1])
            raise KeyError(f"{where} is {'null' if nxt is None else repr(nxt)}, not a mapping" if key in cur
                           else f"{where} does not exist")
        cur = nxt
    cur[parts[-1]] = value


def flatten(data: dict, prefix: str, out: dict | None = None, skip: frozenset = frozenset()) -> dict:
    """``{prefix.key.sub: leaf}`` for every scalar leaf; None leaves are left out (null = not set),
    lists become compact JSON text so every cell is a scalar."""
    out = {} if out is None else out
    for key, v in data.items():
        name = f"{prefix}.{key}" if prefix else key
        if name in skip or v is None:
            continue
        if isinstance(v, dict):
            flatten(v, name, out, skip)
        elif isinstance(v, list | tuple):
            out[name] = json.dumps(v, separators=(",", ":"))
        else:
            out[name] = v
    return out


def canonical_json(obj: Any) -> str:
    """Key-sorted, whitespace-free JSON: the text stable hashes are taken of."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def stable_hash(obj: Any, length: int = 16) -> str:
    """First ``length`` hex digits of the SHA-256 of the canonical JSON of ``obj``."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:length]
