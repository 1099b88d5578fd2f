"""Typed models shared by every stage (specs, acceptance profiles, request records, run results)."""

from specwise.schemas.acceptance import AcceptanceClass, AcceptanceProfile
from specwise.schemas.base import GIB, Source, SpecwiseModel
from specwise.schemas.model import GPUSpec, MLASpec, ModelSpec, ParamCounts, Quantization, SpeculatorKind
from specwise.schemas.configs import EstimateConfig, SimulateConfig
from specwise.schemas.findings import Finding
from specwise.schemas.results import (
    CellSummary,
    Comparison,
    Crossover,
    RequestRecord,
    RunInputs,
    RunResult,
    ServerSpecDecodeRequestMetrics,
    SimulationBlock,
    SpeedupCI,
)
from specwise.schemas.run_io import load_run_result
from specwise.schemas.servers import ServerInfo

__all__ = [
    "GIB",
    "AcceptanceClass",
    "AcceptanceProfile",
    "CellSummary",
    "Comparison",
    "Crossover",
    "EstimateConfig",
    "Finding",
    "GPUSpec",
    "MLASpec",
    "ModelSpec",
    "ParamCounts",
    "Quantization",
    "RequestRecord",
    "RunInputs",
    "RunResult",
    "ServerInfo",
    "ServerSpecDecodeRequestMetrics",
    "SimulateConfig",
    "SimulationBlock",
    "Source",
    "SpecwiseModel",
    "SpeculatorKind",
    "SpeedupCI",
    "load_run_result",
]
