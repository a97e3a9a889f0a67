"""User-facing errors: one clear line, exit code 2, never a traceback."""

from __future__ import annotations

from pydantic import ValidationError


class UserError(Exception):
    """Bad input from the user. The CLI prints ``error: <message>`` and exits with code 2."""


def describe_validation_error(err: ValidationError, source: str | None = None) -> str:
    """Turn a pydantic ValidationError into one line naming the field(s) and the problem."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e.get("loc", ()) if x != "__root__")
        msg = e.get("msg", "invalid value")
        msg = msg.removeprefix("Value error, ")
        if e.get("type") == "extra_forbidden":
            msg = "unknown key"
        parts.append(f"{loc}: {msg}" if loc else msg)
    where = f"{source}: " if source else ""
    return where + "; ".join(parts)
