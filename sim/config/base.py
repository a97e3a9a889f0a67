"""Strict pydantic base model: frozen, extra keys forbidden, every field described."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Base for every config: immutable, unknown keys are an error."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)
