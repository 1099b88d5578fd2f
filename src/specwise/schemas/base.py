"""Base model configuration shared by every specwise schema."""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict


class SpecwiseModel(BaseModel):
    """Strict pydantic base: unknown fields are errors, enums serialise to their values."""

    model_config = ConfigDict(extra="forbid", use_enum_values=True, populate_by_name=True)


class Source(str, Enum):
    """Where a number comes from. Every number shown to a user carries one."""

    assumed = "assumed"  # a default or user-supplied input, not derived from data
    estimated = "estimated"  # computed offline from models/formulas (plan, estimate)
    simulated = "simulated"  # produced by the serving simulator
    measured = "measured"  # observed on a real server


GIB = 1024**3
