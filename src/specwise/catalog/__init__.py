"""Bundled knowledge: model architectures, GPUs and vLLM version facts, with lookup helpers."""

from specwise.catalog.models import get_gpu, get_model, list_gpus, list_models

__all__ = ["get_gpu", "get_model", "list_gpus", "list_models"]
