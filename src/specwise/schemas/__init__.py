"""Typed models shared by every stage (specs, acceptance profiles, request records, run results)."""

from specwise.schemas.acceptance import AcceptanceClass, AcceptanceProfile
from specwise.schemas.base import GIB, Source, SpecwiseModel
from specwise.schemas.model import GPUSpec, MLASpec, ModelSpec, ParamCounts, Quantization, SpeculatorKind
from specwise.schemas.results import (
    CellSummary,
    Comparison,
    Crossover,
    RequestRecord,
    RunResult,
    ServerSpecDecodeRequestMetrics,
    SpeedupCI,
)

__all__ = [
    "GIB",
    "AcceptanceClass",
    "AcceptanceProfile",
    "CellSummary",
    "Comparison",
    "Crossover",
    "GPUSpec",
    "MLASpec",
    "ModelSpec",
    "ParamCounts",
    "Quantization",
    "RequestRecord",
    "RunResult",
    "ServerSpecDecodeRequestMetrics",
    "Source",
    "SpecwiseModel",
    "SpeculatorKind",
    "SpeedupCI",
]
